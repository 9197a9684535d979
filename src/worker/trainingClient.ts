import { ENCODER_WEIGHTS_PATH } from './engineClient.ts';
import type { StartTrainingRequest, TrainingCommand, TrainingEnvironment, TrainingEvent } from './trainingProtocol.ts';

/** A view's buffer when the view spans all of it (then it can be transferred); otherwise nothing (it is copied). */
function wholeBuffer(view: Uint8Array): ArrayBuffer[] {
  const { buffer } = view;
  return buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buffer.byteLength
    ? [buffer]
    : [];
}

/** The page's side of a start or resume: the served encoder weights' URL, a picked file, the memory budget. */
export interface TrainingHostOptions {
  encoderWeights?: Uint8Array;
  gpuMemoryBudgetBytes: number;
}

function environment(options: TrainingHostOptions): TrainingEnvironment {
  const encoderWeightsUrl = new URL(`${import.meta.env.BASE_URL}${ENCODER_WEIGHTS_PATH}`, location.origin).href;
  return { encoderWeightsUrl, ...options };
}

/**
 * The main thread's handle on the training worker (src/worker/trainingWorker.ts). Commands go in; every event the
 * worker reports (progress, checkpoints, pauses, the trained weights, errors) comes out through `onEvent`.
 */
export class TrainingClient {
  private readonly worker: Worker;

  constructor(onEvent: (event: TrainingEvent) => void) {
    this.worker = new Worker(new URL('./trainingWorker.ts', import.meta.url), { type: 'module', name: 'training' });
    this.worker.onmessage = (event: MessageEvent<TrainingEvent>) => onEvent(event.data);
    this.worker.onerror = (event) => {
      onEvent({
        type: 'failed',
        message: `the training worker failed: ${event.message || 'unknown error'}`,
        resumable: true,
      });
    };
  }

  private post(command: TrainingCommand, transfer: Transferable[] = []): void {
    this.worker.postMessage(command, transfer);
  }

  /**
   * Starts a new run. The images' byte arrays and the encoder weights are handed over (transferred), not copied; a
   * fine-tune's weights are copied (they stay the studio's loaded model).
   */
  start(request: StartTrainingRequest, options: TrainingHostOptions): void {
    const views = [
      ...request.images.flatMap((image) => (image.bytes instanceof Uint8Array ? [image.bytes] : [])),
      ...(options.encoderWeights ? [options.encoderWeights] : []),
    ];
    const transfer = [...new Set(views.flatMap(wholeBuffer))];
    this.post({ type: 'start', request, ...environment(options) }, transfer);
  }

  /** Continues the run stored in IndexedDB. */
  resumeSaved(options: TrainingHostOptions): void {
    this.post({ type: 'resume-saved', ...environment(options) });
  }

  pause(): void {
    this.post({ type: 'pause' });
  }

  continue(): void {
    this.post({ type: 'continue' });
  }

  stop(): void {
    this.post({ type: 'stop' });
  }

  dispose(): void {
    this.worker.terminate();
  }
}
