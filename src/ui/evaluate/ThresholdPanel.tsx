import type { BinaryFigures, ThresholdFigures } from './thresholdFigures.ts';

function percent(value: number): string {
  return Number.isFinite(value) ? `${(100 * value).toFixed(1)}%` : '—';
}

function count(value: number): string {
  return value.toLocaleString('en');
}

/** Enough digits to tell neighbouring slider positions apart. */
export function formatThreshold(value: number): string {
  return value.toPrecision(5);
}

function FiguresRow(props: { level: 'image' | 'pixel'; label: string; figures: BinaryFigures }) {
  const { figures: f, level } = props;
  const flagged = f.truePositives + f.falsePositives;
  return (
    <tr data-testid={`threshold-${level}`}>
      <th scope="row" className="row-head">
        {props.label}
      </th>
      <td data-testid={`threshold-${level}-precision`}>{percent(f.precision)}</td>
      <td data-testid={`threshold-${level}-recall`}>{percent(f.recall)}</td>
      <td data-testid={`threshold-${level}-f1`}>{percent(f.f1)}</td>
      <td data-testid={`threshold-${level}-fpr`}>{percent(f.fpr)}</td>
      <td className="counts">
        {count(flagged)} of {count(f.positives + f.negatives)} flagged · {count(f.truePositives)} of{' '}
        {count(f.positives)} defective found · {count(f.falsePositives)} false alarms
      </td>
    </tr>
  );
}

/**
 * The decision threshold on the labelled set: a slider over the pooled pixel-score histogram's edges, the image- and
 * pixel-level figures at that threshold (live, from the compact summary), and saving it with the model.
 */
export function ThresholdPanel(props: {
  figures: ThresholdFigures;
  position: number;
  onPosition(position: number): void;
  /** The loaded model's saved threshold, if any. */
  saved: number | undefined;
  /** Why the threshold cannot be saved now (no model, another model than the one evaluated), if so. */
  saveBlocker: string | undefined;
  onSave(threshold: number): void;
}) {
  const { figures, position } = props;
  const threshold = figures.threshold(position);
  const isSaved = props.saved !== undefined && figures.nearestPosition(props.saved) === position;
  return (
    <div className="threshold-panel" data-testid="threshold-panel">
      <div className="threshold-control">
        <label htmlFor="threshold-slider">Threshold</label>
        <input
          id="threshold-slider"
          data-testid="threshold-slider"
          type="range"
          min={0}
          max={figures.positions - 1}
          step={1}
          value={position}
          onChange={(event) => props.onPosition(Number(event.currentTarget.value))}
        />
        <output data-testid="threshold-value">{formatThreshold(threshold)}</output>
      </div>
      <p className="note">
        An image (a pixel) is flagged as anomalous when its score (its map value) is at or above the threshold.
      </p>
      <table className="threshold-table">
        <thead>
          <tr>
            <th scope="col" />
            <th scope="col">Precision</th>
            <th scope="col">Recall</th>
            <th scope="col">F1</th>
            <th scope="col">FPR</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          <FiguresRow level="image" label="Images" figures={figures.image(position)} />
          <FiguresRow level="pixel" label="Pixels" figures={figures.pixel(position)} />
        </tbody>
      </table>
      <div className="button-row">
        <button type="button" className="button" onClick={() => props.onPosition(figures.bestF1Position('image'))}>
          Best image F1
        </button>
        <button type="button" className="button" onClick={() => props.onPosition(figures.bestF1Position('pixel'))}>
          Best pixel F1
        </button>
        <button
          type="button"
          className="button primary"
          data-testid="threshold-save"
          disabled={props.saveBlocker !== undefined || isSaved}
          title={props.saveBlocker}
          onClick={() => props.onSave(threshold)}
        >
          {isSaved ? 'Saved on the model' : 'Use this threshold'}
        </button>
        <span className="note" data-testid="threshold-saved">
          {props.saveBlocker ??
            (props.saved === undefined
              ? 'The model has no saved threshold yet.'
              : `The model's threshold: ${formatThreshold(props.saved)} (Inspect uses it).`)}
        </span>
      </div>
    </div>
  );
}
