/**
 * One evaluation: the engine analyses every test image of a labelled set (streamed, cancellable), each map goes
 * with its mask to the metrics sink (the metrics worker) as it arrives, and the sink's summary comes back at the end.
 * The main thread only passes references along: files are read by the workers, maps are transferred.
 */
import type { AnalyzeInput, AnalyzeOptions, AnalyzeProgress } from '../../worker/engineClient.ts';
import type { MetricsSink } from '../../worker/metricsClient.ts';
import type { EvaluationSummary } from '../../worker/metricsProtocol.ts';
import { type DatasetSource, limitTestImages } from './datasetSource.ts';

/** What the run needs of the engine client (src/worker/engineClient.ts). */
export interface Analyzer {
  analyze(inputs: readonly AnalyzeInput[], options: AnalyzeOptions): Promise<void>;
}

export type EvaluationProgress =
  /** Sample files being fetched from the studio's server. */
  | { stage: 'reading'; done: number; total: number }
  | ({ stage: 'analyzing' } & AnalyzeProgress)
  | { stage: 'scoring'; done: number; total: number };

export interface EvaluationOutcome {
  summary: EvaluationSummary;
  /** Test images in the run, analysed or not. */
  total: number;
  /** Images the engine analysed (the metrics cover these, less any the metrics worker skipped). */
  analyzed: number;
  /** Images the engine could not analyse, with its message. */
  failed: { name: string; error: string }[];
  /** The user stopped the run: the summary covers the images analysed until then. */
  cancelled: boolean;
}

export interface EvaluationRequest {
  source: DatasetSource;
  /** At most this many test images per class (undefined: all). */
  perClass?: number;
  analyzer: Analyzer;
  metrics: MetricsSink;
  signal: AbortSignal;
  onProgress(progress: EvaluationProgress): void;
}

/** Fetches run in parallel this wide: enough to hide a local server's latency, few enough to stay polite. */
const READ_CONCURRENCY = 8;

async function readAll(
  paths: readonly string[],
  read: DatasetSource['read'],
  signal: AbortSignal,
  onRead: (done: number) => void,
): Promise<Map<string, Blob | Uint8Array>> {
  const files = new Map<string, Blob | Uint8Array>();
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      signal.throwIfAborted();
      const path = paths[next++]!;
      files.set(path, await read(path));
      onRead(files.size);
    }
  };
  await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker));
  return files;
}

function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

/**
 * Runs the evaluation. Rejects with the reason when nothing could be evaluated (no model, no GPU, cancelled before
 * the first image); a run cancelled later resolves with the metrics of the images done so far.
 */
export async function runEvaluation(request: EvaluationRequest): Promise<EvaluationOutcome> {
  const { source, analyzer, metrics, signal, onProgress } = request;
  const items = source.dataset.classes.flatMap((c) =>
    limitTestImages(c, request.perClass).test.map((image) => ({ ...image, className: c.name })),
  );
  if (items.length === 0) throw new Error(`${source.label} has no test images to evaluate`);
  const paths = items.flatMap((item) => (item.maskPath ? [item.path, item.maskPath] : [item.path]));
  const files = await readAll(paths, source.read, signal, (done) =>
    onProgress({ stage: 'reading', done, total: paths.length }),
  );

  metrics.reset();
  const failed: EvaluationOutcome['failed'] = [];
  let analyzed = 0;
  let cancelled = false;
  const inputs = items.map((item, i) => ({ id: String(i), name: item.path, bytes: files.get(item.path)! }));
  // The engine reports progress per finished image; until the first one, say that analysis has begun.
  onProgress({ stage: 'analyzing', done: 0, total: items.length, imagesPerSecond: 0, etaSeconds: Number.NaN });
  try {
    await analyzer.analyze(inputs, {
      signal,
      onResult: (result) => {
        if (!result.ok) {
          failed.push({ name: result.name, error: result.error });
          return;
        }
        const item = items[Number(result.id)]!;
        const mask = item.maskPath ? files.get(item.maskPath) : undefined;
        analyzed++;
        metrics.add({ name: item.path, className: item.className, map: result.map, size: result.size, mask });
      },
      onProgress: (progress) => onProgress({ stage: 'analyzing', ...progress }),
    });
  } catch (error) {
    if (!isAbort(error)) throw error;
    cancelled = true;
    if (analyzed === 0) throw new Error('the evaluation was cancelled before any image was analysed');
  }
  if (analyzed === 0) {
    const reasons = failed.slice(0, 3).map((f) => `${f.name}: ${f.error}`);
    throw new Error(`no test image could be analysed (${reasons.join('; ')})`);
  }
  onProgress({ stage: 'scoring', done: analyzed, total: items.length });
  const summary = await metrics.summarize();
  return { summary, total: items.length, analyzed, failed, cancelled };
}
