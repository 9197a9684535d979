import { create } from 'zustand';
import type { TrainingProgress } from '../../training/trainLoop.ts';
import { saveToLibrary } from '../storage/modelLibrary.ts';
import {
  discardSavedRun,
  type LossPoint,
  loadSavedRun,
  type SavedTrainingRun,
} from '../storage/trainingCheckpoints.ts';
import { describeConfig } from '../ui/models/modelFile.ts';
import { TrainingClient, type TrainingHostOptions } from '../worker/trainingClient.ts';
import type { StartTrainingRequest, TrainingEvent } from '../worker/trainingProtocol.ts';
import { useModelStore } from './modelStore.ts';

export type TrainingPhase =
  | 'idle'
  | 'preparing'
  | 'running'
  | 'pausing'
  | 'paused'
  | 'stopping'
  | 'stopped'
  | 'finished'
  | 'diverged'
  | 'failed';

/** The trained weights (or, after a divergence, the last good ones). */
export interface TrainingResult {
  name: string;
  weights: Uint8Array;
  record: Record<string, unknown>;
  /** What happened to them: loaded in the studio, kept in the library. */
  outcome?: string;
}

interface TrainingState {
  phase: TrainingPhase;
  /** What preparation is doing now. */
  status?: string;
  /** The run being trained here. */
  run?: SavedTrainingRun;
  progress?: TrainingProgress;
  /** Wall time of the last step as the page saw it (the first after a start also compiles the GPU pipelines). */
  stepSeconds?: number;
  losses: LossPoint[];
  /** Step of the last checkpoint stored in the browser. */
  checkpointStep?: number;
  device?: { adapterName: string; encoderBackend: string };
  /** Why training was refused or stopped. */
  error?: string;
  warning?: string;
  result?: TrainingResult;
  /** The checkpoint step this run resumed from (after a reload or a stop), if it did. */
  resumedFrom?: number;
  /** A stored run that is not training here (after a reload or a stop): it can be resumed or discarded. */
  saved?: SavedTrainingRun;
  /** Reads the stored run (call when the Train screen opens). */
  refreshSaved(): Promise<void>;
  start(request: StartTrainingRequest, options: TrainingHostOptions): void;
  resumeSaved(options: TrainingHostOptions): void;
  discardSaved(): Promise<void>;
  pause(): void;
  continue(): void;
  stop(): void;
  /** Loads the result into the studio and keeps it in the library (done by itself when training finishes). */
  keepResult(): Promise<void>;
}

let client: TrainingClient | undefined;
/** Set by resumeSaved until the worker reports where training continues. */
let resuming = false;
/** When the step in progress began (the 'running' event or the previous step's progress). */
let stepStartedAt = 0;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The training worker, started on first use and kept for the page's life (it holds the encoder between runs). */
function trainingClient(): TrainingClient {
  client ??= new TrainingClient((event) => handleEvent(event));
  return client;
}

const isActive = (phase: TrainingPhase) =>
  phase === 'preparing' || phase === 'running' || phase === 'pausing' || phase === 'paused' || phase === 'stopping';

export const useTrainingStore = create<TrainingState>((set, get) => ({
  phase: 'idle',
  losses: [],
  async refreshSaved() {
    try {
      const saved = await loadSavedRun();
      // The run training here is not "stored elsewhere".
      set({ saved: saved && !(isActive(get().phase) && saved.runId === get().run?.runId) ? saved : undefined });
    } catch (error) {
      set({ warning: `stored training runs cannot be read: ${errorText(error)}` });
    }
  },
  start(request, options) {
    if (isActive(get().phase)) return;
    set({
      phase: 'preparing',
      status: 'Starting…',
      run: undefined,
      progress: undefined,
      stepSeconds: undefined,
      losses: [],
      checkpointStep: undefined,
      error: undefined,
      warning: undefined,
      result: undefined,
      saved: undefined,
      resumedFrom: undefined,
    });
    resuming = false;
    trainingClient().start(request, options);
  },
  resumeSaved(options) {
    if (isActive(get().phase)) return;
    const saved = get().saved;
    set({
      phase: 'preparing',
      status: 'Starting…',
      run: saved,
      progress: undefined,
      stepSeconds: undefined,
      losses: saved?.losses ?? [],
      checkpointStep: saved?.checkpointStep,
      error: undefined,
      warning: undefined,
      result: undefined,
      saved: undefined,
      resumedFrom: undefined,
    });
    resuming = true;
    trainingClient().resumeSaved(options);
  },
  async discardSaved() {
    try {
      await discardSavedRun();
      set({ saved: undefined, ...(get().phase === 'stopped' ? { phase: 'idle' as const } : {}) });
    } catch (error) {
      set({ error: `the stored run could not be discarded: ${errorText(error)}` });
    }
  },
  pause() {
    if (get().phase !== 'running') return;
    set({ phase: 'pausing' });
    trainingClient().pause();
  },
  continue() {
    if (get().phase !== 'paused' && get().phase !== 'pausing') return;
    set({ phase: 'running' });
    trainingClient().continue();
  },
  stop() {
    if (!isActive(get().phase) || get().phase === 'preparing') return;
    set({ phase: 'stopping' });
    trainingClient().stop();
  },
  async keepResult() {
    const result = get().result;
    if (!result) return;
    const model = await useModelStore.getState().loadModel(result.weights, result.name, 'training');
    if (!model) {
      set({ error: `the trained model could not be loaded: ${useModelStore.getState().error ?? 'unknown error'}` });
      return;
    }
    let outcome = `"${result.name}" is now the studio's model`;
    try {
      await saveToLibrary(result.name, result.weights, describeConfig(model));
      outcome += ' and is saved in the library (Models).';
    } catch (error) {
      outcome += `, but it could not be saved in the library (${errorText(error)}): download it or save it in Models.`;
    }
    set({ result: { ...result, outcome } });
  },
}));

function handleEvent(event: TrainingEvent): void {
  const { getState: get, setState: set } = useTrainingStore;
  switch (event.type) {
    case 'preparing':
      set({ phase: 'preparing', status: event.message });
      return;
    case 'running':
      set({
        phase: get().phase === 'pausing' ? 'pausing' : 'running',
        status: undefined,
        run: event.run,
        losses: event.run.losses,
        checkpointStep: event.run.checkpointStep,
        device: { adapterName: event.adapterName, encoderBackend: event.encoderBackend },
        // The stored run is this one now (a new start replaced any other).
        saved: undefined,
        ...(resuming ? { resumedFrom: event.step } : {}),
      });
      resuming = false;
      stepStartedAt = performance.now();
      return;
    case 'progress': {
      const now = performance.now();
      set({
        progress: event.progress,
        stepSeconds: (now - stepStartedAt) / 1000,
        losses: [...get().losses, { step: event.progress.step, loss: event.progress.loss }],
      });
      stepStartedAt = now;
      return;
    }
    case 'checkpoint':
      set({ checkpointStep: event.step });
      return;
    case 'warning':
      set({ warning: event.message });
      return;
    case 'paused':
      // A continue may already be on its way (the store then says 'running').
      if (get().phase === 'pausing') set({ phase: 'paused' });
      return;
    case 'stopped':
      set({ phase: 'stopped', checkpointStep: event.step });
      void get().refreshSaved();
      return;
    case 'finished':
      set({
        phase: 'finished',
        saved: undefined,
        result: { name: event.name, weights: event.weights, record: event.record },
      });
      void get().keepResult();
      return;
    case 'diverged':
      set({
        phase: 'diverged',
        saved: undefined,
        error: event.message,
        result: { name: event.name, weights: event.weights, record: {} },
      });
      return;
    case 'refused':
      resuming = false;
      set({ phase: 'idle', status: undefined, run: undefined, losses: [], error: event.message });
      void get().refreshSaved();
      return;
    case 'failed':
      set({ phase: 'failed', status: undefined, error: event.message });
      if (event.resumable) void get().refreshSaved();
      return;
  }
}
