import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../io/safetensors.ts';
import { CONFIG_METADATA_KEY, PAPER_CONFIG, serializeModelConfig } from '../../model/config.ts';
import type { AnalyzeInput, AnalyzeOptions } from '../../worker/engineClient.ts';
import type { MetricsSink } from '../../worker/metricsClient.ts';
import {
  type CandidateModel,
  type ComparisonProgress,
  compareModels,
  type ModelComparisonResult,
  otherDifferences,
  readCandidate,
} from './modelComparison.ts';

const tinyTensor = { x: { dtype: 'F32' as const, shape: [1], data: Float32Array.of(0) } };

function weightsFile(config: object | undefined): Uint8Array {
  return writeSafetensors(tinyTensor, config ? { [CONFIG_METADATA_KEY]: JSON.stringify(config) } : {});
}

function candidate(id: string, scan: 'hilbert' | 'sweep', dims = PAPER_CONFIG.dims): CandidateModel {
  return readCandidate(
    id,
    `${id}.safetensors`,
    weightsFile(JSON.parse(serializeModelConfig({ ...PAPER_CONFIG, scan, dims }))),
  );
}

describe('readCandidate and otherDifferences', () => {
  it('reads the scan setting from the metadata and names what else differs', () => {
    const [a, b, c] = [
      candidate('a', 'hilbert'),
      candidate('b', 'sweep'),
      candidate('c', 'sweep', [512, 256, 128, 32]),
    ];
    expect([a.config.scan, b.config.scan]).toEqual(['hilbert', 'sweep']);
    expect(otherDifferences([a, b])).toEqual([]);
    expect(otherDifferences([a, b, c])).toEqual(['decoder widths: 512,256,128,64 vs 512,256,128,32']);
  });

  it('refuses files without a studio config, naming them', () => {
    expect(() => readCandidate('x', 'x.safetensors', weightsFile(undefined))).toThrow(
      /^x\.safetensors: no "mambaad\.config" in its metadata/,
    );
    expect(() => readCandidate('y', 'y.bin', new Uint8Array([1, 2, 3]))).toThrow(/y\.bin/);
  });
});

/** Records what happens, in order; a model named "broken" fails to load; maps are filled with the load count. */
function fakeEngine(abort?: AbortController) {
  const log: string[] = [];
  let loaded = '';
  return {
    log,
    async loadModel(_bytes: Uint8Array, name: string) {
      log.push(`load ${name}`);
      if (name.startsWith('broken')) throw new Error('misshapen tensor');
      loaded = name;
    },
    async analyze(inputs: readonly AnalyzeInput[], options: AnalyzeOptions) {
      for (const input of inputs) {
        options.signal?.throwIfAborted();
        log.push(`analyze ${input.name} with ${loaded}`);
        const map = new Float32Array(4).fill(loaded.length);
        options.onResult({
          ...input,
          ok: true,
          score: 1,
          width: 2,
          height: 2,
          map,
          size: 2,
          modelInput: new Uint8Array(12),
        });
        if (abort && loaded.startsWith('b')) abort.abort();
      }
    },
  };
}

const noMetrics: MetricsSink = {
  reset: () => undefined,
  add: () => undefined,
  summarize: () => Promise.reject(new Error('not used')),
};

describe('compareModels', () => {
  const image = { name: 'part.png', bytes: new Uint8Array([1]) };
  const restore = { bytes: new Uint8Array([9]), name: 'mine.safetensors' };

  it('runs each model on the image in turn, reports load failures, and loads the user’s model back', async () => {
    const engine = fakeEngine();
    const results: ModelComparisonResult[] = [];
    const progress: ComparisonProgress[] = [];
    const models = [candidate('a', 'hilbert'), { ...candidate('broken', 'sweep') }, candidate('bb', 'sweep')];
    await compareModels({
      models,
      image,
      engine,
      metrics: noMetrics,
      restore,
      signal: new AbortController().signal,
      onProgress: (p) => progress.push(p),
      onResult: (r) => results.push(r),
    });
    expect(engine.log).toEqual([
      'load a.safetensors',
      'analyze part.png with a.safetensors',
      'load broken.safetensors',
      'load bb.safetensors',
      'analyze part.png with bb.safetensors',
      'load mine.safetensors',
    ]);
    expect(results.map((r) => [r.modelId, r.loadError, r.map?.map[0]])).toEqual([
      ['a', undefined, 'a.safetensors'.length],
      ['broken', 'misshapen tensor', undefined],
      ['bb', undefined, 'bb.safetensors'.length],
    ]);
    expect(progress.at(-1)).toEqual({ stage: 'restoring', name: 'mine.safetensors' });
  });

  it('stops when cancelled and still loads the user’s model back', async () => {
    const controller = new AbortController();
    const engine = fakeEngine(controller);
    const results: ModelComparisonResult[] = [];
    await expect(
      compareModels({
        models: [candidate('a', 'hilbert'), candidate('bb', 'sweep'), candidate('c', 'sweep')],
        image,
        engine,
        metrics: noMetrics,
        restore,
        signal: controller.signal,
        onProgress: () => undefined,
        onResult: (r) => results.push(r),
      }),
    ).rejects.toThrow(/abort/i);
    expect(engine.log.at(-1)).toBe('load mine.safetensors');
    expect(engine.log).not.toContain('load c.safetensors');
  });
});
