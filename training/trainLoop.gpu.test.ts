import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncoder, type Encoder } from '../src/encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../src/encoder/onnxGraph.ts';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { decodeResized, normalizeImagenet } from '../src/image/preprocess.ts';
import { parseSafetensors } from '../src/io/safetensors.ts';
import { type ModelConfig, PAPER_CONFIG } from '../src/model/config.ts';
import { fetchShared } from '../src/testing/goldens.ts';
import { createTestRuntime } from '../src/testing/gpu.ts';
import { seededRandom } from '../src/testing/reference.ts';
import { planTrainingMemory } from './memory.ts';
import { AdamW } from './optimizer.ts';
import { loadTrainableMambaAD } from './trainer.ts';
import { runTrainingLoop, TrainingDivergedError, type TrainingImages, type TrainingProgress } from './trainLoop.ts';
import { exportWeightsFile, initialWeightsFile } from './weightsFile.ts';

// The full-width model at 64 px (grids 2..16): every layer runs, at a size SwiftShader trains in seconds a step.
const CONFIG: ModelConfig = { ...PAPER_CONFIG, encoder: 'resnet18', inputSize: 64 };

describe('training loop (encoder + MFF_OCE + decoder + AdamW) on real images', () => {
  let runtime: GpuRuntime;
  let encoder: Encoder;
  let images: Float32Array[];
  const source = (list: Float32Array[]): TrainingImages => ({ count: list.length, load: async (i) => list[i]! });
  const freshModel = () => {
    const model = loadTrainableMambaAD(runtime, initialWeightsFile(CONFIG, seededRandom(1)), 'initial');
    return { model, optimizer: new AdamW(runtime, model.parameters) };
  };

  beforeAll(async () => {
    runtime = await createTestRuntime();
    const weights = parseSafetensors(await fetchShared('models/resnet18-imagenet-l1-l3-bnfolded.safetensors'));
    encoder = await createEncoder({ model: buildResNetEncoderOnnx(weights, 'resnet18'), backend: 'wasm' });
    images = await Promise.all(
      ['000', '001', '002', '003'].map(async (n) => {
        const bytes = await fetchShared(`data/mvtec-bottle/256/train/good/${n}.png`);
        return normalizeImagenet((await decodeResized(bytes, 64, 64)).image);
      }),
    );
  });
  afterAll(async () => {
    await encoder.release();
    runtime.destroy();
  });

  // A step takes about a minute on SwiftShader (every pipeline compiles on the first), so the loop runs two.
  it('runs epochs of full batches with progress and checkpoints, and exports a loadable weights file', async () => {
    const { model, optimizer } = freshModel();
    const progress: TrainingProgress[] = [];
    const checkpoints: number[] = [];
    // 3 images at batch 2: one full batch per epoch (the third image is dropped, as drop_last does).
    const result = await runTrainingLoop(runtime, encoder, model, optimizer, source(images.slice(0, 3)), {
      epochs: 2,
      batch: 2,
      checkpointEvery: 1,
      onProgress: (p) => progress.push(p),
      onCheckpoint: async (step) => {
        checkpoints.push(step);
      },
    });
    expect(result.steps).toBe(2);
    expect(result.cancelled).toBe(false);
    // The memory plan (recorded against a device that does no work) predicts what the real run's pool held. The real
    // run also held the encoder's NCHW uploads, idle in the pool, hence the small tolerance.
    const plan = await planTrainingMemory(CONFIG, 2);
    const measured = runtime.pool.stats.peakBytes;
    expect(Math.abs(measured - plan.stepBytes) / measured).toBeLessThan(0.05);
    expect(progress.map((p) => [p.epoch, p.step])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(progress.every((p) => Number.isFinite(p.loss) && p.loss > 0 && p.imagesPerSecond > 0)).toBe(true);
    expect(checkpoints).toEqual([1, 2]);
    expect(result.epochLosses).toHaveLength(2);
    const bytes = await exportWeightsFile(runtime, model, { test: true });
    const reloaded = loadTrainableMambaAD(runtime, parseSafetensors(bytes, 'exported'), 'exported');
    const name = 'net_s.layers_up.3.blocks.0.finalconv11.weight';
    const index = model.parameters.findIndex((p) => p.name === name);
    expect([...(await runtime.read(reloaded.parameters[index]!.param))]).toEqual([
      ...(await runtime.read(model.parameters[index]!.param)),
    ]);
  }, 900_000);

  it('stops between steps when cancelled, and resumes where it stopped', async () => {
    const { model, optimizer } = freshModel();
    const controller = new AbortController();
    controller.abort();
    const options = { epochs: 5, batch: 2, startStep: 7, signal: controller.signal };
    const result = await runTrainingLoop(runtime, encoder, model, optimizer, source(images), options);
    expect(result).toMatchObject({ cancelled: true, steps: 7 });
  });

  it('stops on a non-finite loss and leaves the weights as they were before that step', async () => {
    const { model, optimizer } = freshModel();
    const before = await runtime.read(model.parameters[0]!.param);
    const broken = images.slice(0, 2).map((img) => img.map((v, i) => (i === 0 ? Number.NaN : v)));
    await expect(
      runTrainingLoop(runtime, encoder, model, optimizer, source(broken), { epochs: 1, batch: 2 }),
    ).rejects.toThrow(TrainingDivergedError);
    expect([...(await runtime.read(model.parameters[0]!.param))]).toEqual([...before]);
  }, 900_000);
});
