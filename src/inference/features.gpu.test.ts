import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncoder, type Encoder } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../encoder/onnxGraph.ts';
import type { GpuRuntime } from '../gpu/runtime.ts';
import { parseSafetensors } from '../io/safetensors.ts';
import { nhwcToNchw } from '../model/ops/layout.ts';
import { fetchShared } from '../testing/goldens.ts';
import { createTestRuntime } from '../testing/gpu.ts';
import { maxRelativeError } from '../testing/reference.ts';
import { encodeBatch } from './features.ts';

// The parity case holds a real bottle image and the PyTorch reference encoder's features of it (npm run parity
// writes it before the GPU tests in npm test).
const CASE = '/build/parity/full_hilbert8_seed0.safetensors';

describe('encoder features on the engine GPU', () => {
  let runtime: GpuRuntime;
  let encoder: Encoder;
  beforeAll(async () => {
    runtime = await createTestRuntime();
    const weights = parseSafetensors(await fetchShared('models/resnet18-imagenet-l1-l3-bnfolded.safetensors'));
    encoder = await createEncoder({ model: buildResNetEncoderOnnx(weights, 'resnet18'), backend: 'auto' });
  });
  afterAll(async () => {
    await encoder.release();
    runtime.destroy();
  });

  it('match the PyTorch reference encoder, NHWC on our device', async () => {
    const response = await fetch(CASE);
    if (!response.ok) throw new Error(`no ${CASE}: run npm run parity first`);
    const file = parseSafetensors(new Uint8Array(await response.arrayBuffer()), CASE);
    const features = await encodeBatch(runtime, encoder, file.float32('input.image'), 1);
    expect(features.map((f) => f.shape)).toEqual([
      [1, 64, 64, 64],
      [1, 32, 32, 128],
      [1, 16, 16, 256],
    ]);
    for (const [i, f] of features.entries()) {
      const error = maxRelativeError(await runtime.read(nhwcToNchw(runtime, f)), file.float32(`input.f${i + 1}`));
      expect(error, `layer${i + 1}`).toBeLessThan(1e-4);
    }
  });
});
