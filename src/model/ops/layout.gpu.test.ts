import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { loadGolden } from '../../testing/goldens.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import {
  concatChannels,
  nchwToNhwc,
  nhwcToNchw,
  patchExpandShuffle,
  patchExpandShuffleBackward,
  sliceChannels,
  splitChannels,
} from './layout.ts';
import { linear, linearBackward } from './matmul.ts';
import { layerNorm, layerNormBackward } from './norm.ts';

/** Index arithmetic of a 4-D row-major tensor. */
function offset4([, d1, d2, d3]: readonly number[], i0: number, i1: number, i2: number, i3: number): number {
  return ((i0 * d1! + i1) * d2! + i2) * d3! + i3;
}

describe('layout kernels', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  it('NCHW <-> NHWC on shapes off the workgroup size', async () => {
    const [b, c, h, w] = [2, 19, 5, 7];
    const nchw = randomArray(b * c * h * w, seededRandom(1));
    const nhwc = nchwToNhwc(runtime, runtime.upload([b, c, h, w], nchw));
    expect(nhwc.shape).toEqual([b, h, w, c]);
    const back = nhwcToNchw(runtime, nhwc);
    expect(back.shape).toEqual([b, c, h, w]);
    const got = await runtime.read(nhwc);
    const expected = new Float32Array(got.length);
    for (let i0 = 0; i0 < b; i0++)
      for (let i1 = 0; i1 < c; i1++)
        for (let i2 = 0; i2 < h; i2++)
          for (let i3 = 0; i3 < w; i3++)
            expected[offset4([b, h, w, c], i0, i2, i3, i1)] = nchw[offset4([b, c, h, w], i0, i1, i2, i3)]!;
    expect(got).toEqual(expected);
    expect(await runtime.read(back)).toEqual(nchw);
  });

  it('patchExpandShuffle places channel block (p1, p2) at pixel (2h + p1, 2w + p2)', async () => {
    const [b, h, w, dim] = [2, 3, 5, 7];
    const x = randomArray(b * h * w * 4 * dim, seededRandom(2));
    const out = patchExpandShuffle(runtime, runtime.upload([b, h, w, 4 * dim], x));
    expect(out.shape).toEqual([b, 2 * h, 2 * w, dim]);
    const got = await runtime.read(out);
    const expected = new Float32Array(got.length);
    for (let i0 = 0; i0 < b; i0++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++)
          for (let p1 = 0; p1 < 2; p1++)
            for (let p2 = 0; p2 < 2; p2++)
              for (let c = 0; c < dim; c++) {
                const source = offset4([b, h, w, 4 * dim], i0, y, xx, p1 * 2 * dim + p2 * dim + c);
                expected[offset4([b, 2 * h, 2 * w, dim], i0, 2 * y + p1, 2 * xx + p2, c)] = x[source]!;
              }
    expect(got).toEqual(expected);
    expect(() => patchExpandShuffle(runtime, runtime.upload([1, 2, 2, 6], new Float32Array(24)))).toThrow(/4·dim/);
  });

  it('concatChannels keeps the order [first, second, third]; sliceChannels takes one back out', async () => {
    const random = seededRandom(3);
    const widths = [5, 7, 1];
    const rows = 2 * 3 * 4;
    const parts = widths.map((c) => randomArray(rows * c, random));
    const tensors = parts.map((p, i) => runtime.upload([2, 3, 4, widths[i]!], p));
    const out = concatChannels(runtime, tensors);
    expect(out.shape).toEqual([2, 3, 4, 13]);
    const middle = sliceChannels(runtime, out, 5, 7);
    const got = await runtime.read(out);
    const expected = new Float32Array(rows * 13);
    for (let r = 0; r < rows; r++) {
      let offset = 0;
      parts.forEach((p, i) => {
        const c = widths[i]!;
        expected.set(p.subarray(r * c, (r + 1) * c), r * 13 + offset);
        offset += c;
      });
    }
    expect(got).toEqual(expected);
    expect(await runtime.read(middle)).toEqual(parts[1]);
    expect(() => concatChannels(runtime, [tensors[0]!, runtime.upload([2, 3, 5, 1], new Float32Array(30))])).toThrow(
      /differ outside the last axis/,
    );
    expect(() => sliceChannels(runtime, out, 10, 4)).toThrow(/\[10, 14\) are outside/);
  });

  it('PatchExpand2D (Linear, shuffle, LayerNorm) matches the official golden patch_expand_d32', async () => {
    const golden = await loadGolden('patch_expand_d32');
    const upload = (name: string) => runtime.upload(golden.tensor(name).shape, golden.float32(name), name);
    const expanded = linear(runtime, upload('input.x'), upload('param.expand.weight'));
    const out = layerNorm(
      runtime,
      patchExpandShuffle(runtime, expanded),
      upload('param.norm.weight'),
      upload('param.norm.bias'),
      { eps: 1e-5 },
    );
    expect(out.shape).toEqual(golden.tensor('output.0').shape);
    expect(maxRelativeError(await runtime.read(out), golden.float32('output.0'))).toBeLessThan(1e-4);
  });

  it('patchExpandShuffleBackward is the inverse permutation', async () => {
    const [b, h, w, dim] = [2, 3, 5, 7];
    const x = randomArray(b * h * w * 4 * dim, seededRandom(4));
    const shuffled = patchExpandShuffle(runtime, runtime.upload([b, h, w, 4 * dim], x));
    // A permutation's backward is its inverse: it must give back every value in its original place.
    const back = patchExpandShuffleBackward(runtime, shuffled);
    expect(back.shape).toEqual([b, h, w, 4 * dim]);
    expect(await runtime.read(back)).toEqual(x);
    expect(() => patchExpandShuffleBackward(runtime, runtime.upload([1, 3, 2, 4], new Float32Array(24)))).toThrow(
      /not a 2x-expanded image/,
    );
  });

  it('splitChannels undoes concatChannels block by block', async () => {
    const random = seededRandom(5);
    const widths = [5, 7, 1];
    const parts = widths.map((c) => randomArray(2 * 3 * c, random));
    const joined = concatChannels(
      runtime,
      parts.map((p, i) => runtime.upload([2, 3, widths[i]!], p)),
    );
    const split = splitChannels(runtime, joined, widths);
    expect(split.map((t) => t.shape)).toEqual(widths.map((c) => [2, 3, c]));
    for (const [i, t] of split.entries()) expect(await runtime.read(t)).toEqual(parts[i]);
    expect(() => splitChannels(runtime, joined, [5, 7])).toThrow(/widths \[5, 7\] do not split \[2, 3, 13\]/);
  });

  it('PatchExpand2D backward matches the official golden patch_expand_d32 gradients', async () => {
    const golden = await loadGolden('patch_expand_d32');
    const upload = (name: string) => runtime.upload(golden.tensor(name).shape, golden.float32(name), name);
    const x = upload('input.x');
    const weight = upload('param.expand.weight');
    const shuffled = patchExpandShuffle(runtime, linear(runtime, x, weight));
    const norm = layerNormBackward(runtime, shuffled, upload('param.norm.weight'), upload('dout.0'), { eps: 1e-5 });
    const expand = linearBackward(runtime, x, weight, patchExpandShuffleBackward(runtime, norm.dx));
    const errors = {
      'grad.input.x': maxRelativeError(await runtime.read(expand.dx!), golden.float32('grad.input.x')),
      'grad.param.expand.weight': maxRelativeError(
        await runtime.read(expand.dWeight),
        golden.float32('grad.param.expand.weight'),
      ),
      'grad.param.norm.weight': maxRelativeError(
        await runtime.read(norm.dWeight),
        golden.float32('grad.param.norm.weight'),
      ),
      'grad.param.norm.bias': maxRelativeError(await runtime.read(norm.dBias), golden.float32('grad.param.norm.bias')),
    };
    console.info(`patch_expand_d32 gradient errors: ${JSON.stringify(errors)}`);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(1e-5);
  });
});
