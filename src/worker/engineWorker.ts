/// <reference lib="webworker" />
/**
 * The inference engine's dedicated module worker: decoding, the encoder and the GPU all run here, never on the UI
 * thread. Requests run one at a time in arrival order; 'inputs' and 'cancel' act at once (they steer a running job).
 */
import type { AnalyzeInput, AnalyzeResult, EngineReply, EngineRequest, ModelSummary } from './engineProtocol.ts';
import { InferenceEngine } from './engineSession.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

function post(reply: EngineReply, transfer: Transferable[] = []): void {
  scope.postMessage(reply, transfer);
}

const engine = new InferenceEngine((status) => post({ type: 'status', status }));

interface Job {
  cancelled: boolean;
  /** Resolves the pull waiting for this job's next inputs. */
  deliver?: (inputs: AnalyzeInput[]) => void;
}

const jobs = new Map<number, Job>();
let queue: Promise<void> = Promise.resolve();

function enqueue(task: () => Promise<void>): void {
  queue = queue.then(task).catch(() => undefined);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function resultTransfer(result: AnalyzeResult): Transferable[] {
  return result.ok ? [result.map.buffer as ArrayBuffer, result.modelInput.buffer as ArrayBuffer] : [];
}

async function runJob(jobId: number): Promise<void> {
  const job = jobs.get(jobId);
  if (!job) return;
  try {
    if (job.cancelled) return;
    await engine.analyze({
      cancelled: () => job.cancelled,
      pull: (count) =>
        new Promise<AnalyzeInput[]>((resolve) => {
          if (job.cancelled) {
            resolve([]);
            return;
          }
          job.deliver = resolve;
          post({ type: 'need', jobId, count });
        }),
      emit: (result) => {
        if (!job.cancelled) post({ type: 'result', jobId, result }, resultTransfer(result));
      },
    });
    post({ type: 'job-done', jobId });
  } catch (error) {
    post({ type: 'job-done', jobId, error: errorText(error) });
  } finally {
    jobs.delete(jobId);
  }
}

function reply(requestId: number, work: () => Promise<ModelSummary | undefined>): void {
  enqueue(async () => {
    try {
      const value = await work();
      post(value ? { type: 'reply', requestId, ok: true, value } : { type: 'reply', requestId, ok: true });
    } catch (error) {
      post({ type: 'reply', requestId, ok: false, error: errorText(error) });
    }
  });
}

scope.addEventListener('message', (event: MessageEvent<EngineRequest>) => {
  const request = event.data;
  switch (request.type) {
    case 'init':
      engine.init(request);
      return;
    case 'load-model':
      reply(request.requestId, () => engine.loadModel(request.bytes, request.name));
      return;
    case 'set-encoder-weights':
      reply(request.requestId, async () => {
        await engine.setEncoderWeights(request.bytes, request.name);
        return undefined;
      });
      return;
    case 'analyze':
      jobs.set(request.jobId, { cancelled: false });
      enqueue(() => runJob(request.jobId));
      return;
    case 'inputs': {
      const job = jobs.get(request.jobId);
      const deliver = job?.deliver;
      if (job) job.deliver = undefined;
      deliver?.(request.inputs);
      return;
    }
    case 'cancel': {
      const job = jobs.get(request.jobId);
      if (!job) return;
      job.cancelled = true;
      job.deliver?.([]);
      job.deliver = undefined;
      return;
    }
    case 'debug-lose-device':
      // Not queued: the point is to lose the device while other work is running.
      engine.loseDevice(request.when).then(
        () => post({ type: 'reply', requestId: request.requestId, ok: true }),
        (error) => post({ type: 'reply', requestId: request.requestId, ok: false, error: errorText(error) }),
      );
      return;
  }
});
