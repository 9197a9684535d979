/**
 * The UI thread's handle on the inference engine worker (engineWorker.ts): load a model, analyse images (results
 * stream back one by one, with progress, and a job can be cancelled between images), and follow the engine's status
 * (GPU, encoder, device loss and recovery). One worker per page: use `engineClient()`.
 */
import type {
  AnalyzeInput,
  AnalyzeProgress,
  AnalyzeResult,
  DeviceLossTiming,
  EngineReply,
  EngineRequest,
  EngineStatus,
  ModelSummary,
} from './engineProtocol.ts';
import { INITIAL_ENGINE_STATUS } from './engineProtocol.ts';

export type {
  AnalyzeInput,
  AnalyzeProgress,
  AnalyzeResult,
  EngineStatus,
  ModelSummary,
} from './engineProtocol.ts';

export interface AnalyzeOptions {
  signal?: AbortSignal;
  onResult(result: AnalyzeResult): void;
  onProgress?(progress: AnalyzeProgress): void;
}

/** Where the served encoder weights live (scripts/sharedDataPlugin.ts serves ../shared/models there). */
export const ENCODER_WEIGHTS_PATH = 'shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors';

interface PendingRequest {
  resolve(value: ModelSummary | undefined): void;
  reject(error: Error): void;
}

interface Job {
  readonly inputs: readonly AnalyzeInput[];
  next: number;
  done: number;
  readonly started: number;
  readonly options: AnalyzeOptions;
  resolve(): void;
  reject(error: Error): void;
}

function abortError(): DOMException {
  return new DOMException('The analysis was cancelled.', 'AbortError');
}

export class EngineClient {
  private readonly worker: Worker;
  private status: EngineStatus = INITIAL_ENGINE_STATUS;
  private readonly listeners = new Set<(status: EngineStatus) => void>();
  private readonly requests = new Map<number, PendingRequest>();
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private loadedBytes: Uint8Array | undefined;
  readonly debug: boolean;

  constructor(options: { debug: boolean }) {
    this.debug = options.debug;
    this.worker = new Worker(new URL('./engineWorker.ts', import.meta.url), { type: 'module', name: 'engine' });
    this.worker.addEventListener('message', (event: MessageEvent<EngineReply>) => this.receive(event.data));
    this.worker.addEventListener('error', (event) => this.fail(`the engine worker stopped: ${event.message}`));
    this.send({
      type: 'init',
      debug: options.debug,
      // Browsers expose WebGPU to workers exactly where they expose it to pages.
      pageHasWebGpu: typeof navigator !== 'undefined' && !!navigator.gpu,
      encoderWeightsUrl: new URL(`${import.meta.env.BASE_URL}${ENCODER_WEIGHTS_PATH}`, location.origin).href,
    });
  }

  get currentStatus(): EngineStatus {
    return this.status;
  }

  /** Calls `listener` now and on every change; returns the unsubscribe function. */
  onStatus(listener: (status: EngineStatus) => void): () => void {
    this.listeners.add(listener);
    listener(this.status);
    return () => this.listeners.delete(listener);
  }

  /** True when the worker runs exactly these bytes (the model store uses it to avoid loading a model twice). */
  isLoaded(bytes: Uint8Array): boolean {
    return this.loadedBytes === bytes;
  }

  /**
   * Checks and loads a weights file in the worker. Rejects with the loader's message (truncated, foreign, another
   * config, missing tensors...); the previous model then stays loaded.
   */
  async loadModel(bytes: Uint8Array, name: string): Promise<ModelSummary> {
    const summary = await this.request((requestId) => ({ type: 'load-model', requestId, bytes, name }));
    if (!summary) throw new Error(`${name}: the engine gave no model summary`);
    this.loadedBytes = bytes;
    return summary;
  }

  /** Hands over the ResNet18 encoder weights file when the served one is missing. */
  async setEncoderWeights(bytes: Uint8Array, name: string): Promise<void> {
    await this.request((requestId) => ({ type: 'set-encoder-weights', requestId, bytes, name }));
  }

  /**
   * Analyses `inputs` with the loaded model; results stream to onResult in input order (a file that cannot be
   * decoded gives an `ok: false` result and the rest go on). Resolves when all are done; rejects with an AbortError
   * when `signal` aborts (no result is delivered after that), or with the reason the job could not run at all (no
   * model, no encoder, no GPU).
   */
  analyze(inputs: readonly AnalyzeInput[], options: AnalyzeOptions): Promise<void> {
    if (options.signal?.aborted) return Promise.reject(abortError());
    const jobId = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const job: Job = { inputs, next: 0, done: 0, started: performance.now(), options, resolve, reject };
      this.jobs.set(jobId, job);
      options.signal?.addEventListener(
        'abort',
        () => {
          if (!this.jobs.delete(jobId)) return;
          this.send({ type: 'cancel', jobId });
          reject(abortError());
        },
        { once: true },
      );
      this.send({ type: 'analyze', jobId, total: inputs.length });
    });
  }

  /** Debug only (page opened with ?debug): destroys the worker's GPU device now or during the next image. */
  async loseDevice(when: DeviceLossTiming): Promise<void> {
    await this.request((requestId) => ({ type: 'debug-lose-device', requestId, when }));
  }

  // ---- plumbing ----

  private send(request: EngineRequest): void {
    this.worker.postMessage(request);
  }

  private request(make: (requestId: number) => EngineRequest): Promise<ModelSummary | undefined> {
    const requestId = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(requestId, { resolve, reject });
      this.send(make(requestId));
    });
  }

  private receive(reply: EngineReply): void {
    switch (reply.type) {
      case 'status':
        this.status = reply.status;
        for (const listener of this.listeners) listener(reply.status);
        return;
      case 'reply': {
        const pending = this.requests.get(reply.requestId);
        this.requests.delete(reply.requestId);
        if (reply.ok) pending?.resolve(reply.value);
        else pending?.reject(new Error(reply.error));
        return;
      }
      case 'need': {
        const job = this.jobs.get(reply.jobId);
        const inputs = job ? job.inputs.slice(job.next, job.next + reply.count) : [];
        if (job) job.next += inputs.length;
        this.send({ type: 'inputs', jobId: reply.jobId, inputs });
        return;
      }
      case 'result': {
        const job = this.jobs.get(reply.jobId);
        if (!job) return;
        job.done++;
        job.options.onResult(reply.result);
        const seconds = (performance.now() - job.started) / 1000;
        const imagesPerSecond = seconds > 0 ? job.done / seconds : 0;
        const remaining = job.inputs.length - job.done;
        job.options.onProgress?.({
          done: job.done,
          total: job.inputs.length,
          imagesPerSecond,
          etaSeconds: imagesPerSecond > 0 ? remaining / imagesPerSecond : Number.NaN,
        });
        return;
      }
      case 'job-done': {
        const job = this.jobs.get(reply.jobId);
        this.jobs.delete(reply.jobId);
        if (!job) return;
        if (reply.error) job.reject(new Error(reply.error));
        else job.resolve();
        return;
      }
    }
  }

  private fail(message: string): void {
    this.status = { ...this.status, gpu: { state: 'failed', message }, busy: false };
    for (const listener of this.listeners) listener(this.status);
    for (const pending of this.requests.values()) pending.reject(new Error(message));
    for (const job of this.jobs.values()) job.reject(new Error(message));
    this.requests.clear();
    this.jobs.clear();
  }
}

let client: EngineClient | undefined;

/** The page's engine, started on first use. `?debug` in the page URL enables the device-loss hook (loseDevice). */
export function engineClient(): EngineClient {
  if (!client) {
    client = new EngineClient({ debug: new URLSearchParams(location.search).has('debug') });
    if (client.debug) (globalThis as { mambaadEngine?: EngineClient }).mambaadEngine = client;
  }
  return client;
}
