/**
 * Messages between the Train screen (src/worker/trainingClient.ts) and the training worker
 * (src/worker/trainingWorker.ts). Everything here is structured-cloneable.
 */
import type { TrainingRunOptions } from '../../training/checkpoint.ts';
import type { TrainingProgress } from '../../training/trainLoop.ts';
import type { ModelConfig } from '../model/config.ts';
import type { SavedTrainingRun, TrainingImageFile } from '../storage/trainingCheckpoints.ts';

export type TrainingModelSource =
  | { kind: 'scratch'; config: ModelConfig }
  /** Fine-tune a weights file (the studio's loaded model). */
  | { kind: 'fine-tune'; name: string; weights: Uint8Array };

export interface StartTrainingRequest {
  /** The name the trained model gets in the studio. */
  modelName: string;
  source: TrainingModelSource;
  options: Omit<TrainingRunOptions, 'images'>;
  images: TrainingImageFile[];
  /** Steps between checkpoints stored in IndexedDB. */
  checkpointEvery: number;
  /** Precision of the trained weights file. */
  weightsDtype: 'F32' | 'F16';
}

/** What the worker needs from the page besides the run itself. */
export interface TrainingEnvironment {
  /** The encoder weights the studio serves; a user-picked file (encoderWeights) takes precedence. */
  encoderWeightsUrl: string;
  encoderWeights?: Uint8Array;
  /** GPU memory the run may use (WebGPU cannot report the adapter's memory): a larger batch is refused. */
  gpuMemoryBudgetBytes: number;
}

export type TrainingCommand =
  | ({ type: 'start'; request: StartTrainingRequest } & TrainingEnvironment)
  /** Continue the run stored in IndexedDB (after a reload or a stop). */
  | ({ type: 'resume-saved' } & TrainingEnvironment)
  /** Stop between steps and wait, everything kept on the GPU (a checkpoint is stored). */
  | { type: 'pause' }
  | { type: 'continue' }
  /** Stop between steps and free the GPU; the run stays stored (checkpoint at the current step) for later. */
  | { type: 'stop' };

export type TrainingEvent =
  /** Getting ready: opening the GPU, loading the encoder, checking and encoding the images, restoring. */
  | { type: 'preparing'; message: string }
  /** Training (re)started at `step`; `run` holds the options and the losses up to that step. */
  | { type: 'running'; run: SavedTrainingRun; step: number; adapterName: string; encoderBackend: string }
  | { type: 'progress'; progress: TrainingProgress }
  | { type: 'checkpoint'; step: number }
  /** Something went wrong that does not stop training (e.g. a checkpoint could not be stored). */
  | { type: 'warning'; message: string }
  | { type: 'paused'; step: number }
  /** Stopped on request; the run is stored at `step` and can be resumed. */
  | { type: 'stopped'; step: number }
  | { type: 'finished'; name: string; weights: Uint8Array; record: Record<string, unknown> }
  /** The loss became NaN/Inf: training stopped; `weights` are the last good ones (before that step). */
  | { type: 'diverged'; message: string; step: number; name: string; weights: Uint8Array }
  /** The request cannot work (too few images, a file that is not an image, ...): nothing was started or stored. */
  | { type: 'refused'; message: string }
  /** Training stopped on an error; `resumable` when the run is stored and can continue from its last checkpoint. */
  | { type: 'failed'; message: string; resumable: boolean };
