import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import { batchNormAffine, channelAffine, gatedLayerNorm, instanceNorm, layerNorm } from './norm.ts';

const silu = (v: number) => v / (1 + Math.exp(-v));

/** float64 (mean, 1/sqrt(biased var + eps)) of `count` values at start, start + step, ... */
function statistics(x: Float32Array, start: number, count: number, step: number, eps: number): [number, number] {
  let sum = 0;
  for (let i = 0; i < count; i++) sum += x[start + i * step]!;
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < count; i++) squares += (x[start + i * step]! - mean) ** 2;
  return [mean, 1 / Math.sqrt(squares / count + eps)];
}

function layerNormReference(x: Float32Array, channels: number, weight: Float32Array, bias: Float32Array, eps: number) {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / channels; r++) {
    const [mean, invStd] = statistics(x, r * channels, channels, 1, eps);
    for (let c = 0; c < channels; c++) {
      out[r * channels + c] = (x[r * channels + c]! - mean) * invStd * weight[c]! + bias[c]!;
    }
  }
  return out;
}

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
      const expected = new Float64Array(x.length);
      for (let b = 0; b < batch; b++) {
        for (let c = 0; c < channels; c++) {
          const start = b * h * w * channels + c;
          const [mean, invStd] = statistics(x, start, h * w, channels, 1e-5);
          for (let p = 0; p < h * w; p++) {
            const v = (x[start + p * channels]! - mean) * invStd;
            expected[start + p * channels] = siluOn ? silu(v) : v;
          }
        }
      }
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
});
