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
import { readCheckpoint, restoreCheckpoint, type TrainingRunOptions, writeCheckpoint } from './checkpoint.ts';
import { AdamW } from './optimizer.ts';
import { loadTrainableMambaAD } from './trainer.ts';
import { runTrainingLoop, type TrainingImages } from './trainLoop.ts';
import { initialWeightsFile } from './weightsFile.ts';

// The Train screen's small model (full width, 64 px, depths 2·2·2·2) with 2 scan directions: every kind of layer runs.
const CONFIG: ModelConfig = {
  ...PAPER_CONFIG,
  encoder: 'resnet18',
  inputSize: 64,
  depths: [2, 2, 2, 2],
  directions: 2,
};

describe('training checkpoint', () => {
  let runtime: GpuRuntime;
  let encoder: Encoder;
  let images: TrainingImages;

  beforeAll(async () => {
    runtime = await createTestRuntime();
    const weights = parseSafetensors(await fetchShared('models/resnet18-imagenet-l1-l3-bnfolded.safetensors'));
    encoder = await createEncoder({ model: buildResNetEncoderOnnx(weights, 'resnet18'), backend: 'wasm' });
    const tensors = await Promise.all(
      ['000', '001', '002', '003', '004', '005'].map(async (n) => {
        const bytes = await fetchShared(`data/mvtec-bottle/256/train/good/${n}.png`);
        return normalizeImagenet((await decodeResized(bytes, 64, 64)).image);
      }),
    );
    images = { count: tensors.length, load: async (i) => tensors[i]! };
  });
  afterAll(async () => {
    await encoder.release();
    runtime.destroy();
  });

  // 6 images at batch 2 for 1 epoch: 3 steps; the checkpoint after step 1 is mid-epoch, and the resumed run passes the
  // learning-rate drop (at 80% of the steps: from the third step on).
  it('resumes bit-identically: k steps + checkpoint + restore + N-k steps equals N steps straight', async () => {
    const options: TrainingRunOptions = {
      epochs: 1,
      batch: 2,
      seed: 3,
      lr: 0.005,
      dropPathRate: 0.2,
      images: ['000.png', '001.png', '002.png', '003.png', '004.png', '005.png'],
    };
    const loopOptions = { epochs: 1, batch: 2, seed: 3, lr: 0.005, dropPathRate: 0.2 };
    const model = loadTrainableMambaAD(runtime, initialWeightsFile(CONFIG, seededRandom(5)), 'initial');
    const optimizer = new AdamW(runtime, model.parameters);
    const straightLosses: number[] = [];
    let checkpoint: Uint8Array | undefined;
    const stepSeconds: number[] = [];
    let last = performance.now();
    await runTrainingLoop(runtime, encoder, model, optimizer, images, {
      ...loopOptions,
      checkpointEvery: 1,
      onProgress: (p) => {
        straightLosses.push(p.loss);
        stepSeconds.push((performance.now() - last) / 1000);
        last = performance.now();
      },
      onCheckpoint: async (step) => {
        if (step === 1) checkpoint = await writeCheckpoint(runtime, model, optimizer, { step, options });
        last = performance.now();
      },
    });
    console.info(`checkpoint test: seconds per step ${stepSeconds.map((s) => s.toFixed(1)).join(', ')}`);
    expect(straightLosses).toHaveLength(3);

    const parsed = readCheckpoint(checkpoint!, 'checkpoint at step 1');
    expect(parsed.state).toMatchObject({ step: 1, optimizerStep: 1, options });
    const restored = restoreCheckpoint(runtime, parsed);
    const resumedLosses: number[] = [];
    const result = await runTrainingLoop(runtime, encoder, restored.model, restored.optimizer, images, {
      ...loopOptions,
      startStep: parsed.state.step,
      onProgress: (p) => resumedLosses.push(p.loss),
    });
    expect(result.steps).toBe(3);
    expect(resumedLosses).toEqual(straightLosses.slice(1));

    // Every weight, running statistic, batch count and AdamW moment, bit for bit.
    const straight = readCheckpoint(await writeCheckpoint(runtime, model, optimizer, { step: 3, options }));
    const resumed = readCheckpoint(
      await writeCheckpoint(runtime, restored.model, restored.optimizer, { step: 3, options }),
    );
    expect(resumed.file.names).toEqual(straight.file.names);
    expect(resumed.state).toEqual(straight.state);
    const differing = straight.file.names.filter((name) => {
      const a = straight.file.tensor(name).data;
      const b = resumed.file.tensor(name).data;
      return a.length !== b.length || a.some((value, i) => !Object.is(value, b[i]));
    });
    expect(differing).toEqual([]);
    // The optimiser state is really in the file (not trivially equal zeros).
    const firstMoment = straight.file.float32(`optimizer.m.${model.parameters[0]!.name}`);
    expect(firstMoment.some((v) => v !== 0)).toBe(true);
  }, 1_200_000);
});
