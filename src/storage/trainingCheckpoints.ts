/**
 * The studio's unfinished training run in IndexedDB (store `checkpoints`), so that a run survives a page reload: the
 * training worker writes it, the Train screen finds it after a reload and offers to resume or discard it. One run is
 * kept, in three records: the run's summary (small, read on the main thread), its inputs (the images' bytes and a
 * fine-tune's starting weights, stored once) and its last checkpoint (training/checkpoint.ts, rewritten every few
 * steps together with the summary, in one transaction).
 */
import type { TrainingRunOptions } from '../../training/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import { idbGet, idbWriteAll } from './idb.ts';

export interface LossPoint {
  step: number;
  loss: number;
}

/** What the Train screen shows of a run, and what the worker needs besides the inputs and the checkpoint. */
export interface SavedTrainingRun {
  runId: string;
  /** The name the trained model gets. */
  modelName: string;
  /** What the run started from: "scratch" or the fine-tuned model's name. */
  from: string;
  config: ModelConfig;
  options: TrainingRunOptions;
  checkpointEvery: number;
  weightsDtype: 'F32' | 'F16';
  totalSteps: number;
  /** Steps done at the last stored checkpoint (0 before the first: a resume then starts over). */
  checkpointStep: number;
  /** The loss of every step up to the checkpoint. */
  losses: LossPoint[];
  startedAt: string;
  updatedAt: string;
}

/** A training image as the user gave it: a file (Blob) or bytes; decoded in the worker. */
export interface TrainingImageFile {
  name: string;
  bytes: Uint8Array | Blob;
}

export interface SavedTrainingInputs {
  runId: string;
  images: TrainingImageFile[];
  /** A fine-tune's starting weights (a run from scratch re-creates its initial weights from the seed). */
  initialWeights?: Uint8Array;
}

interface SavedCheckpoint {
  runId: string;
  step: number;
  bytes: Uint8Array;
}

const STORE = 'checkpoints';
const RUN_KEY = 'training-run';
const INPUTS_KEY = 'training-run-inputs';
const CHECKPOINT_KEY = 'training-run-checkpoint';

/** Stores a new run (replacing any earlier one, checkpoint included). */
export function saveRunStart(run: SavedTrainingRun, inputs: SavedTrainingInputs): Promise<void> {
  return idbWriteAll(STORE, {
    delete: [CHECKPOINT_KEY],
    put: [
      [INPUTS_KEY, inputs],
      [RUN_KEY, run],
    ],
  });
}

/** Stores a checkpoint and the run's summary as of that checkpoint, together. */
export function saveRunCheckpoint(run: SavedTrainingRun, checkpoint: Uint8Array): Promise<void> {
  const record: SavedCheckpoint = { runId: run.runId, step: run.checkpointStep, bytes: checkpoint };
  return idbWriteAll(STORE, {
    put: [
      [CHECKPOINT_KEY, record],
      [RUN_KEY, run],
    ],
  });
}

export function loadSavedRun(): Promise<SavedTrainingRun | undefined> {
  return idbGet<SavedTrainingRun>(STORE, RUN_KEY);
}

export async function loadRunInputs(runId: string): Promise<SavedTrainingInputs> {
  const inputs = await idbGet<SavedTrainingInputs>(STORE, INPUTS_KEY);
  if (inputs?.runId !== runId) {
    throw new Error('the stored training run has lost its images (browser storage was cleared?); start it again');
  }
  return inputs;
}

/** The run's last checkpoint, or undefined before the first. */
export async function loadRunCheckpoint(runId: string): Promise<Uint8Array | undefined> {
  const checkpoint = await idbGet<SavedCheckpoint>(STORE, CHECKPOINT_KEY);
  return checkpoint?.runId === runId ? checkpoint.bytes : undefined;
}

export function discardSavedRun(): Promise<void> {
  return idbWriteAll(STORE, { delete: [RUN_KEY, INPUTS_KEY, CHECKPOINT_KEY] });
}
