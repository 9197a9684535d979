import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { finiteDifferenceError, numericGradient, sampleIndices } from '../../testing/gradcheck.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import { conv2d, conv2dBackward, depthwiseConv2d, depthwiseConv2dBackward } from './conv.ts';

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
function conv2dReference(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | undefined,
  c: ConvCase,
) {
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

/**
 * float64 gradients of conv2d for g, the gradient of the convolution's output (before any activation): every output
 * value's contributions, transposed.
 */
function conv2dBackwardReference(x: ArrayLike<number>, weight: ArrayLike<number>, g: ArrayLike<number>, c: ConvCase) {
  const outH = Math.floor((c.h + 2 * c.padding - c.k) / c.stride) + 1;
  const outW = Math.floor((c.w + 2 * c.padding - c.k) / c.stride) + 1;
  const dx = new Float64Array(x.length);
  const dWeight = new Float64Array(weight.length);
  const dBias = new Float64Array(c.outC);
  for (let b = 0; b < c.batch; b++) {
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        for (let o = 0; o < c.outC; o++) {
          const gv = g[((b * outH + oy) * outW + ox) * c.outC + o]!;
          dBias[o]! += gv;
          for (let ky = 0; ky < c.k; ky++) {
            const y = oy * c.stride - c.padding + ky;
            if (y < 0 || y >= c.h) continue;
            for (let kx = 0; kx < c.k; kx++) {
              const xx = ox * c.stride - c.padding + kx;
              if (xx < 0 || xx >= c.w) continue;
              for (let ci = 0; ci < c.inC; ci++) {
                const xi = ((b * c.h + y) * c.w + xx) * c.inC + ci;
                const wi = ((o * c.inC + ci) * c.k + ky) * c.k + kx;
                dx[xi]! += gv * weight[wi]!;
                dWeight[wi]! += gv * x[xi]!;
              }
            }
          }
        }
      }
    }
  }
  return { dx, dWeight, dBias };
}

/** float64 depthwise NHWC convolution, stride 1, padding k/2, reading channels [offset, offset + C) of x. */
function depthwiseReference(
  x: ArrayLike<number>,
  inC: number,
  offset: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | undefined,
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

/**
 * float64 gradients of the depthwise convolution for g, the gradient of its output before SiLU; dx in x's layout
 * (zero outside the convolved channel window).
 */
function depthwiseBackwardReference(
  x: ArrayLike<number>,
  inC: number,
  offset: number,
  weight: ArrayLike<number>,
  g: ArrayLike<number>,
  [batch, h, w, channels]: readonly [number, number, number, number],
  k: number,
) {
  const dx = new Float64Array(x.length);
  const dWeight = new Float64Array(weight.length);
  const dBias = new Float64Array(channels);
  const half = (k - 1) / 2;
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        for (let c = 0; c < channels; c++) {
          const gv = g[((b * h + y) * w + xx) * channels + c]!;
          dBias[c]! += gv;
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const [sy, sx] = [y + ky - half, xx + kx - half];
              if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
              const xi = ((b * h + sy) * w + sx) * inC + offset + c;
              dx[xi]! += gv * weight[(c * k + ky) * k + kx]!;
              dWeight[(c * k + ky) * k + kx]! += gv * x[xi]!;
            }
          }
        }
      }
    }
  }
  return { dx, dWeight, dBias };
}

const siluDerivative = (v: number) => {
  const s = 1 / (1 + Math.exp(-v));
  return s * (1 + v * (1 - s));
};

describe('float64 conv backward references against central differences', () => {
  it('conv2d 3x3 stride 2: dx and dW', () => {
    const c: ConvCase = {
      batch: 1,
      h: 5,
      w: 4,
      inC: 2,
      outC: 3,
      k: 3,
      stride: 2,
      padding: 1,
      bias: false,
      relu: false,
    };
    const random = seededRandom(3);
    const x = randomArray(c.batch * c.h * c.w * c.inC, random);
    const weight = randomArray(c.outC * c.inC * c.k * c.k, random);
    const dy = randomArray(conv2dReference(x, weight, undefined, c).out.length, random);
    const grads = conv2dBackwardReference(x, weight, dy, c);
    const xi = sampleIndices(x.length, 12);
    const wi = sampleIndices(weight.length, 12);
    const numericDx = numericGradient((v) => conv2dReference(v, weight, undefined, c).out, x, dy, xi);
    const numericDw = numericGradient((v) => conv2dReference(x, v, undefined, c).out, weight, dy, wi);
    expect(finiteDifferenceError(grads.dx, numericDx, xi)).toBeLessThan(1e-7);
    expect(finiteDifferenceError(grads.dWeight, numericDw, wi)).toBeLessThan(1e-7);
  });

  it('depthwise 3x3 + SiLU on a channel window: dx, dW, dBias', () => {
    const shape = [1, 4, 3, 2] as const;
    const [inC, offset, k] = [5, 2, 3];
    const random = seededRandom(4);
    const x = randomArray(4 * 3 * inC, random);
    const weight = randomArray(2 * k * k, random);
    const bias = randomArray(2, random);
    const dy = randomArray(4 * 3 * 2, random);
    const forward = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number>) =>
      depthwiseReference(xv, inC, offset, wv, bv, shape, k, true);
    const pre = depthwiseReference(x, inC, offset, weight, bias, shape, k, false);
    const g = dy.map((v, i) => v * siluDerivative(pre[i]!));
    const grads = depthwiseBackwardReference(x, inC, offset, weight, g, shape, k);
    const all = (n: number) => Array.from({ length: n }, (_, i) => i);
    for (const [analytic, numeric, indices] of [
      [grads.dx, numericGradient((v) => forward(v, weight, bias), x, dy, all(x.length)), all(x.length)],
      [grads.dWeight, numericGradient((v) => forward(x, v, bias), weight, dy, all(weight.length)), all(weight.length)],
      [grads.dBias, numericGradient((v) => forward(x, weight, v), bias, dy, all(2)), all(2)],
    ] as const) {
      expect(finiteDifferenceError(analytic, numeric, indices)).toBeLessThan(1e-7);
    }
  });
});

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

  // Off every tile: 19 input channels (a 16-slice and a bit), 21 / 67 output channels, position counts off 64. The
  // last case has 2312 output positions, so dW is split over them and the halves are summed.
  const backwardCases: ConvCase[] = [
    { batch: 2, h: 9, w: 7, inC: 19, outC: 21, k: 3, stride: 2, padding: 1, bias: true, relu: true },
    { batch: 1, h: 7, w: 6, inC: 5, outC: 9, k: 5, stride: 1, padding: 2, bias: false, relu: false },
    { batch: 2, h: 8, w: 9, inC: 33, outC: 67, k: 1, stride: 2, padding: 0, bias: false, relu: false },
    { batch: 2, h: 34, w: 34, inC: 3, outC: 4, k: 3, stride: 1, padding: 1, bias: true, relu: false },
  ];
  for (const c of backwardCases) {
    it(`conv2dBackward ${c.k}x${c.k} s${c.stride} p${c.padding} ${c.inC}->${c.outC} on ${c.batch}x${c.h}x${c.w}${c.bias ? ' +bias' : ''}${c.relu ? ' through ReLU' : ''}`, async () => {
      const random = seededRandom(c.inC * 7 + c.outC + c.h);
      const x = randomArray(c.batch * c.h * c.w * c.inC, random);
      const weight = randomArray(c.outC * c.inC * c.k * c.k, random);
      const bias = c.bias ? randomArray(c.outC, random) : undefined;
      const pre = conv2dReference(x, weight, bias, { ...c, relu: false });
      const dy = randomArray(pre.out.length, random);
      // Through ReLU the forward's output masks dy; the reference masks with its own pre-activation.
      const g = c.relu ? dy.map((v, i) => (pre.out[i]! > 0 ? v : 0)) : dy;
      const grads = conv2dBackward(
        runtime,
        runtime.upload([c.batch, c.h, c.w, c.inC], x),
        runtime.upload([c.outC, c.inC, c.k, c.k], weight),
        runtime.upload(pre.shape, dy),
        {
          stride: c.stride,
          padding: c.padding,
          hasBias: c.bias,
          ...(c.relu
            ? {
                reluOutput: runtime.upload(
                  pre.shape,
                  Float32Array.from(pre.out, (v) => Math.max(v, 0)),
                ),
              }
            : {}),
        },
      );
      const expected = conv2dBackwardReference(x, weight, g, c);
      expect(grads.dx?.shape).toEqual([c.batch, c.h, c.w, c.inC]);
      expect(grads.dWeight.shape).toEqual([c.outC, c.inC, c.k, c.k]);
      expect(maxRelativeError(await runtime.read(grads.dx!), expected.dx), 'dx').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dWeight), expected.dWeight), 'dW').toBeLessThan(1e-5);
      if (c.bias)
        expect(maxRelativeError(await runtime.read(grads.dBias!), expected.dBias), 'dBias').toBeLessThan(1e-5);
      else expect(grads.dBias).toBeUndefined();
    });
  }

  it('conv2dBackward skips dx when asked and names a misshapen dy', async () => {
    const x = runtime.upload([1, 4, 4, 3], new Float32Array(48));
    const w = runtime.upload([5, 3, 3, 3], new Float32Array(135));
    expect(conv2dBackward(runtime, x, w, runtime.zeros([1, 2, 2, 5]), { inputGradient: false }).dx).toBeUndefined();
    expect(() => conv2dBackward(runtime, x, w, runtime.zeros([1, 4, 4, 5]))).toThrow(
      /dy: expected shape \[1, 2, 2, 5\], got \[1, 4, 4, 5\]/,
    );
    expect(() => conv2dBackward(runtime, x, w, runtime.zeros([1, 2, 2, 5]), { reluOutput: x })).toThrow(/reluOutput/);
  });

  // SS2D's case (3x3 + bias + SiLU on the first half of in_proj's output, dx written into that half of a wider
  // gradient); LSS's 7x7 without bias or activation on 1152 positions (two reduction chunks); a 5x5 on a channel
  // window with a compact dx.
  const depthwiseBackwardCases = [
    { shape: [2, 9, 6, 37], k: 3, bias: true, silu: true, offset: 0, inC: 74, into: true },
    { shape: [2, 24, 24, 5], k: 7, bias: false, silu: false, offset: undefined, inC: 5, into: false },
    { shape: [1, 6, 11, 8], k: 5, bias: true, silu: false, offset: 3, inC: 13, into: false },
  ] as const;
  for (const c of depthwiseBackwardCases) {
    it(`depthwiseConv2dBackward ${c.k}x${c.k}${c.bias ? ' +bias' : ''}${c.silu ? ' through SiLU' : ''} on [${c.shape.join(', ')}] from channel ${c.offset ?? 0} of ${c.inC}${c.into ? ', dx in place' : ''}`, async () => {
      const [batch, h, w, channels] = c.shape;
      const random = seededRandom(c.k * 100 + c.inC);
      const x = randomArray(batch * h * w * c.inC, random, 2);
      const weight = randomArray(channels * c.k * c.k, random);
      const bias = c.bias ? randomArray(channels, random) : undefined;
      const dy = randomArray(batch * h * w * channels, random);
      const wide = randomArray(x.length, random);
      const target = c.into ? runtime.upload([batch, h, w, c.inC], wide) : undefined;
      const grads = depthwiseConv2dBackward(
        runtime,
        runtime.upload([batch, h, w, c.inC], x),
        runtime.upload([channels, 1, c.k, c.k], weight),
        runtime.upload(c.shape, dy),
        {
          silu: c.silu,
          ...(bias ? { bias: runtime.upload([channels], bias) } : {}),
          ...(c.offset !== undefined ? { channelOffset: c.offset } : {}),
          ...(target ? { inputGradientInto: target } : {}),
        },
      );
      const offset = c.offset ?? 0;
      const pre = depthwiseReference(x, c.inC, offset, weight, bias, c.shape, c.k, false);
      const g = c.silu ? dy.map((v, i) => v * siluDerivative(pre[i]!)) : dy;
      const expected = depthwiseBackwardReference(x, c.inC, offset, weight, g, c.shape, c.k);
      const dx = await runtime.read(grads.dx!);
      if (target) {
        // The convolved window holds dx; the other channels keep what was there.
        expect(grads.dx).toBe(target);
        const inWindow = (i: number) => i % c.inC >= offset && i % c.inC < offset + channels;
        expect(
          maxRelativeError(
            dx,
            expected.dx.map((v, i) => (inWindow(i) ? v : wide[i]!)),
          ),
          'dx',
        ).toBeLessThan(1e-5);
      } else {
        const compact = expected.dx.filter((_, i) => i % c.inC >= offset && i % c.inC < offset + channels);
        expect(grads.dx?.shape).toEqual(c.shape);
        expect(maxRelativeError(dx, compact), 'dx').toBeLessThan(1e-5);
      }
      expect(maxRelativeError(await runtime.read(grads.dWeight), expected.dWeight), 'dW').toBeLessThan(1e-5);
      if (bias) expect(maxRelativeError(await runtime.read(grads.dBias!), expected.dBias), 'dBias').toBeLessThan(1e-5);
    });
  }

  it('depthwiseConv2dBackward names a misshapen dy or gradient target', () => {
    const x = runtime.upload([1, 4, 4, 6], new Float32Array(96));
    const w = runtime.upload([3, 1, 3, 3], new Float32Array(27));
    expect(() => depthwiseConv2dBackward(runtime, x, w, runtime.zeros([1, 4, 4, 6]), { channelOffset: 3 })).toThrow(
      /dy: expected shape \[1, 4, 4, 3\]/,
    );
    expect(() =>
      depthwiseConv2dBackward(runtime, x, w, runtime.zeros([1, 4, 4, 3]), {
        channelOffset: 0,
        inputGradientInto: runtime.zeros([1, 4, 4, 3]),
      }),
    ).toThrow(/inputGradientInto/);
  });
});
