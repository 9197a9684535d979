import type { PaperMetrics } from '../../anomaly/metrics.ts';
import type { MetricDefinition } from '../../store/evaluateStore.ts';
import type { DefinitionMetrics } from '../../worker/metricsProtocol.ts';

const COLUMNS: { key: keyof PaperMetrics; label: string; title: string }[] = [
  { key: 'imageAuroc', label: 'AUROC', title: 'Image-level area under the ROC curve' },
  { key: 'imageAp', label: 'AP', title: 'Image-level average precision' },
  { key: 'imageF1Max', label: 'F1-max', title: 'Image-level best F1 over all thresholds' },
  { key: 'pixelAuroc', label: 'AUROC', title: 'Pixel-level area under the ROC curve' },
  { key: 'pixelAp', label: 'AP', title: 'Pixel-level average precision' },
  { key: 'pixelF1Max', label: 'F1-max', title: 'Pixel-level best F1' },
  { key: 'aupro', label: 'AU-PRO', title: 'Area under the per-region overlap curve up to FPR 0.3' },
  { key: 'mAD', label: 'mAD', title: 'Mean of the seven metrics' },
];

export const DEFINITION_LABELS: Record<MetricDefinition, string> = {
  benchmark: 'Benchmark (as the paper reports)',
  standard: 'Exact',
};

/** Percent with one decimal, as the paper's tables print them; NaN (undefined for this data) as a dash. */
export function formatPercent(value: number): string {
  return Number.isFinite(value) ? (100 * value).toFixed(1) : '—';
}

export interface MetricsRow {
  key: string;
  label: string;
  metrics: DefinitionMetrics;
  /** Why some metrics are undefined (shown on hover). */
  reasons?: readonly string[];
  /** The mean row is set apart. */
  isMean?: boolean;
}

/** The seven metrics and mAD, one row per class (or model), in one definition, with a switch between the two. */
export function MetricsTable(props: {
  rows: readonly MetricsRow[];
  definition: MetricDefinition;
  onDefinition(definition: MetricDefinition): void;
  rowHeader: string;
  testId?: string;
}) {
  const { definition } = props;
  return (
    <div className="metrics-table-block">
      <fieldset className="segmented" aria-label="Metric definitions">
        {(['benchmark', 'standard'] as const).map((d) => (
          <button
            key={d}
            type="button"
            aria-pressed={d === definition}
            data-testid={`definition-${d}`}
            onClick={() => props.onDefinition(d)}
          >
            {DEFINITION_LABELS[d]}
          </button>
        ))}
      </fieldset>
      <div className="table-scroll">
        <table className="metrics-table" data-testid={props.testId} data-definition={definition}>
          <thead>
            <tr>
              <th rowSpan={2} scope="col">
                {props.rowHeader}
              </th>
              <th colSpan={3} scope="colgroup" className="column-group">
                Image
              </th>
              <th colSpan={4} scope="colgroup" className="column-group">
                Pixel
              </th>
              <th rowSpan={2} scope="col" title={COLUMNS[7]!.title}>
                mAD
              </th>
            </tr>
            <tr>
              {COLUMNS.slice(0, 7).map((c) => (
                <th key={c.key} scope="col" title={c.title}>
                  {c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {props.rows.map((row) => (
              <tr
                key={row.key}
                className={row.isMean ? 'mean-row' : undefined}
                data-testid={`metrics-row-${row.key}`}
                title={row.reasons?.length ? `Undefined: ${row.reasons.join('; ')}` : undefined}
              >
                <th scope="row">{row.label}</th>
                {COLUMNS.map((c) => {
                  const value = row.metrics[definition][c.key];
                  return (
                    <td
                      key={c.key}
                      className={c.key === 'mAD' ? 'metric-value mad' : 'metric-value'}
                      data-value={value}
                    >
                      {formatPercent(value)}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="note">
        {definition === 'benchmark'
          ? 'As the paper and the ADer evaluator compute them: pixel F1-max over 21 thresholds of min-max normalised ' +
            'maps, AU-PRO at 100 thresholds with the FPR range stretched to [0, 1].'
          : 'Exact: pixel F1-max over every distinct score, AU-PRO as MVTec AD defines it (the exact PRO curve ' +
            'integrated up to FPR 0.3). Image metrics, pixel AUROC and AP are the same in both.'}{' '}
        All in %; mAD is the mean of the seven.
      </p>
    </div>
  );
}
