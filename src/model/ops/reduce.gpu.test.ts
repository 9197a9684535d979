import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import { columnSum, REDUCTION_CHUNK_ROWS } from './reduce.ts';

function columnSumReference(x: Float32Array, columns: number): Float64Array {
  const out = new Float64Array(columns);
  for (let i = 0; i < x.length; i++) out[i % columns]! += x[i]!;
  return out;
}

describe('column sums against float64', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  // 37 columns: three 16-column workgroups, the last partly empty. 5000 rows: five chunks, summed by a second pass.
  for (const [rows, columns] of [
    [70, 37],
    [5000, 3],
    [REDUCTION_CHUNK_ROWS, 17],
  ] as const) {
    it(`${rows} rows x ${columns} columns`, async () => {
      const x = randomArray(rows * columns, seededRandom(rows + columns), 2).map((v) => v + 1);
      const out = columnSum(runtime, runtime.upload([rows, columns], x), columns);
      expect(out.shape).toEqual([columns]);
      expect(maxRelativeError(await runtime.read(out), columnSumReference(x, columns))).toBeLessThan(1e-6);
    });
  }

  it('takes the result shape it is given and names bad ones', async () => {
    const x = randomArray(4 * 6, seededRandom(1));
    const out = columnSum(runtime, runtime.upload([2, 2, 6], x), 6, [2, 3]);
    expect(out.shape).toEqual([2, 3]);
    expect(maxRelativeError(await runtime.read(out), columnSumReference(x, 6))).toBeLessThan(1e-6);
    const t = runtime.upload([5], new Float32Array(5));
    expect(() => columnSum(runtime, t, 2)).toThrow(/not a matrix of 2 columns/);
    expect(() => columnSum(runtime, t, 5, [2, 2])).toThrow(/do not fill shape \[2, 2\]/);
  });
});
