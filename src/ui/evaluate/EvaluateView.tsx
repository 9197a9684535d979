import { useEffect, useState } from 'react';
import { type EvaluationResult, useEvaluateStore } from '../../store/evaluateStore.ts';
import { useModelStore } from '../../store/modelStore.ts';
import { useScansStore } from '../../store/scansStore.ts';
import { DropZone, FilePickButton } from '../common/DropZone.tsx';
import { EngineStatusBar } from '../common/EngineStatusBar.tsx';
import { engineBlocker, useEngineStatus } from '../common/engineStatus.ts';
import { ProgressBar } from '../common/ProgressBar.tsx';
import { type DatasetSource, listSampleSets, type SampleSet } from './datasetSource.ts';
import { EvaluationPlots } from './EvaluationPlots.tsx';
import type { EvaluationProgress } from './evaluationRun.ts';
import { type MetricsRow, MetricsTable } from './MetricsTable.tsx';
import { ThresholdPanel } from './ThresholdPanel.tsx';

const PER_CLASS_CHOICES = [undefined, 4, 10, 25, 50] as const;

const LAYOUT_HINT = `<class>/test/good/*.png
<class>/test/<defect type>/*.png
<class>/ground_truth/<defect type>/<name>_mask.png`;

function SampleSetPicker(props: { onChoose(sets: SampleSet[]): void; disabled: boolean }) {
  const [sets, setSets] = useState<SampleSet[]>();
  const [choice, setChoice] = useState('');
  useEffect(() => {
    let active = true;
    void listSampleSets().then((found) => {
      if (!active) return;
      setSets(found);
      setChoice(found[0]?.name ?? '');
    });
    return () => {
      active = false;
    };
  }, []);
  if (!sets || sets.length === 0) return null;
  const chosen = choice === '*' ? sets : sets.filter((s) => s.name === choice);
  return (
    <div className="sample-picker">
      <span className="muted">or a sample set:</span>
      <select
        value={choice}
        onChange={(event) => setChoice(event.currentTarget.value)}
        data-testid="evaluate-sample-select"
        aria-label="Sample set"
      >
        {sets.map((s) => (
          <option key={s.name} value={s.name}>
            {s.name} ({s.testImages} test images)
          </option>
        ))}
        {sets.length > 1 && <option value="*">all {sets.length} sample sets</option>}
      </select>
      <button
        type="button"
        className="button"
        disabled={props.disabled || chosen.length === 0}
        data-testid="evaluate-sample-use"
        onClick={() => props.onChoose(chosen)}
      >
        Use
      </button>
    </div>
  );
}

function SourceSummary({ source }: { source: DatasetSource }) {
  const { classes, ignored } = source.dataset;
  return (
    <div className="source-summary" data-testid="evaluate-source">
      <div>
        <strong data-testid="evaluate-source-label">{source.label}</strong>{' '}
        <span className="muted">
          {classes.length} {classes.length === 1 ? 'class' : 'classes'}
        </span>
      </div>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Class</th>
            <th scope="col">Good</th>
            <th scope="col">Defective</th>
            <th scope="col">Defect types</th>
          </tr>
        </thead>
        <tbody>
          {classes.map((c) => {
            const defective = c.test.filter((t) => t.label === 1);
            const types = [...new Set(defective.map((t) => t.defectType))];
            return (
              <tr key={c.name}>
                <th scope="row">{c.name}</th>
                <td>{c.test.length - defective.length}</td>
                <td>{defective.length}</td>
                <td className="muted">{types.join(', ') || '—'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {ignored.length > 0 && (
        <p className="note">
          {ignored.length} {ignored.length === 1 ? 'file is' : 'files are'} not part of the layout and left out (e.g.{' '}
          {ignored[0]}).
        </p>
      )}
    </div>
  );
}

function progressLabel(progress: EvaluationProgress | undefined): string {
  if (!progress) return 'Starting…';
  if (progress.stage === 'reading') return 'Fetching the sample files';
  if (progress.stage === 'analyzing') return 'Analysing test images';
  return 'Computing the metrics';
}

function ResultHeader({ result }: { result: EvaluationResult }) {
  const { summary } = result;
  const notes = [
    ...result.failed.map((f) => `${f.name}: ${f.error}`),
    ...summary.skipped.map((s) => `${s.name}: ${s.error}`),
  ];
  return (
    <div className="result-header">
      <p data-testid="evaluate-result-caption">
        <strong>{result.modelName}</strong> on <strong>{result.sourceLabel}</strong>:{' '}
        {result.analyzed - summary.skipped.length} of {result.total} test images evaluated.
        {result.cancelled && (
          <span className="badge warning" data-testid="evaluate-partial">
            partial: stopped by you
          </span>
        )}
      </p>
      {notes.length > 0 && (
        <details className="problems" open={notes.length <= 3}>
          <summary className="error-text">
            {notes.length} {notes.length === 1 ? 'image was' : 'images were'} left out of the metrics
          </summary>
          <ul>
            {notes.slice(0, 50).map((note) => (
              <li key={note}>{note}</li>
            ))}
          </ul>
        </details>
      )}
      {summary.emptyMasks.length > 0 && (
        <p className="note">
          {summary.emptyMasks.length} defective {summary.emptyMasks.length === 1 ? 'image has' : 'images have'} a mask
          with no defect pixel at 256×256; counted as good, as the benchmark does.
        </p>
      )}
    </div>
  );
}

function Results({ result }: { result: EvaluationResult }) {
  const { definition, setDefinition, thresholdPosition, setThresholdPosition } = useEvaluateStore();
  const model = useModelStore((s) => s.model);
  const setThreshold = useModelStore((s) => s.setThreshold);
  const { summary, figures } = result;
  const rows: MetricsRow[] = [
    ...summary.classes.map((c) => ({
      key: c.className,
      label: `${c.className} (${c.images})`,
      metrics: c,
      reasons: c.undefinedReasons,
    })),
    { key: 'mean', label: 'Mean', metrics: summary.mean, isMean: true },
  ];
  const saveBlocker = !model
    ? 'Load a model to save a threshold on it.'
    : model.bytes !== result.modelBytes
      ? `These results are for ${result.modelName}; the loaded model is ${model.name}. Evaluate it to set its threshold.`
      : undefined;
  return (
    <div className="evaluate-results" data-testid="evaluate-results">
      <ResultHeader result={result} />
      <section className="panel">
        <h3 className="panel-title">Metrics</h3>
        <MetricsTable
          rows={rows}
          definition={definition}
          onDefinition={setDefinition}
          rowHeader="Class (images)"
          testId="metrics-table"
        />
      </section>
      <section className="panel">
        <h3 className="panel-title">Decision threshold</h3>
        <ThresholdPanel
          figures={figures}
          position={thresholdPosition}
          onPosition={setThresholdPosition}
          saved={model?.threshold}
          saveBlocker={saveBlocker}
          onSave={setThreshold}
        />
      </section>
      <EvaluationPlots summary={summary} threshold={figures.threshold(thresholdPosition)} />
    </div>
  );
}

/** The Evaluate screen: the loaded model on a labelled test set, its metrics, curves and decision threshold. */
export function EvaluateView() {
  const { source, sourceError, perClass, run, result, chooseFolder, chooseSamples, setPerClass, start, cancel } =
    useEvaluateStore();
  const model = useModelStore((s) => s.model);
  const modelLoading = useModelStore(
    (s) => s.loading ?? (s.defaultModel === 'checking' ? 'the default model' : undefined),
  );
  const blocker = engineBlocker(useEngineStatus());
  // The Scans screen's comparison swaps models in the engine: no evaluation meanwhile.
  const comparing = useScansStore((s) => s.comparison.state === 'running');
  const running = run.state === 'running';
  const progress = running ? run.progress : undefined;
  return (
    <section className="evaluate-view" data-testid="evaluate-view">
      <EngineStatusBar />
      <section className="panel">
        <h3 className="panel-title">Labelled test set</h3>
        <DropZone
          onFiles={chooseFolder}
          hint="Drop the folder to evaluate on"
          className="dataset-drop"
          testId="evaluate-drop-zone"
        >
          <div className="dataset-drop-body">
            <div>
              <p>
                Drop a folder in the MVTec AD layout (one class, or several side by side), or{' '}
                <FilePickButton
                  label="choose a folder…"
                  folder
                  onFiles={chooseFolder}
                  testId="evaluate-folder-input"
                  disabled={running}
                />
              </p>
              <pre className="layout-hint">{LAYOUT_HINT}</pre>
            </div>
            <SampleSetPicker onChoose={chooseSamples} disabled={running} />
          </div>
        </DropZone>
        {sourceError && (
          <p className="notice error" role="alert" data-testid="evaluate-source-error">
            {sourceError}
          </p>
        )}
        {source && <SourceSummary source={source} />}
        <div className="button-row">
          <label className="field inline">
            Test images per class
            <select
              value={perClass ?? ''}
              onChange={(event) =>
                setPerClass(event.currentTarget.value === '' ? undefined : Number(event.currentTarget.value))
              }
              disabled={running}
              data-testid="evaluate-per-class"
            >
              {PER_CLASS_CHOICES.map((n) => (
                <option key={n ?? 'all'} value={n ?? ''}>
                  {n === undefined ? 'all' : `at most ${n} (balanced over defect types)`}
                </option>
              ))}
            </select>
          </label>
          <button
            type="button"
            className="button primary"
            data-testid="evaluate-start"
            disabled={!source || !model || running || comparing || blocker !== undefined}
            onClick={() => void start()}
          >
            {model ? `Evaluate ${model.name}` : 'Evaluate'}
          </button>
          {!model && (
            <span className="muted">{modelLoading ? `Loading ${modelLoading}…` : 'Load a model first (Models).'}</span>
          )}
          {comparing && <span className="muted">Waiting for the model comparison in Scans to finish.</span>}
        </div>
        {running && (
          <ProgressBar
            testId="evaluate-progress"
            label={progressLabel(progress)}
            done={progress?.done ?? 0}
            total={progress?.total ?? 0}
            imagesPerSecond={progress?.stage === 'analyzing' ? progress.imagesPerSecond : undefined}
            etaSeconds={progress?.stage === 'analyzing' ? progress.etaSeconds : undefined}
            onCancel={cancel}
          />
        )}
        {run.state === 'failed' && (
          <p className="notice error" role="alert" data-testid="evaluate-error">
            {run.error}
          </p>
        )}
      </section>
      {result ? (
        <Results result={result} />
      ) : (
        !running && (
          <p className="empty-state">
            The metrics, curves and a threshold chosen on your labelled images will appear here.
          </p>
        )
      )}
    </section>
  );
}
