import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { matmulReference, maxRelativeError, randomArray, randomInt, seededRandom } from '../../testing/reference.ts';
import { matmul } from './matmul.ts';

describe('tiled matmul against float64', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  it('random shapes that are not multiples of the 64x64 tile or the 16-wide K slice', async () => {
    const random = seededRandom(7);
    for (let trial = 0; trial < 8; trial++) {
      const [m, n, k] = [randomInt(random, 1, 150), randomInt(random, 1, 150), randomInt(random, 1, 150)];
      const transposeB = trial % 2 === 1;
      const a = randomArray(m * k, random);
      const b = randomArray(k * n, random);
      const c = await runtime.read(
        matmul(runtime, runtime.upload([m, k], a), runtime.upload(transposeB ? [n, k] : [k, n], b), { transposeB }),
      );
      const expected = matmulReference(a, b, m, n, k, transposeB);
      expect(maxRelativeError(c, expected), `m=${m} n=${n} k=${k} transposeB=${transposeB}`).toBeLessThan(1e-5);
    }
  });

  it('batched, with a broadcast weight', async () => {
    const random = seededRandom(11);
    const [batch, m, n, k] = [3, 67, 33, 45];
    const a = randomArray(batch * m * k, random);
    const w = randomArray(n * k, random);
    const c = await runtime.read(
      matmul(runtime, runtime.upload([batch, m, k], a), runtime.upload([n, k], w), { transposeB: true }),
    );
    for (let i = 0; i < batch; i++) {
      const expected = matmulReference(a.subarray(i * m * k, (i + 1) * m * k), w, m, n, k, true);
      expect(maxRelativeError(c.subarray(i * m * n, (i + 1) * m * n), expected), `batch ${i}`).toBeLessThan(1e-5);
    }
  });

  it('names mismatched inner dimensions', () => {
    const a = runtime.upload([2, 3], new Float32Array(6));
    const b = runtime.upload([4, 2], new Float32Array(8));
    expect(() => matmul(runtime, a, b)).toThrow(/inner dimensions differ/);
  });
});
