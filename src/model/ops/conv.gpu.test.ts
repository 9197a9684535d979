import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import { conv2d, depthwiseConv2d } from './conv.ts';

interface ConvCase {
  batch: number;
  h: number;
  w: number;
  inC: number;
  outC: number;
  k: number;
  stride: 1 | 2;
  padding: number;
  bias: boolean;
  relu: boolean;
}

/** float64 NHWC convolution with an OIHW weight, groups = 1. */
function conv2dReference(x: Float32Array, weight: Float32Array, bias: Float32Array | undefined, c: ConvCase) {
  const outH = Math.floor((c.h + 2 * c.padding - c.k) / c.stride) + 1;
  const outW = Math.floor((c.w + 2 * c.padding - c.k) / c.stride) + 1;
  const out = new Float64Array(c.batch * outH * outW * c.outC);
  for (let b = 0; b < c.batch; b++) {
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        for (let o = 0; o < c.outC; o++) {
          let sum = bias ? bias[o]! : 0;
          for (let ky = 0; ky < c.k; ky++) {
            const y = oy * c.stride - c.padding + ky;
            if (y < 0 || y >= c.h) continue;
            for (let kx = 0; kx < c.k; kx++) {
              const xx = ox * c.stride - c.padding + kx;
              if (xx < 0 || xx >= c.w) continue;
              for (let ci = 0; ci < c.inC; ci++) {
                sum += x[((b * c.h + y) * c.w + xx) * c.inC + ci]! * weight[((o * c.inC + ci) * c.k + ky) * c.k + kx]!;
              }
            }
          }
          out[((b * outH + oy) * outW + ox) * c.outC + o] = c.relu ? Math.max(sum, 0) : sum;
        }
      }
    }
  }
  return { out, shape: [c.batch, outH, outW, c.outC] };
}

/** float64 depthwise NHWC convolution, stride 1, padding k/2, reading channels [offset, offset + C) of x. */
function depthwiseReference(
  x: Float32Array,
  inC: number,
  offset: number,
  weight: Float32Array,
  bias: Float32Array | undefined,
  [batch, h, w, channels]: readonly number[],
  k: number,
  silu: boolean,
): Float64Array {
  const out = new Float64Array(batch! * h! * w! * channels!);
  const half = (k - 1) / 2;
  for (let b = 0; b < batch!; b++) {
    for (let y = 0; y < h!; y++) {
      for (let xx = 0; xx < w!; xx++) {
        for (let c = 0; c < channels!; c++) {
          let sum = 0;
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const [sy, sx] = [y + ky - half, xx + kx - half];
              if (sy < 0 || sy >= h! || sx < 0 || sx >= w!) continue;
              sum += x[((b * h! + sy) * w! + sx) * inC + offset + c]! * weight[(c * k + ky) * k + kx]!;
            }
          }
          if (bias) sum += bias[c]!;
          out[((b * h! + y) * w! + xx) * channels! + c] = silu ? sum / (1 + Math.exp(-sum)) : sum;
        }
      }
    }
  }
  return out;
}

describe('conv kernels against float64', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  // Channel counts and position counts off the 64x64 tile and the 16-wide channel slice; every option on and off.
  const convCases: ConvCase[] = [
    { batch: 2, h: 9, w: 7, inC: 19, outC: 70, k: 3, stride: 2, padding: 1, bias: false, relu: true },
    { batch: 1, h: 11, w: 10, inC: 17, outC: 5, k: 3, stride: 1, padding: 1, bias: true, relu: false },
    { batch: 3, h: 8, w: 9, inC: 33, outC: 67, k: 1, stride: 2, padding: 0, bias: false, relu: false },
    { batch: 1, h: 7, w: 6, inC: 4, outC: 9, k: 5, stride: 1, padding: 2, bias: true, relu: true },
    { batch: 2, h: 6, w: 6, inC: 3, outC: 7, k: 3, stride: 2, padding: 0, bias: true, relu: false },
  ];
  for (const c of convCases) {
    it(`conv2d ${c.k}x${c.k} s${c.stride} p${c.padding} ${c.inC}->${c.outC} on ${c.batch}x${c.h}x${c.w}${c.bias ? ' +bias' : ''}${c.relu ? ' +relu' : ''}`, async () => {
      const random = seededRandom(c.inC * 100 + c.outC);
      const x = randomArray(c.batch * c.h * c.w * c.inC, random);
      const weight = randomArray(c.outC * c.inC * c.k * c.k, random);
      const bias = c.bias ? randomArray(c.outC, random) : undefined;
      const out = conv2d(
        runtime,
        runtime.upload([c.batch, c.h, c.w, c.inC], x),
        runtime.upload([c.outC, c.inC, c.k, c.k], weight),
        {
          stride: c.stride,
          padding: c.padding,
          relu: c.relu,
          ...(bias ? { bias: runtime.upload([c.outC], bias) } : {}),
        },
      );
      const expected = conv2dReference(x, weight, bias, c);
      expect(out.shape).toEqual(expected.shape);
      expect(maxRelativeError(await runtime.read(out), expected.out)).toBeLessThan(1e-5);
    });
  }

  it('conv2d names a weight that does not match the input', () => {
    const x = runtime.upload([1, 4, 4, 3], new Float32Array(48));
    const w = runtime.upload([5, 4, 3, 3], new Float32Array(180));
    expect(() => conv2d(runtime, x, w)).toThrow(/weight must be OIHW \[Cout, 3, k, k\]/);
    const w3 = runtime.upload([5, 3, 3, 3], new Float32Array(135));
    expect(() => conv2d(runtime, x, w3, { bias: runtime.upload([4], new Float32Array(4)) })).toThrow(/bias/);
    expect(() => conv2d(runtime, runtime.upload([1, 2, 2, 3], new Float32Array(12)), w3)).toThrow(/does not fit/);
  });

  const depthwiseCases = [
    { k: 3, bias: true, silu: true, offset: undefined, inC: 37 },
    { k: 5, bias: false, silu: false, offset: undefined, inC: 37 },
    { k: 7, bias: false, silu: false, offset: undefined, inC: 37 },
    // SS2D reads the first half of in_proj's [.., 2D] output in place; the second half is checked too.
    { k: 3, bias: true, silu: true, offset: 0, inC: 74 },
    { k: 3, bias: false, silu: true, offset: 37, inC: 74 },
  ];
  for (const c of depthwiseCases) {
    it(`depthwise ${c.k}x${c.k}${c.bias ? ' +bias' : ''}${c.silu ? ' +silu' : ''} channels from ${c.offset ?? 0} of ${c.inC}`, async () => {
      const random = seededRandom(c.k * 10 + c.inC + (c.offset ?? 0));
      const shape = [2, 9, 6, 37] as const;
      const [batch, h, w, channels] = shape;
      const x = randomArray(batch * h * w * c.inC, random, 2);
      const weight = randomArray(channels * c.k * c.k, random);
      const bias = c.bias ? randomArray(channels, random) : undefined;
      const out = depthwiseConv2d(
        runtime,
        runtime.upload([batch, h, w, c.inC], x),
        runtime.upload([channels, 1, c.k, c.k], weight),
        {
          silu: c.silu,
          ...(bias ? { bias: runtime.upload([channels], bias) } : {}),
          ...(c.offset !== undefined ? { channelOffset: c.offset } : {}),
        },
      );
      expect(out.shape).toEqual(shape);
      const expected = depthwiseReference(x, c.inC, c.offset ?? 0, weight, bias, shape, c.k, c.silu);
      expect(maxRelativeError(await runtime.read(out), expected)).toBeLessThan(1e-5);
    });
  }

  it('depthwise names bad weights and channel windows', () => {
    const x = runtime.upload([1, 4, 4, 6], new Float32Array(96));
    expect(() => depthwiseConv2d(runtime, x, runtime.upload([6, 1, 4, 4], new Float32Array(96)))).toThrow(/odd/);
    const w = runtime.upload([4, 1, 3, 3], new Float32Array(36));
    expect(() => depthwiseConv2d(runtime, x, w)).toThrow(/4 channels from offset 0/);
    expect(() => depthwiseConv2d(runtime, x, w, { channelOffset: 3 })).toThrow(/4 channels from offset 3/);
  });
});
