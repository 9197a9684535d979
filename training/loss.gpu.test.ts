import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { createTestRuntime } from '../src/testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../src/testing/reference.ts';
import { LOSS_WEIGHT, mseLoss } from './loss.ts';

describe('MSE training loss', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  it('matches float64: 5 · Σ mean((f − d)²) and its gradient, three scales of odd sizes', async () => {
    const random = seededRandom(3);
    const shapes = [
      [2, 9, 9, 7],
      [2, 5, 5, 13],
      [2, 3, 3, 29],
    ];
    const f = shapes.map((s) =>
      randomArray(
        s.reduce((n, d) => n * d, 1),
        random,
      ),
    );
    const d = shapes.map((s) =>
      randomArray(
        s.reduce((n, d) => n * d, 1),
        random,
      ),
    );
    const loss = mseLoss(
      runtime,
      shapes.map((s, i) => runtime.upload(s, f[i]!)),
      shapes.map((s, i) => runtime.upload(s, d[i]!)),
    );
    const terms = await runtime.read(loss.terms);
    for (const [i, fi] of f.entries()) {
      const n = fi.length;
      const expectedTerm = (LOSS_WEIGHT / n) * fi.reduce((sum, x, j) => sum + (d[i]![j]! - x) ** 2, 0);
      expect(Math.abs(terms[i]! - expectedTerm) / expectedTerm, `term ${i}`).toBeLessThan(1e-6);
      const expectedGrad = Array.from(fi, (x, j) => ((2 * LOSS_WEIGHT) / n) * (d[i]![j]! - x));
      expect(maxRelativeError(await runtime.read(loss.grads[i]!), expectedGrad), `grad ${i}`).toBeLessThan(1e-6);
    }
  });

  it('names a shape mismatch', () => {
    const a = runtime.upload([1, 2, 2, 3], new Float32Array(12));
    const b = runtime.upload([1, 2, 2, 4], new Float32Array(16));
    expect(() => mseLoss(runtime, [a], [b])).toThrow(/loss scale 1 decoder output: expected shape/);
  });
});
