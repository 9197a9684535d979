import type { SavedTrainingRun } from '../../storage/trainingCheckpoints.ts';
import { type TrainingPhase, useTrainingStore } from '../../store/trainingStore.ts';
import { downloadBlob, formatBytes } from '../common/download.ts';
import { formatDuration, ProgressBar } from '../common/ProgressBar.tsx';
import { LossPlot } from './LossPlot.tsx';

const PHASE_LABELS: Record<TrainingPhase, string> = {
  idle: 'Not started',
  preparing: 'Preparing',
  running: 'Training',
  pausing: 'Pausing after this step',
  paused: 'Paused',
  stopping: 'Stopping after this step',
  stopped: 'Stopped',
  finished: 'Finished',
  diverged: 'Diverged',
  failed: 'Stopped by an error',
};

/** One line about a run's model and data, e.g. for the resume banner. */
export function describeRun(run: SavedTrainingRun): string {
  const c = run.config;
  const origin = run.from === 'scratch' ? 'from scratch' : `fine-tuning ${run.from}`;
  return (
    `${run.options.images.length} images · ${c.inputSize} px · ${c.scan}×${c.directions} · depths ` +
    `${c.depths.join('·')} · ${origin} · ${run.options.epochs} epoch${run.options.epochs === 1 ? '' : 's'} of ` +
    `batch ${run.options.batch}`
  );
}

function stepsPerEpoch(run: SavedTrainingRun): number {
  return Math.max(1, Math.floor(run.options.images.length / run.options.batch));
}

/** The stored run that is not training here (after a reload or a stop): resume or discard it. */
export function SavedRunBanner(props: { run: SavedTrainingRun; onResume(): void }) {
  const discard = useTrainingStore((s) => s.discardSaved);
  const { run } = props;
  const at =
    run.checkpointStep > 0 ? `step ${run.checkpointStep} of ${run.totalSteps}` : 'its start (no checkpoint yet)';
  return (
    <section className="notice train-banner" aria-label="Unfinished training run" data-testid="train-saved-run">
      <div>
        <strong>Unfinished training run “{run.modelName}”</strong>
        <div className="muted">
          Stored at {at}, {new Date(run.updatedAt).toLocaleString()}. {describeRun(run)}.
        </div>
      </div>
      <div className="button-row">
        <button
          type="button"
          className="button primary"
          data-testid="train-resume-saved"
          data-step={run.checkpointStep}
          onClick={props.onResume}
        >
          Resume from step {run.checkpointStep}
        </button>
        <button type="button" className="button" data-testid="train-discard-saved" onClick={() => void discard()}>
          Discard
        </button>
      </div>
    </section>
  );
}

function Stat(props: { label: string; value: string; testId?: string }) {
  return (
    <div className="train-stat">
      <span className="train-stat-label">{props.label}</span>
      <span className="train-stat-value" data-testid={props.testId}>
        {props.value}
      </span>
    </div>
  );
}

function ResultActions() {
  const result = useTrainingStore((s) => s.result);
  const phase = useTrainingStore((s) => s.phase);
  const keep = useTrainingStore((s) => s.keepResult);
  if (!result) return null;
  const fileName = result.name.endsWith('.safetensors') ? result.name : `${result.name}.safetensors`;
  return (
    <div className="train-result" data-testid="train-result">
      {result.outcome ? (
        <p className="ok-text" data-testid="train-result-outcome">
          {result.outcome}
        </p>
      ) : phase === 'finished' ? (
        <p className="muted">Loading the trained model into the studio…</p>
      ) : (
        <p>The weights from before the failing step are kept: use them, or download them.</p>
      )}
      <div className="button-row">
        {phase === 'diverged' && !result.outcome && (
          <button type="button" className="button primary" onClick={() => void keep()}>
            Use the last good weights
          </button>
        )}
        <button
          type="button"
          className="button"
          data-testid="train-download"
          onClick={() => downloadBlob(new Blob([result.weights as Uint8Array<ArrayBuffer>]), fileName)}
        >
          Download {fileName} ({formatBytes(result.weights.byteLength)})
        </button>
      </div>
    </div>
  );
}

/** The run training here: state, progress, controls, loss plot, and the result at the end. */
export function TrainRunPanel() {
  const state = useTrainingStore();
  const { phase, run, progress, losses } = state;
  if (phase === 'idle' && !state.error) {
    return (
      <div className="panel train-empty" data-testid="train-empty">
        <h3>No training run yet</h3>
        <p className="muted">
          Choose normal (defect-free) images and a model on the left, then start training. Progress, the loss curve and
          checkpoints appear here; a run continues after a page reload from its last checkpoint.
        </p>
      </div>
    );
  }
  const step = progress?.step ?? run?.checkpointStep ?? 0;
  const total = progress?.steps ?? run?.totalSteps ?? 0;
  const epoch = progress?.epoch ?? (run ? Math.min(run.options.epochs, Math.floor(step / stepsPerEpoch(run)) + 1) : 0);
  const active = phase === 'running' || phase === 'pausing' || phase === 'paused' || phase === 'stopping';
  const lastLoss = losses.at(-1)?.loss;
  return (
    <section className="panel train-run" data-testid="train-run" data-phase={phase}>
      <div className="train-run-header">
        <h3 className="panel-title">{run ? `Training “${run.modelName}”` : 'Training'}</h3>
        <span className={`chip train-phase ${phase}`} data-testid="train-phase">
          {PHASE_LABELS[phase]}
        </span>
      </div>
      {run && <p className="muted small">{describeRun(run)}</p>}
      {state.device && (
        <p className="muted small">
          GPU: {state.device.adapterName} · encoder on {state.device.encoderBackend}
        </p>
      )}
      {phase === 'preparing' && (
        <p className="train-status" data-testid="train-status">
          <span className="spinner" aria-hidden="true" /> {state.status}
        </p>
      )}
      {state.error && (
        <p className="notice error" role="alert" data-testid="train-error">
          {state.error}
        </p>
      )}
      {state.warning && (
        <p className="notice" data-testid="train-warning">
          {state.warning}
        </p>
      )}
      {run && (
        <>
          <ProgressBar
            done={step}
            total={total}
            label="Step"
            testId="train-progress"
            {...(progress && active
              ? { imagesPerSecond: progress.imagesPerSecond, etaSeconds: progress.etaSeconds }
              : {})}
          />
          <div className="train-stats">
            <Stat label="Epoch" value={`${epoch} / ${run.options.epochs}`} />
            <Stat label="Step" value={`${step} / ${total}`} testId="train-step" />
            <Stat label="Loss" value={lastLoss === undefined ? '—' : lastLoss.toPrecision(4)} testId="train-loss" />
            <Stat
              label="Last step"
              value={state.stepSeconds === undefined ? '—' : `${state.stepSeconds.toFixed(1)} s`}
              testId="train-step-seconds"
            />
            <Stat
              label="Time left"
              value={
                progress && active && Number.isFinite(progress.etaSeconds) ? formatDuration(progress.etaSeconds) : '—'
              }
            />
            <Stat
              label="Last checkpoint"
              value={state.checkpointStep ? `step ${state.checkpointStep}` : 'none yet'}
              testId="train-checkpoint"
            />
          </div>
          <span hidden data-testid="train-step-value" data-step={step} data-checkpoint={state.checkpointStep ?? 0} />
          {state.resumedFrom !== undefined && (
            <p className="muted" data-testid="train-resumed" data-step={state.resumedFrom}>
              Resumed from the checkpoint at step {state.resumedFrom}.
            </p>
          )}
        </>
      )}
      <div className="button-row">
        {(phase === 'running' || phase === 'pausing') && (
          <button
            type="button"
            className="button"
            data-testid="train-pause"
            disabled={phase === 'pausing'}
            onClick={state.pause}
          >
            {phase === 'pausing' ? 'Pausing…' : 'Pause'}
          </button>
        )}
        {phase === 'paused' && (
          <button type="button" className="button primary" data-testid="train-continue" onClick={state.continue}>
            Continue
          </button>
        )}
        {active && (
          <button
            type="button"
            className="button danger"
            data-testid="train-stop"
            disabled={phase === 'stopping'}
            onClick={state.stop}
            title="Stop training and free the GPU; the run stays stored and can be resumed or discarded"
          >
            {phase === 'stopping' ? 'Stopping…' : 'Stop'}
          </button>
        )}
      </div>
      {phase === 'paused' && (
        <p className="muted">Paused between steps; the model stays on the GPU and a checkpoint is stored.</p>
      )}
      {phase === 'stopped' && (
        <p className="muted">Stopped at step {state.checkpointStep}; the run is stored: resume or discard it above.</p>
      )}
      <ResultActions />
      {run && losses.length > 0 && (
        <LossPlot losses={losses} stepsPerEpoch={stepsPerEpoch(run)} totalSteps={run.totalSteps} />
      )}
    </section>
  );
}
