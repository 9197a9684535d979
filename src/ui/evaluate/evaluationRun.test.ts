import { describe, expect, it } from 'vitest';
import { MODEL_INPUT_SIZE } from '../../image/preprocess.ts';
import type { AnalyzeInput, AnalyzeOptions } from '../../worker/engineClient.ts';
import type { MetricsSink } from '../../worker/metricsClient.ts';
import type { MetricsImage } from '../../worker/metricsProtocol.ts';
import { MetricsSession } from '../../worker/metricsSession.ts';
import { grayPng } from '../../worker/testMasks.ts';
import { folderSource } from './datasetSource.ts';
import { type EvaluationProgress, runEvaluation } from './evaluationRun.ts';

const PIXELS = MODEL_INPUT_SIZE ** 2;

/** The metrics worker's session in-process; records what it was handed. */
class SessionSink implements MetricsSink {
  session = new MetricsSession();
  added: MetricsImage[] = [];
  private queue: Promise<void> = Promise.resolve();
  reset() {
    this.session = new MetricsSession();
    this.added = [];
  }
  add(image: MetricsImage) {
    this.added.push(image);
    this.queue = this.queue.then(() => this.session.add(image));
  }
  async summarize() {
    await this.queue;
    return this.session.summarize();
  }
}

/** A 256x256 mask file with a 64x64 square of defect pixels. */
const squareMask = () => grayPng(256, (x, y) => (x >= 64 && x < 128 && y >= 64 && y < 128 ? 255 : 0));

/** Scores the square high for files named "cut", nothing for "good"; fails on "bad.png"; honours the signal. */
function fakeAnalyzer(abortAfter?: { count: number; controller: AbortController }) {
  const seen: AnalyzeInput[] = [];
  return {
    seen,
    async analyze(inputs: readonly AnalyzeInput[], options: AnalyzeOptions) {
      for (const [i, input] of inputs.entries()) {
        if (options.signal?.aborted) throw new DOMException('cancelled', 'AbortError');
        seen.push(input);
        if (input.name.endsWith('bad.png')) {
          options.onResult({ id: input.id, name: input.name, ok: false, error: 'not an image' });
          continue;
        }
        const defect = input.name.includes('/cut/');
        const map = new Float32Array(PIXELS).fill(0.1);
        if (defect) for (let y = 64; y < 128; y++) map.fill(0.9, y * 256 + 64, y * 256 + 128);
        map[i] = 0.2;
        options.onResult({
          id: input.id,
          name: input.name,
          ok: true,
          score: 0.9,
          width: 256,
          height: 256,
          map,
          size: 256,
          modelInput: new Uint8Array(0),
        });
        options.onProgress?.({ done: i + 1, total: inputs.length, imagesPerSecond: 1, etaSeconds: 0 });
        if (abortAfter && i + 1 === abortAfter.count) abortAfter.controller.abort();
      }
    },
  };
}

function labelledFolder() {
  const mask = squareMask();
  const file = (path: string, bytes: Uint8Array<ArrayBuffer> = new Uint8Array([1])) => ({
    path,
    file: new File([bytes], path),
    fromFolder: true,
  });
  return folderSource([
    file('set/bottle/test/good/0.png'),
    file('set/bottle/test/good/1.png'),
    file('set/bottle/test/good/bad.png'),
    file('set/bottle/test/cut/2.png'),
    file('set/bottle/test/cut/3.png'),
    file('set/bottle/ground_truth/cut/2_mask.png', mask),
    file('set/bottle/ground_truth/cut/3_mask.png', mask),
    file('set/tile/test/good/0.png'),
    file('set/tile/test/cut/1.png'),
    file('set/tile/ground_truth/cut/1_mask.png', mask),
  ]);
}

describe('runEvaluation', () => {
  it('hands each map with its own mask to the metrics, per class, and reports engine failures', async () => {
    const source = labelledFolder();
    const analyzer = fakeAnalyzer();
    const metrics = new SessionSink();
    const progress: EvaluationProgress[] = [];
    const outcome = await runEvaluation({
      source,
      analyzer,
      metrics,
      signal: new AbortController().signal,
      onProgress: (p) => progress.push(p),
    });
    // The engine gets the picked files themselves, to read when their turn comes.
    expect(analyzer.seen.every((input) => input.bytes instanceof File)).toBe(true);
    expect(outcome).toMatchObject({ total: 7, analyzed: 6, cancelled: false });
    expect(outcome.failed).toEqual([{ name: 'set/bottle/test/good/bad.png', error: 'not an image' }]);
    expect(metrics.added.map((a) => [a.className, a.mask instanceof File ? a.mask.name : a.mask])).toEqual([
      ['bottle', 'set/bottle/ground_truth/cut/2_mask.png'],
      ['bottle', 'set/bottle/ground_truth/cut/3_mask.png'],
      ['bottle', undefined],
      ['bottle', undefined],
      ['tile', 'set/tile/ground_truth/cut/1_mask.png'],
      ['tile', undefined],
    ]);
    const { summary } = outcome;
    expect(summary.classes.map((c) => [c.className, c.images, c.defectImages])).toEqual([
      ['bottle', 4, 2],
      ['tile', 2, 1],
    ]);
    // The maps score the masks' squares exactly: every metric is perfect.
    expect(summary.mean.benchmark.mAD).toBeCloseTo(1, 6);
    expect(progress.at(-1)).toEqual({ stage: 'scoring', done: 6, total: 7 });
    const stages = progress.map((p) => `${p.stage} ${p.done}`);
    // Analysis is announced before the first image is done, then counted up by the engine.
    expect(stages.indexOf('analyzing 0')).toBeLessThan(stages.indexOf('analyzing 1'));
    expect(stages).toContain('analyzing 7');
  });

  it('keeps the metrics of the images analysed before a cancel, and refuses a cancel before any', async () => {
    const source = labelledFolder();
    const controller = new AbortController();
    const outcome = await runEvaluation({
      source,
      analyzer: fakeAnalyzer({ count: 3, controller }),
      metrics: new SessionSink(),
      signal: controller.signal,
      onProgress: () => undefined,
    });
    expect(outcome).toMatchObject({ cancelled: true, analyzed: 3 });
    expect(outcome.summary.classes[0]!.images).toBe(3);

    const early = new AbortController();
    early.abort();
    await expect(
      runEvaluation({
        source,
        analyzer: fakeAnalyzer(),
        metrics: new SessionSink(),
        signal: early.signal,
        onProgress: () => undefined,
      }),
    ).rejects.toThrow(/abort/i);
  });

  it('takes at most the asked number of test images per class', async () => {
    const analyzer = fakeAnalyzer();
    const outcome = await runEvaluation({
      source: labelledFolder(),
      perClass: 2,
      analyzer,
      metrics: new SessionSink(),
      signal: new AbortController().signal,
      onProgress: () => undefined,
    });
    expect(outcome.total).toBe(4);
    expect(analyzer.seen.map((s) => s.name)).toEqual([
      'set/bottle/test/cut/2.png',
      'set/bottle/test/good/0.png',
      'set/tile/test/cut/1.png',
      'set/tile/test/good/0.png',
    ]);
  });
});
