import { useState } from 'react';
import { type InspectItem, useInspectStore } from '../../store/inspectStore.ts';
import { useModelStore } from '../../store/modelStore.ts';
import { COLORMAPS, type ColormapName, colormapGradient } from '../common/colormaps.ts';
import { baseName, downloadBlob } from '../common/download.ts';
import { useColorScale } from './colorScale.ts';
import { scoresCsv, scoresJson } from './exportScores.ts';
import { overlayPng } from './overlay.ts';

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function SelectedDetails({ item, threshold }: { item: InspectItem; threshold: number | undefined }) {
  const retry = useInspectStore((s) => s.retry);
  return (
    <section className="panel" data-testid="inspect-details">
      <h3 className="panel-title" title={item.name}>
        {item.name}
      </h3>
      {item.result && (
        <dl className="facts">
          <dt>Score</dt>
          <dd data-testid="selected-score">{item.result.score.toFixed(4)}</dd>
          <dt>Verdict</dt>
          <dd>
            {threshold === undefined ? (
              <span className="muted">no threshold chosen</span>
            ) : item.result.score >= threshold ? (
              <span className="verdict anomalous">Anomalous</span>
            ) : (
              <span className="verdict normal">Normal</span>
            )}
          </dd>
          <dt>Size</dt>
          <dd>
            {item.result.width} × {item.result.height}
          </dd>
          {item.result.timing && (
            <>
              <dt>Time</dt>
              <dd
                data-testid="selected-timing"
                data-timing={JSON.stringify(item.result.timing)}
                title="decoding this file; the encoder and the model for its batch"
              >
                {formatMs(item.result.timing.decodeMs)} decode · {formatMs(item.result.timing.encoderMs)} encoder ·{' '}
                {formatMs(item.result.timing.modelMs)} model
                {item.result.timing.batch > 1 && ` (batch of ${item.result.timing.batch})`}
              </dd>
            </>
          )}
        </dl>
      )}
      {item.state === 'failed' && (
        <>
          <p className="error-text" role="alert" data-testid="selected-error">
            {item.error}
          </p>
          <button type="button" className="button small" onClick={() => retry([item.id])}>
            Analyse again
          </button>
        </>
      )}
      {(item.state === 'queued' || item.state === 'analyzing') && (
        <p className="muted">{item.state === 'analyzing' ? 'Analysing…' : 'Waiting in the queue…'}</p>
      )}
    </section>
  );
}

function DisplayControls() {
  const display = useInspectStore((s) => s.display);
  const setDisplay = useInspectStore((s) => s.setDisplay);
  const model = useModelStore((s) => s.model);
  const setModelThreshold = useModelStore((s) => s.setThreshold);
  const { range, threshold, thresholdSource } = useColorScale();
  const span = range.high - range.low;
  const position = span > 0 ? Math.min(1, Math.max(0, (threshold - range.low) / span)) : 0.5;
  return (
    <section className="panel">
      <h3 className="panel-title">Display</h3>
      <fieldset className="segmented" aria-label="Layout">
        {(['overlay', 'side-by-side'] as const).map((layout) => (
          <button
            key={layout}
            type="button"
            aria-pressed={display.layout === layout}
            onClick={() => setDisplay({ layout })}
          >
            {layout === 'overlay' ? 'Overlay' : 'Side by side'}
          </button>
        ))}
      </fieldset>
      <label className="field">
        <span>Opacity {Math.round(display.opacity * 100)}%</span>
        <input
          type="range"
          min={0}
          max={1}
          step={0.05}
          value={display.opacity}
          aria-label="Overlay opacity"
          onChange={(e) => setDisplay({ opacity: Number(e.currentTarget.value) })}
        />
      </label>
      <label className="field">
        <span>Colormap</span>
        <select
          value={display.colormap}
          aria-label="Colormap"
          onChange={(e) => setDisplay({ colormap: e.currentTarget.value as ColormapName })}
        >
          {COLORMAPS.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
      <div className="legend">
        <div className="legend-bar" style={{ background: colormapGradient(display.colormap) }}>
          <span className="legend-threshold" style={{ left: `${position * 100}%` }} title="threshold" />
        </div>
        <div className="legend-labels">
          <span>{range.low.toFixed(3)}</span>
          <span>{range.high.toFixed(3)}</span>
        </div>
      </div>
      <label className="field">
        <span>
          Threshold{' '}
          <span className="muted">
            ({thresholdSource === 'model' ? "model's" : thresholdSource === 'user' ? 'set here' : 'not set, mid-range'})
          </span>
        </span>
        <div className="threshold-row">
          <input
            type="range"
            min={Math.min(range.low, threshold)}
            max={Math.max(range.high, threshold)}
            step={span > 0 ? span / 1000 : 0.001}
            value={threshold}
            aria-label="Threshold"
            onChange={(e) => setDisplay({ threshold: Number(e.currentTarget.value) })}
          />
          <input
            type="number"
            className="number"
            step={0.001}
            value={Number(threshold.toFixed(4))}
            aria-label="Threshold value"
            data-testid="threshold-value"
            onChange={(e) => {
              const value = Number(e.currentTarget.value);
              if (e.currentTarget.value !== '' && Number.isFinite(value)) setDisplay({ threshold: value });
            }}
          />
        </div>
      </label>
      <label className="checkbox">
        <input
          type="checkbox"
          checked={display.contours}
          onChange={(e) => setDisplay({ contours: e.currentTarget.checked })}
        />
        Outline regions above the threshold
      </label>
      <div className="button-row">
        {thresholdSource === 'user' && model && (
          <button type="button" className="button small" onClick={() => setModelThreshold(threshold)}>
            Keep as the model's threshold
          </button>
        )}
        {thresholdSource === 'user' && (
          <button type="button" className="button small" onClick={() => setDisplay({ threshold: undefined })}>
            Reset
          </button>
        )}
      </div>
    </section>
  );
}

function ExportPanel({ selected }: { selected: InspectItem | undefined }) {
  const items = useInspectStore((s) => s.items);
  const display = useInspectStore((s) => s.display);
  const modelName = useModelStore((s) => s.model?.name);
  const { range, threshold, decisionThreshold } = useColorScale();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const analysed = items.some((item) => item.state === 'done' || item.state === 'failed');
  const context = { modelName, threshold: decisionThreshold };
  const exportOverlay = async () => {
    if (!selected?.result) return;
    setBusy(true);
    setError(undefined);
    let bitmap: ImageBitmap | undefined;
    try {
      bitmap = await createImageBitmap(selected.source);
      const png = await overlayPng(bitmap, selected.result, {
        colormap: display.colormap,
        range,
        opacity: display.opacity,
        threshold: display.contours ? threshold : undefined,
      });
      downloadBlob(png, `${baseName(selected.name)}_anomaly.png`);
    } catch (failure) {
      setError(`The overlay could not be exported: ${(failure as Error).message}`);
    } finally {
      bitmap?.close();
      setBusy(false);
    }
  };
  return (
    <section className="panel">
      <h3 className="panel-title">Export</h3>
      <div className="button-row">
        <button
          type="button"
          className="button small"
          disabled={!selected?.result || busy}
          onClick={exportOverlay}
          data-testid="export-overlay"
        >
          Overlay PNG
        </button>
        <button
          type="button"
          className="button small"
          disabled={!analysed}
          data-testid="export-csv"
          onClick={() => downloadBlob(new Blob([scoresCsv(items, context)], { type: 'text/csv' }), 'scores.csv')}
        >
          Scores CSV
        </button>
        <button
          type="button"
          className="button small"
          disabled={!analysed}
          data-testid="export-json"
          onClick={() =>
            downloadBlob(new Blob([scoresJson(items, context)], { type: 'application/json' }), 'scores.json')
          }
        >
          Scores JSON
        </button>
      </div>
      {error && <p className="error-text">{error}</p>}
    </section>
  );
}

/** The right-hand column: the selected image's facts, display settings, exports. */
export function InspectSidebar({ selected }: { selected: InspectItem | undefined }) {
  const { decisionThreshold } = useColorScale();
  return (
    <aside className="inspect-sidebar">
      {selected && <SelectedDetails item={selected} threshold={decisionThreshold} />}
      <DisplayControls />
      <ExportPanel selected={selected} />
    </aside>
  );
}
