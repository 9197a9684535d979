import type { EvaluationSummary, MetricsImage, MetricsRequest, MetricsResponse } from './metricsProtocol.ts';

/** Where analysed images go to be scored; the metrics worker in the app, an in-process session in tests. */
export interface MetricsSink {
  reset(): void;
  /** Hands the image over (its map's buffer is transferred, not copied). */
  add(image: MetricsImage): void;
  summarize(): Promise<EvaluationSummary>;
}

/** A view's buffer when the view spans all of it (then it can be transferred); otherwise it is copied. */
function wholeBuffer(view: ArrayBufferView): ArrayBuffer[] {
  const { buffer } = view;
  return buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buffer.byteLength
    ? [buffer]
    : [];
}

/** The main thread's handle on one metrics worker (src/worker/metricsWorker.ts). */
export class MetricsClient implements MetricsSink {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(s: EvaluationSummary): void; reject(e: Error): void }>();

  constructor() {
    this.worker = new Worker(new URL('./metricsWorker.ts', import.meta.url), { type: 'module', name: 'metrics' });
    this.worker.onmessage = (event: MessageEvent<MetricsResponse>) => {
      const message = event.data;
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      if (message.type === 'summary') waiting.resolve(message.summary);
      else waiting.reject(new Error(message.error));
    };
    this.worker.onerror = (event) => {
      const error = new Error(`the metrics worker failed: ${event.message || 'unknown error'}`);
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
  }

  private post(request: MetricsRequest, transfer: Transferable[] = []): void {
    this.worker.postMessage(request, transfer);
  }

  reset(): void {
    this.post({ type: 'reset' });
  }

  add(image: MetricsImage): void {
    const transfer = [image.map, image.mask].flatMap((view) => (ArrayBuffer.isView(view) ? wholeBuffer(view) : []));
    this.post({ type: 'add', image }, transfer);
  }

  summarize(): Promise<EvaluationSummary> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: 'summarize', id });
    });
  }

  dispose(): void {
    this.worker.terminate();
  }
}
