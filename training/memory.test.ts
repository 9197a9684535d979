import { beforeAll, describe, expect, it } from 'vitest';
import { PAPER_CONFIG } from '../src/model/config.ts';
import { checkTrainingMemory, planTrainingMemory } from './memory.ts';

const config = { ...PAPER_CONFIG, encoder: 'resnet18' as const };

beforeAll(async () => {
  // The runtime names GPUBufferUsage and GPUMapMode; Node has them once the `webgpu` package's globals are installed.
  const { globals } = await import('webgpu');
  Object.assign(globalThis, globals);
});

describe('planTrainingMemory', () => {
  it('grows with the batch: activations scale with it, weights and AdamW moments do not', async () => {
    const [two, four, eight] = await Promise.all([2, 4, 8].map((b) => planTrainingMemory(config, b)));
    const perImage = (eight!.stepBytes - four!.stepBytes) / 4;
    expect(four!.stepBytes).toBeGreaterThan(two!.stepBytes);
    expect(perImage).toBeGreaterThan(0);
    // Fixed part ≈ weights + 2 AdamW moments + gradients: 17.45M parameters × 4 bytes × 4, give or take pooling slack.
    const fixed = four!.stepBytes - 4 * perImage;
    expect(fixed).toBeGreaterThan(17.4e6 * 4 * 3);
  });

  it('adds the feature cache: 1.835 MB per 256² image for ResNet18 layer1..3', async () => {
    const plan = await planTrainingMemory(config, 2, 100);
    expect(plan.featureCacheBytes).toBe(100 * 4 * (64 * 64 * 64 + 32 * 32 * 128 + 16 * 16 * 256));
    expect(plan.totalBytes).toBe(plan.stepBytes + plan.featureCacheBytes);
  });

  it('refuses a batch over budget and says which batch fits', async () => {
    const eight = await planTrainingMemory(config, 8);
    const budget = { bytes: eight.totalBytes, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 31 };
    await expect(checkTrainingMemory(config, 8, 0, budget)).resolves.toMatchObject({ batch: 8 });
    await expect(checkTrainingMemory(config, 16, 0, budget)).rejects.toThrow(
      /training at batch 16 needs \d+\.\d\d GB of GPU memory .* budget is \d+\.\d\d GB: batch 8 fits/,
    );
  });
});
