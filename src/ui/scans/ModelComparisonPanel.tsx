import { useEffect, useMemo, useRef, useState } from 'react';
import { type LibraryEntry, listLibrary, loadFromLibrary } from '../../storage/modelLibrary.ts';
import { useEvaluateStore } from '../../store/evaluateStore.ts';
import { useScansStore } from '../../store/scansStore.ts';
import { type ColorRange, colormapGradient } from '../common/colormaps.ts';
import { FilePickButton } from '../common/DropZone.tsx';
import { EngineStatusBar } from '../common/EngineStatusBar.tsx';
import { engineBlocker, useEngineStatus } from '../common/engineStatus.ts';
import type { PickedFile } from '../common/files.ts';
import { ProgressBar } from '../common/ProgressBar.tsx';
import { type MetricsRow, MetricsTable } from '../evaluate/MetricsTable.tsx';
import { thumbnailPixels } from '../inspect/overlay.ts';
import type { CandidateModel, ComparisonProgress, ModelMap } from './modelComparison.ts';
import { otherDifferences } from './modelComparison.ts';
import { SCAN_ORDER_LABELS } from './scanPath.ts';

const MAP_SIDE = 256;

function progressText(progress: ComparisonProgress | undefined): string {
  if (!progress) return 'Starting…';
  if (progress.stage === 'restoring') return `Loading your model ${progress.name} back`;
  const which = `model ${progress.model} of ${progress.models} (${progress.name})`;
  if (progress.stage === 'loading') return `Loading ${which}`;
  if (progress.stage === 'image') return `Analysing the image with ${which}`;
  return `Evaluating ${which}`;
}

/** Images of the labelled set while evaluating, otherwise models done. */
function progressCounts(progress: ComparisonProgress | undefined, models: number): { done: number; total: number } {
  if (progress?.stage === 'evaluating') return { done: progress.evaluation.done, total: progress.evaluation.total };
  if (progress?.stage === 'loading' || progress?.stage === 'image') return { done: progress.model - 1, total: models };
  return { done: progress ? models : 0, total: models };
}

/** A model's anomaly map over the image it saw, on the colour range shared by every compared model. */
function MapView(props: { result: ModelMap; range: ColorRange; testId: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const context = canvas.current?.getContext('2d');
    if (!context || !canvas.current) return;
    const { result } = props;
    canvas.current.width = result.size;
    canvas.current.height = result.size;
    context.putImageData(
      thumbnailPixels(result, { colormap: 'jet', range: props.range, opacity: 0.55, threshold: undefined }),
      0,
      0,
    );
  }, [props]);
  return (
    <canvas
      ref={canvas}
      className="map-canvas"
      style={{ width: MAP_SIDE, height: MAP_SIDE }}
      data-testid={props.testId}
    />
  );
}

function LibraryPicker(props: { onPick(entry: LibraryEntry): void; disabled: boolean }) {
  const [entries, setEntries] = useState<LibraryEntry[]>([]);
  const [choice, setChoice] = useState('');
  useEffect(() => {
    void listLibrary()
      .then(setEntries)
      .catch(() => setEntries([]));
  }, []);
  if (entries.length === 0) return null;
  const entry = entries.find((e) => e.id === choice);
  return (
    <span className="field inline">
      <select value={choice} onChange={(event) => setChoice(event.currentTarget.value)} aria-label="Model library">
        <option value="">from the library…</option>
        {entries.map((e) => (
          <option key={e.id} value={e.id}>
            {e.name} ({e.description})
          </option>
        ))}
      </select>
      <button
        type="button"
        className="button"
        disabled={!entry || props.disabled}
        onClick={() => entry && props.onPick(entry)}
      >
        Add
      </button>
    </span>
  );
}

function ModelList(props: { models: readonly CandidateModel[]; disabled: boolean }) {
  const removeModel = useScansStore((s) => s.removeModel);
  const differences = otherDifferences(props.models);
  return (
    <>
      <table className="table" data-testid="compare-models">
        <thead>
          <tr>
            <th scope="col">Weights file</th>
            <th scope="col">Scan</th>
            <th scope="col">Directions</th>
            <th scope="col">Encoder</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          {props.models.map((m) => (
            <tr key={m.id} data-testid="compare-model">
              <th scope="row">{m.name}</th>
              <td data-testid="compare-model-scan">{SCAN_ORDER_LABELS[m.config.scan]}</td>
              <td>{m.config.directions}</td>
              <td className="muted">{m.config.encoder}</td>
              <td>
                <button
                  type="button"
                  className="button small"
                  disabled={props.disabled}
                  onClick={() => removeModel(m.id)}
                >
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {differences.length > 0 && (
        <p className="warning-text" data-testid="compare-differences">
          These models differ in more than the scan, so a difference in their results is not the scan’s alone:{' '}
          {differences.join('; ')}.
        </p>
      )}
    </>
  );
}

/**
 * Models that differ only in their scan method, side by side: each file's scan setting, their anomaly maps of the
 * chosen image and their metrics on the labelled set chosen in Evaluate. The engine runs them one after another and
 * loads the studio's model back afterwards.
 */
export function ModelComparisonPanel(props: { imageName: string | undefined }) {
  const { models, modelErrors, useLabelledSet, comparison, results, addModels, compare, cancelComparison, set } =
    useScansStore();
  const evaluate = useEvaluateStore();
  const blocker = engineBlocker(useEngineStatus());
  const [libraryError, setLibraryError] = useState<string>();
  const running = comparison.state === 'running';
  const busy = running || evaluate.run.state === 'running';

  const addFiles = async (files: PickedFile[]) =>
    addModels(
      await Promise.all(
        files.map(async (f) => ({ name: f.file.name, bytes: new Uint8Array(await f.file.arrayBuffer()) })),
      ),
    );
  const addFromLibrary = async (entry: LibraryEntry) => {
    setLibraryError(undefined);
    try {
      addModels([{ name: entry.name, bytes: await loadFromLibrary(entry.id) }]);
    } catch (error) {
      setLibraryError(error instanceof Error ? error.message : String(error));
    }
  };

  const shown = models.filter((m) => results[m.id]);
  const range = useMemo((): ColorRange | undefined => {
    const maps = models.flatMap((m) => (results[m.id]?.map ? [results[m.id]!.map!.map] : []));
    if (maps.length === 0) return undefined;
    let low = Number.POSITIVE_INFINITY;
    let high = Number.NEGATIVE_INFINITY;
    for (const map of maps) {
      for (const v of map) {
        if (v < low) low = v;
        if (v > high) high = v;
      }
    }
    return { low, high };
  }, [models, results]);

  const metricRows: MetricsRow[] = shown.flatMap((m) => {
    const evaluation = results[m.id]?.evaluation;
    return evaluation
      ? [{ key: m.id, label: `${m.name} (${SCAN_ORDER_LABELS[m.config.scan]})`, metrics: evaluation.summary.mean }]
      : [];
  });

  return (
    <section className="panel" data-testid="scan-comparison">
      <h3 className="panel-title">Compare models that differ in their scan</h3>
      <p className="muted">
        Load two or more weights files (for example trained in Train with different scan methods). The engine runs them
        one after another; your current model is loaded back afterwards.
      </p>
      <div className="button-row">
        <FilePickButton
          label="Add weights files…"
          accept=".safetensors"
          multiple
          onFiles={(files) => void addFiles(files)}
          testId="compare-file-input"
          disabled={busy}
        />
        <LibraryPicker onPick={(entry) => void addFromLibrary(entry)} disabled={busy} />
      </div>
      {[...modelErrors, ...(libraryError ? [libraryError] : [])].map((error) => (
        <p key={error} className="notice error" role="alert" data-testid="compare-model-error">
          {error}
        </p>
      ))}
      {models.length > 0 && <ModelList models={models} disabled={busy} />}
      <div className="compare-inputs">
        <div>
          <strong>Image:</strong>{' '}
          {props.imageName ?? <span className="muted">none: choose one in “Scan paths” above</span>}
        </div>
        <label className="field inline">
          <input
            type="checkbox"
            checked={useLabelledSet}
            disabled={busy}
            onChange={(event) => set({ useLabelledSet: event.currentTarget.checked })}
            data-testid="compare-use-labelled"
          />
          Metrics on the labelled set chosen in Evaluate:{' '}
          {evaluate.source ? (
            <strong>
              {evaluate.source.label}
              {evaluate.perClass !== undefined && ` (at most ${evaluate.perClass} images per class)`}
            </strong>
          ) : (
            <span className="muted">none chosen</span>
          )}
        </label>
      </div>
      <EngineStatusBar />
      <div className="button-row">
        <button
          type="button"
          className="button primary"
          data-testid="compare-start"
          disabled={models.length < 2 || busy || blocker !== undefined}
          onClick={() => void compare()}
        >
          Compare {models.length} models
        </button>
        {models.length < 2 && <span className="muted">Add at least two weights files.</span>}
      </div>
      {running && (
        <ProgressBar
          testId="compare-progress"
          label={progressText(comparison.progress)}
          {...progressCounts(comparison.progress, models.length)}
          onCancel={cancelComparison}
        />
      )}
      {comparison.state === 'failed' && (
        <p className="notice error" role="alert" data-testid="compare-error">
          {comparison.error}
        </p>
      )}
      {comparison.state === 'cancelled' && <p className="muted">Stopped; your model was loaded back.</p>}
      {shown.length > 0 && (
        <div className="compare-results" data-testid="compare-results">
          <div className="map-row">
            {shown.map((m) => {
              const result = results[m.id]!;
              return (
                <figure key={m.id} className="map-figure" data-testid="compare-result">
                  {result.map && range ? (
                    <MapView result={result.map} range={range} testId="compare-map" />
                  ) : (
                    <div className="map-missing">{result.loadError ?? result.mapError ?? 'no image chosen'}</div>
                  )}
                  <figcaption>
                    <strong>{m.name}</strong>
                    <span className="muted">
                      {SCAN_ORDER_LABELS[m.config.scan]} × {m.config.directions}
                    </span>
                    {result.map && <span data-testid="compare-score">score {result.map.score.toPrecision(4)}</span>}
                    {result.evaluationError && <span className="error-text">{result.evaluationError}</span>}
                  </figcaption>
                </figure>
              );
            })}
          </div>
          {range && (
            <div className="color-legend">
              <span>{range.low.toPrecision(3)}</span>
              <span className="color-legend-bar" style={{ background: colormapGradient('jet') }} />
              <span>{range.high.toPrecision(3)}</span>
              <span className="muted">anomaly map value, one scale for all models</span>
            </div>
          )}
          {metricRows.length > 0 && (
            <MetricsTable
              rows={metricRows}
              definition={evaluate.definition}
              onDefinition={evaluate.setDefinition}
              rowHeader="Model (class mean)"
              testId="compare-metrics"
            />
          )}
        </div>
      )}
    </section>
  );
}
