import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../gpu/runtime.ts';
import { loadGolden } from '../testing/goldens.ts';
import { createTestRuntime } from '../testing/gpu.ts';
import { maxRelativeError } from '../testing/reference.ts';
import { loadMffOceWeights, mffOceForward } from './mffOce.ts';
import { nchwToNhwc, nhwcToNchw } from './ops/layout.ts';

describe('MFF_OCE inference', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  it('matches the official golden mff_oce_small in eval mode (running statistics)', async () => {
    const golden = await loadGolden('mff_oce_small');
    const weights = loadMffOceWeights(runtime, golden, 'param.');
    const nhwc = (name: string) =>
      nchwToNhwc(runtime, runtime.upload(golden.tensor(name).shape, golden.float32(name), name));
    const [f1, f2, f3] = [nhwc('input.f1'), nhwc('input.f2'), nhwc('input.f3')];
    const z = nhwcToNchw(runtime, mffOceForward(runtime, weights, f1, f2, f3));
    expect(z.shape).toEqual(golden.tensor('output.eval').shape);
    expect(maxRelativeError(await runtime.read(z), golden.float32('output.eval'))).toBeLessThan(1e-4);
  });

  it('names inputs that are not one image at strides 4, 8, 16', async () => {
    const golden = await loadGolden('mff_oce_small');
    const weights = loadMffOceWeights(runtime, golden, 'param.');
    const image = (h: number, c: number) => runtime.upload([1, h, h, c], new Float32Array(h * h * c));
    expect(() => mffOceForward(runtime, weights, image(16, 64), image(8, 128), image(2, 256))).toThrow(
      /not one image at strides 4, 8, 16/,
    );
    expect(() => mffOceForward(runtime, weights, image(16, 32), image(8, 128), image(4, 256))).toThrow(
      /f1 must be NHWC \[B, H, W, 64\]/,
    );
    expect(() => loadMffOceWeights(runtime, golden, 'nothing.')).toThrow(/missing tensor "nothing\./);
    const misshapen = {
      float32: (name: string) => golden.float32(name),
      tensor: (name: string) => (name === 'param.conv1.weight' ? { shape: [128, 64, 1, 1] } : golden.tensor(name)),
    };
    expect(() => loadMffOceWeights(runtime, misshapen, 'param.')).toThrow(
      /param\.conv1\.weight is \[128, 64, 1, 1\], expected \[128, 64, 3, 3\]/,
    );
  });
});
