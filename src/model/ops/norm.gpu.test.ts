import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { finiteDifferenceError, numericGradient } from '../../testing/gradcheck.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import {
  type BatchNormTrainState,
  batchNormAffine,
  batchNormTrain,
  batchNormTrainBackward,
  channelAffine,
  gatedLayerNorm,
  gatedLayerNormBackward,
  instanceNorm,
  instanceNormBackward,
  layerNorm,
  layerNormBackward,
} from './norm.ts';

const silu = (v: number) => v / (1 + Math.exp(-v));
const siluDerivative = (v: number) => {
  const s = 1 / (1 + Math.exp(-v));
  return s * (1 + v * (1 - s));
};

/** float64 (mean, 1/sqrt(biased var + eps)) of `count` values at start, start + step, ... */
function statistics(x: ArrayLike<number>, start: number, count: number, step: number, eps: number): [number, number] {
  let sum = 0;
  for (let i = 0; i < count; i++) sum += x[start + i * step]!;
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < count; i++) squares += (x[start + i * step]! - mean) ** 2;
  return [mean, 1 / Math.sqrt(squares / count + eps)];
}

function layerNormReference(
  x: ArrayLike<number>,
  channels: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
) {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / channels; r++) {
    const [mean, invStd] = statistics(x, r * channels, channels, 1, eps);
    for (let c = 0; c < channels; c++) {
      out[r * channels + c] = (x[r * channels + c]! - mean) * invStd * weight[c]! + bias[c]!;
    }
  }
  return out;
}

/** float64 gradients of LayerNorm over rows of `channels` for dy. */
function layerNormBackwardReference(
  x: ArrayLike<number>,
  channels: number,
  weight: ArrayLike<number>,
  dy: ArrayLike<number>,
  eps: number,
) {
  const dx = new Float64Array(x.length);
  const dWeight = new Float64Array(channels);
  const dBias = new Float64Array(channels);
  for (let r = 0; r < x.length / channels; r++) {
    const [mean, invStd] = statistics(x, r * channels, channels, 1, eps);
    const normed = (c: number) => (x[r * channels + c]! - mean) * invStd;
    const g = (c: number) => dy[r * channels + c]! * weight[c]!;
    let meanG = 0;
    let meanGx = 0;
    for (let c = 0; c < channels; c++) {
      meanG += g(c) / channels;
      meanGx += (g(c) * normed(c)) / channels;
      dWeight[c]! += dy[r * channels + c]! * normed(c);
      dBias[c]! += dy[r * channels + c]!;
    }
    for (let c = 0; c < channels; c++) dx[r * channels + c] = invStd * (g(c) - meanG - normed(c) * meanGx);
  }
  return { dx, dWeight, dBias };
}

/** LayerNorm(y) · SiLU(z) in float64 for y and z [rows, C]. */
function gatedReference(
  y: ArrayLike<number>,
  z: ArrayLike<number>,
  channels: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
) {
  return layerNormReference(y, channels, weight, bias, 1e-5).map((v, i) => v * silu(z[i]!));
}

/** float64 gradients of gatedReference for dy: through d(normed) = dy · SiLU(z), and dz. */
function gatedBackwardReference(
  y: ArrayLike<number>,
  z: ArrayLike<number>,
  channels: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  dy: ArrayLike<number>,
) {
  const normed = layerNormReference(y, channels, weight, bias, 1e-5);
  const dNormed = Float64Array.from(normed, (_, i) => dy[i]! * silu(z[i]!));
  const dGate = Float64Array.from(normed, (v, i) => dy[i]! * v * siluDerivative(z[i]!));
  return { ...layerNormBackwardReference(y, channels, weight, dNormed, 1e-5), dGate };
}

/** InstanceNorm2d (+ SiLU) in float64 on x [B, H, W, C]. */
function instanceNormReference(x: ArrayLike<number>, [batch, h, w, channels]: readonly number[], siluOn: boolean) {
  const out = new Float64Array(x.length);
  for (let b = 0; b < batch!; b++) {
    for (let c = 0; c < channels!; c++) {
      const start = b * h! * w! * channels! + c;
      const [mean, invStd] = statistics(x, start, h! * w!, channels!, 1e-5);
      for (let p = 0; p < h! * w!; p++) {
        const v = (x[start + p * channels!]! - mean) * invStd;
        out[start + p * channels!] = siluOn ? silu(v) : v;
      }
    }
  }
  return out;
}

/** float64 dx of instanceNormReference for dy. */
function instanceNormBackwardReference(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  [batch, h, w, channels]: readonly number[],
  siluOn: boolean,
) {
  const dx = new Float64Array(x.length);
  const n = h! * w!;
  for (let b = 0; b < batch!; b++) {
    for (let c = 0; c < channels!; c++) {
      const start = b * n * channels! + c;
      const [mean, invStd] = statistics(x, start, n, channels!, 1e-5);
      const at = (p: number) => start + p * channels!;
      const normed = (p: number) => (x[at(p)]! - mean) * invStd;
      const g = (p: number) => dy[at(p)]! * (siluOn ? siluDerivative(normed(p)) : 1);
      let meanG = 0;
      let meanGx = 0;
      for (let p = 0; p < n; p++) {
        meanG += g(p) / n;
        meanGx += (g(p) * normed(p)) / n;
      }
      for (let p = 0; p < n; p++) dx[at(p)] = invStd * (g(p) - meanG - normed(p) * meanGx);
    }
  }
  return dx;
}

/** BatchNorm in training mode in float64 on x [rows, C]: per-channel batch statistics (biased variance). */
function batchNormTrainReference(
  x: ArrayLike<number>,
  channels: number,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  relu: boolean,
) {
  const rows = x.length / channels;
  const mean = new Float64Array(channels);
  const variance = new Float64Array(channels);
  const out = new Float64Array(x.length);
  const pre = new Float64Array(x.length);
  for (let c = 0; c < channels; c++) {
    const [m, invStd] = statistics(x, c, rows, channels, 1e-5);
    mean[c] = m;
    variance[c] = 1 / invStd ** 2 - 1e-5;
    for (let r = 0; r < rows; r++) {
      const i = r * channels + c;
      pre[i] = (x[i]! - m) * invStd * gamma[c]! + beta[c]!;
      out[i] = relu ? Math.max(pre[i]!, 0) : pre[i]!;
    }
  }
  return { out, pre, mean, variance };
}

/** float64 gradients of batchNormTrainReference for dy. */
function batchNormBackwardReference(
  x: ArrayLike<number>,
  channels: number,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  dy: ArrayLike<number>,
  relu: boolean,
) {
  const rows = x.length / channels;
  const { pre } = batchNormTrainReference(x, channels, gamma, beta, relu);
  const dx = new Float64Array(x.length);
  const dWeight = new Float64Array(channels);
  const dBias = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const [mean, invStd] = statistics(x, c, rows, channels, 1e-5);
    const at = (r: number) => r * channels + c;
    const normed = (r: number) => (x[at(r)]! - mean) * invStd;
    const g = (r: number) => (relu && pre[at(r)]! <= 0 ? 0 : dy[at(r)]!);
    for (let r = 0; r < rows; r++) {
      dBias[c]! += g(r);
      dWeight[c]! += g(r) * normed(r);
    }
    for (let r = 0; r < rows; r++) {
      dx[at(r)] = gamma[c]! * invStd * (g(r) - dBias[c]! / rows - (normed(r) * dWeight[c]!) / rows);
    }
  }
  return { dx, dWeight, dBias };
}

const indicesOf = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('float64 norm backward references against central differences', () => {
  const random = seededRandom(99);
  const [rows, channels] = [4, 6];
  const x = randomArray(rows * channels, random, 2);
  const z = randomArray(rows * channels, random, 3);
  const dy = randomArray(rows * channels, random);
  const weight = randomArray(channels, random, 2);
  const bias = randomArray(channels, random);
  const all = indicesOf(rows * channels);
  const perChannel = indicesOf(channels);

  it('LayerNorm: dx, dweight, dbias', () => {
    const grads = layerNormBackwardReference(x, channels, weight, dy, 1e-5);
    const f = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number>) =>
      layerNormReference(xv, channels, wv, bv, 1e-5);
    expect(
      finiteDifferenceError(
        grads.dx,
        numericGradient((v) => f(v, weight, bias), x, dy, all),
        all,
      ),
    ).toBeLessThan(1e-7);
    expect(
      finiteDifferenceError(
        grads.dWeight,
        numericGradient((v) => f(x, v, bias), weight, dy, perChannel),
        perChannel,
      ),
    ).toBeLessThan(1e-7);
    expect(
      finiteDifferenceError(
        grads.dBias,
        numericGradient((v) => f(x, weight, v), bias, dy, perChannel),
        perChannel,
      ),
    ).toBeLessThan(1e-7);
  });

  it('gated LayerNorm: dy, dz, dweight', () => {
    const grads = gatedBackwardReference(x, z, channels, weight, bias, dy);
    const numericDx = numericGradient((v) => gatedReference(v, z, channels, weight, bias), x, dy, all);
    const numericDz = numericGradient((v) => gatedReference(x, v, channels, weight, bias), z, dy, all);
    const numericDw = numericGradient((v) => gatedReference(x, z, channels, v, bias), weight, dy, perChannel);
    expect(finiteDifferenceError(grads.dx, numericDx, all)).toBeLessThan(1e-7);
    expect(finiteDifferenceError(grads.dGate, numericDz, all)).toBeLessThan(1e-7);
    expect(finiteDifferenceError(grads.dWeight, numericDw, perChannel)).toBeLessThan(1e-7);
  });

  it('InstanceNorm + SiLU: dx', () => {
    const shape = [2, 3, 2, 2];
    const grads = instanceNormBackwardReference(x, dy, shape, true);
    const numeric = numericGradient((v) => instanceNormReference(v, shape, true), x, dy, all);
    expect(finiteDifferenceError(grads, numeric, all)).toBeLessThan(1e-7);
  });

  it('BatchNorm (batch statistics) + ReLU: dx, dgamma, dbeta', () => {
    const grads = batchNormBackwardReference(x, channels, weight, bias, dy, true);
    const f = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number>) =>
      batchNormTrainReference(xv, channels, wv, bv, true).out;
    expect(
      finiteDifferenceError(
        grads.dx,
        numericGradient((v) => f(v, weight, bias), x, dy, all),
        all,
      ),
    ).toBeLessThan(1e-7);
    expect(
      finiteDifferenceError(
        grads.dWeight,
        numericGradient((v) => f(x, v, bias), weight, dy, perChannel),
        perChannel,
      ),
    ).toBeLessThan(1e-7);
    expect(
      finiteDifferenceError(
        grads.dBias,
        numericGradient((v) => f(x, weight, v), bias, dy, perChannel),
        perChannel,
      ),
    ).toBeLessThan(1e-7);
  });
});

/** Values around `center`, so that a one-pass E[x²] - E[x]² variance would lose digits. */
function offsetArray(length: number, random: () => number, center: number): Float32Array {
  return randomArray(length, random).map((v) => center + v);
}

describe('norm kernels against float64', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  // Each channel count with a thread per row (the default on SwiftShader) and with the workgroup reduction a hardware
  // adapter gets (about C/4 threads per row: 64 to 1 rows per workgroup, the last one partly empty), up to SS2D's
  // largest D.
  for (const [rows, channels, center, threadsPerRow] of [
    [7, 5, 0, 1],
    [7, 5, 0, 4],
    [37, 37, 10, 1],
    [37, 37, 10, 16],
    [3, 300, -4, 128],
    [4, 1024, 2, 1],
    [4, 1024, 2, 256],
  ] as const) {
    it(`layerNorm on ${rows} rows of ${channels} channels around ${center}, ${threadsPerRow} threads per row`, async () => {
      const random = seededRandom(channels);
      const x = offsetArray(rows * channels, random, center);
      const weight = randomArray(channels, random, 2);
      const bias = randomArray(channels, random);
      const out = layerNorm(
        runtime,
        runtime.upload([1, rows, channels], x),
        runtime.upload([channels], weight),
        runtime.upload([channels], bias),
        { eps: 1e-5, threadsPerRow },
      );
      expect(out.shape).toEqual([1, rows, channels]);
      const expected = layerNormReference(x, channels, weight, bias, 1e-5);
      expect(maxRelativeError(await runtime.read(out), expected)).toBeLessThan(1e-5);
    });
  }

  for (const [gateOffset, threadsPerRow] of [
    [undefined, undefined],
    [70, 32],
  ] as const) {
    it(`gatedLayerNorm with the gate ${gateOffset === undefined ? 'as its own tensor' : 'in the second half of [.., 2D]'}, ${threadsPerRow ?? 'default'} threads per row`, async () => {
      const [batch, positions, channels] = [2, 9, 70];
      const gateChannels = gateOffset === undefined ? channels : 2 * channels;
      const random = seededRandom(gateChannels);
      const y = offsetArray(batch * positions * channels, random, 1);
      const gate = randomArray(batch * positions * gateChannels, random, 4);
      const weight = randomArray(channels, random, 2);
      const bias = randomArray(channels, random);
      const out = gatedLayerNorm(
        runtime,
        runtime.upload([batch, positions, channels], y),
        runtime.upload([batch, positions, gateChannels], gate),
        runtime.upload([channels], weight),
        runtime.upload([channels], bias),
        {
          eps: 1e-5,
          ...(gateOffset === undefined ? {} : { gateChannelOffset: gateOffset }),
          ...(threadsPerRow === undefined ? {} : { threadsPerRow }),
        },
      );
      const expected = layerNormReference(y, channels, weight, bias, 1e-5).map((v, i) => {
        const row = Math.floor(i / channels);
        return v * silu(gate[row * gateChannels + (gateOffset ?? 0) + (i % channels)]!);
      });
      expect(maxRelativeError(await runtime.read(out), expected)).toBeLessThan(1e-5);
    });
  }

  it('layer norms name mismatched parameters and gates', () => {
    const x = runtime.upload([2, 6], new Float32Array(12));
    const p6 = runtime.upload([6], new Float32Array(6));
    expect(() => layerNorm(runtime, x, runtime.upload([5], new Float32Array(5)), p6, { eps: 1e-5 })).toThrow(/weight/);
    expect(() => layerNorm(runtime, x, p6, p6, { eps: 0 })).toThrow(/eps must be positive/);
    expect(() => layerNorm(runtime, x, p6, p6, { eps: 1e-5, threadsPerRow: 3 })).toThrow(/power of two/);
    const gate = runtime.upload([2, 12], new Float32Array(24));
    expect(() => gatedLayerNorm(runtime, x, gate, p6, p6, { eps: 1e-5 })).toThrow(/no 6-channel window at offset 0/);
    expect(() => gatedLayerNorm(runtime, x, gate, p6, p6, { eps: 1e-5, gateChannelOffset: 7 })).toThrow(/offset 7/);
  });

  // 21 channels: two channel blocks, the second partly empty. 64x64 is MambaAD's largest InstanceNorm (stage 3).
  for (const [batch, h, w, channels, siluOn] of [
    [2, 7, 9, 21, true],
    [1, 64, 64, 19, false],
  ] as const) {
    it(`instanceNorm on [${batch}, ${h}, ${w}, ${channels}]${siluOn ? ' + SiLU' : ''}`, async () => {
      const random = seededRandom(h * w);
      const x = offsetArray(batch * h * w * channels, random, 3);
      const out = instanceNorm(runtime, runtime.upload([batch, h, w, channels], x), { silu: siluOn });
      const expected = instanceNormReference(x, [batch, h, w, channels], siluOn);
      expect(maxRelativeError(await runtime.read(out), expected)).toBeLessThan(1e-5);
    });
  }

  for (const relu of [false, true]) {
    it(`BatchNorm inference as a channel affine${relu ? ' + ReLU' : ''}`, async () => {
      const [batch, h, w, channels] = [2, 5, 3, 37];
      const random = seededRandom(relu ? 1 : 2);
      const x = randomArray(batch * h * w * channels, random, 3);
      const bn = {
        weight: randomArray(channels, random, 2),
        bias: randomArray(channels, random),
        runningMean: randomArray(channels, random),
        runningVar: randomArray(channels, random).map((v) => v + 1.2),
        eps: 1e-5,
      };
      const out = channelAffine(runtime, runtime.upload([batch, h, w, channels], x), batchNormAffine(runtime, bn), {
        relu,
      });
      const expected = Array.from(x, (v, i) => {
        const c = i % channels;
        const y = ((v - bn.runningMean[c]!) / Math.sqrt(bn.runningVar[c]! + bn.eps)) * bn.weight[c]! + bn.bias[c]!;
        return relu ? Math.max(y, 0) : y;
      });
      expect(maxRelativeError(await runtime.read(out), expected)).toBeLessThan(1e-6);
    });
  }

  it('batchNormAffine names inconsistent statistics', () => {
    const ones = new Float32Array([1, 1]);
    const bn = { weight: ones, bias: ones, runningMean: ones, runningVar: ones, eps: 1e-5 };
    expect(() => batchNormAffine(runtime, { ...bn, runningMean: new Float32Array(3) })).toThrow(/runningMean has 3/);
    expect(() => batchNormAffine(runtime, { ...bn, runningVar: new Float32Array([1, -1]) })).toThrow(/channel 1/);
  });

  // A thread per row and segments of 16 / 128 threads; 1100 rows make two chunks for the parameter gradients.
  for (const [rows, channels, center, threadsPerRow] of [
    [7, 5, 0, 1],
    [37, 37, 10, 16],
    [3, 300, -4, 128],
    [1100, 6, 1, 1],
  ] as const) {
    it(`layerNormBackward on ${rows} rows of ${channels} channels around ${center}, ${threadsPerRow} threads per row`, async () => {
      const random = seededRandom(rows * channels);
      const x = offsetArray(rows * channels, random, center);
      const weight = randomArray(channels, random, 2);
      const dy = randomArray(rows * channels, random);
      const grads = layerNormBackward(
        runtime,
        runtime.upload([rows, channels], x),
        runtime.upload([channels], weight),
        runtime.upload([rows, channels], dy),
        { eps: 1e-5, threadsPerRow },
      );
      const expected = layerNormBackwardReference(x, channels, weight, dy, 1e-5);
      expect(maxRelativeError(await runtime.read(grads.dx), expected.dx), 'dx').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dWeight), expected.dWeight), 'dweight').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dBias), expected.dBias), 'dbias').toBeLessThan(1e-5);
    });
  }

  for (const [gateOffset, threadsPerRow] of [
    [undefined, undefined],
    [70, 32],
  ] as const) {
    it(`gatedLayerNormBackward with the gate ${gateOffset === undefined ? 'as its own tensor' : 'and dz in the second half of [.., 2D]'}`, async () => {
      const [rows, channels] = [18, 70];
      const gateChannels = gateOffset === undefined ? channels : 2 * channels;
      const random = seededRandom(gateChannels + 1);
      const y = offsetArray(rows * channels, random, 1);
      const gate = randomArray(rows * gateChannels, random, 4);
      const weight = randomArray(channels, random, 2);
      const bias = randomArray(channels, random);
      const dy = randomArray(rows * channels, random);
      const wide = randomArray(rows * gateChannels, random);
      const into = gateOffset === undefined ? undefined : runtime.upload([rows, gateChannels], wide);
      const grads = gatedLayerNormBackward(
        runtime,
        runtime.upload([rows, channels], y),
        runtime.upload([rows, gateChannels], gate),
        runtime.upload([channels], weight),
        runtime.upload([channels], bias),
        runtime.upload([rows, channels], dy),
        {
          eps: 1e-5,
          ...(gateOffset === undefined ? {} : { gateChannelOffset: gateOffset }),
          ...(threadsPerRow === undefined ? {} : { threadsPerRow }),
          ...(into ? { gateGradientInto: into } : {}),
        },
      );
      const offset = gateOffset ?? 0;
      const z = Float32Array.from({ length: rows * channels }, (_, i) => {
        return gate[Math.floor(i / channels) * gateChannels + offset + (i % channels)]!;
      });
      const expected = gatedBackwardReference(y, z, channels, weight, bias, dy);
      expect(maxRelativeError(await runtime.read(grads.dx), expected.dx), 'dy').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dWeight), expected.dWeight), 'dweight').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dBias), expected.dBias), 'dbias').toBeLessThan(1e-5);
      const dGate = await runtime.read(grads.dGate);
      if (into) {
        expect(grads.dGate).toBe(into);
        // dz lands in the gate's window; the first half keeps what it held.
        const expectedWide = Float64Array.from(wide, (v, i) => {
          const [row, c] = [Math.floor(i / gateChannels), i % gateChannels];
          return c < offset ? v : expected.dGate[row * channels + c - offset]!;
        });
        expect(maxRelativeError(dGate, expectedWide), 'dz').toBeLessThan(1e-5);
      } else {
        expect(maxRelativeError(dGate, expected.dGate), 'dz').toBeLessThan(1e-5);
      }
    });
  }

  it('layer norm backwards name a mismatched dy or gradient target', () => {
    const x = runtime.upload([2, 6], new Float32Array(12));
    const p6 = runtime.upload([6], new Float32Array(6));
    expect(() => layerNormBackward(runtime, x, p6, runtime.zeros([2, 5]), { eps: 1e-5 })).toThrow(/dy/);
    const gate = runtime.upload([2, 12], new Float32Array(24));
    const options = { eps: 1e-5, gateChannelOffset: 6, gateGradientInto: x };
    expect(() => gatedLayerNormBackward(runtime, x, gate, p6, p6, x, options)).toThrow(/gateGradientInto/);
  });

  for (const [batch, h, w, channels, siluOn] of [
    [2, 7, 9, 21, true],
    [1, 16, 16, 19, false],
  ] as const) {
    it(`instanceNormBackward on [${batch}, ${h}, ${w}, ${channels}]${siluOn ? ' through SiLU' : ''}`, async () => {
      const shape = [batch, h, w, channels];
      const random = seededRandom(h * w + 1);
      const x = offsetArray(batch * h * w * channels, random, 3);
      const dy = randomArray(x.length, random);
      const dx = instanceNormBackward(runtime, runtime.upload(shape, x), runtime.upload(shape, dy), { silu: siluOn });
      const expected = instanceNormBackwardReference(x, dy, shape, siluOn);
      expect(maxRelativeError(await runtime.read(dx), expected)).toBeLessThan(1e-5);
    });
  }

  // 30 rows of 37 channels (three channel blocks); 1250 rows (two chunks merged by the finalize pass).
  for (const [batch, h, w, channels, relu] of [
    [2, 5, 3, 37, true],
    [2, 25, 25, 5, false],
  ] as const) {
    it(`BatchNorm training on [${batch}, ${h}, ${w}, ${channels}]${relu ? ' + ReLU' : ''}: output, running statistics, backward`, async () => {
      const rows = batch * h * w;
      const random = seededRandom(rows + channels);
      const x = offsetArray(rows * channels, random, 2);
      const gamma = randomArray(channels, random, 2);
      const beta = randomArray(channels, random);
      const runningMean = randomArray(channels, random);
      const runningVar = randomArray(channels, random).map((v) => v + 1.5);
      const dy = randomArray(rows * channels, random);
      const state: BatchNormTrainState = {
        weight: runtime.upload([channels], gamma),
        bias: runtime.upload([channels], beta),
        runningMean: runtime.upload([channels], runningMean),
        runningVar: runtime.upload([channels], runningVar),
        numBatchesTracked: 3,
        eps: 1e-5,
        momentum: 0.1,
      };
      const xs = runtime.upload([batch, h, w, channels], x);
      const { out, statistics: stats } = batchNormTrain(runtime, xs, state, { relu });
      const grads = batchNormTrainBackward(runtime, xs, stats, state, runtime.upload(xs.shape, dy), { relu });
      const expected = batchNormTrainReference(x, channels, gamma, beta, relu);
      expect(state.numBatchesTracked).toBe(4);
      expect(maxRelativeError(await runtime.read(out), expected.out), 'out').toBeLessThan(1e-5);
      const batchStatistics = await runtime.read(stats);
      expect(maxRelativeError(batchStatistics.subarray(0, channels), expected.mean), 'mean').toBeLessThan(1e-5);
      expect(maxRelativeError(batchStatistics.subarray(channels), expected.variance), 'var').toBeLessThan(1e-5);
      const unbiased = rows / (rows - 1);
      const runningMeanAfter = runningMean.map((v, c) => 0.9 * v + 0.1 * expected.mean[c]!);
      const runningVarAfter = runningVar.map((v, c) => 0.9 * v + 0.1 * expected.variance[c]! * unbiased);
      expect(maxRelativeError(await runtime.read(state.runningMean), runningMeanAfter)).toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(state.runningVar), runningVarAfter)).toBeLessThan(1e-5);
      const expectedGrads = batchNormBackwardReference(x, channels, gamma, beta, dy, relu);
      expect(maxRelativeError(await runtime.read(grads.dx), expectedGrads.dx), 'dx').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dWeight), expectedGrads.dWeight), 'dgamma').toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(grads.dBias), expectedGrads.dBias), 'dbeta').toBeLessThan(1e-5);
    });
  }

  it('batchNormTrain refuses one value per channel and a bad momentum', () => {
    const p3 = runtime.upload([3], new Float32Array(3));
    const state = { weight: p3, bias: p3, runningMean: p3, runningVar: p3, numBatchesTracked: 0, eps: 1e-5 };
    const one = runtime.upload([1, 1, 1, 3], new Float32Array(3));
    expect(() => batchNormTrain(runtime, one, { ...state, momentum: 0.1 })).toThrow(/more than 1 value per channel/);
    const two = runtime.upload([2, 3], new Float32Array(6));
    expect(() => batchNormTrain(runtime, two, { ...state, momentum: 2 })).toThrow(/momentum/);
  });
});
