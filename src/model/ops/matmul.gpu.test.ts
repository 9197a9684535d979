import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { matmulReference, maxRelativeError, randomArray, randomInt, seededRandom } from '../../testing/reference.ts';
import { linear, linearBackward, matmul, matmulStrided } from './matmul.ts';

/** xᵀ of a row-major [rows, cols] matrix. */
function transposed(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

/** float64 gradients of y = x·Wᵀ + b for the upstream gradient dy: dx = dy·W, dW = dyᵀ·x, db = Σ_rows dy. */
function linearBackwardReference(x: Float32Array, w: Float32Array, dy: Float32Array, rows: number, inF: number) {
  const outF = w.length / inF;
  const dBias = new Float64Array(outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) dBias[o]! += dy[r * outF + o]!;
  return {
    dx: matmulReference(dy, w, rows, inF, outF),
    dWeight: matmulReference(transposed(dy, rows, outF), transposed(x, rows, inF), outF, inF, rows, true),
    dBias,
  };
}

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

  it('transposed a (stored [k, m]), batched', async () => {
    const random = seededRandom(5);
    const [batch, m, n, k] = [2, 70, 33, 150];
    const aT = randomArray(batch * k * m, random);
    const b = randomArray(batch * k * n, random);
    const c = await runtime.read(
      matmul(runtime, runtime.upload([batch, k, m], aT), runtime.upload([batch, k, n], b), { transposeA: true }),
    );
    for (let i = 0; i < batch; i++) {
      const a = transposed(aT.subarray(i * k * m, (i + 1) * k * m), k, m);
      const expected = matmulReference(a, b.subarray(i * k * n, (i + 1) * k * n), m, n, k);
      expect(maxRelativeError(c.subarray(i * m * n, (i + 1) * m * n), expected), `batch ${i}`).toBeLessThan(1e-5);
    }
  });

  it('linearBackward: dx (accumulated into a residual gradient), dW, dBias', async () => {
    const random = seededRandom(19);
    const [batch, positions, inF, outF] = [2, 35, 37, 70];
    const rows = batch * positions;
    const x = randomArray(rows * inF, random);
    const w = randomArray(outF * inF, random);
    const dy = randomArray(rows * outF, random);
    const residualGradient = randomArray(rows * inF, random);
    const target = runtime.upload([batch, positions, inF], residualGradient);
    const grads = linearBackward(
      runtime,
      runtime.upload([batch, positions, inF], x),
      runtime.upload([outF, inF], w),
      runtime.upload([batch, positions, outF], dy),
      { hasBias: true, accumulateInputGradientInto: target },
    );
    const expected = linearBackwardReference(x, w, dy, rows, inF);
    expect(grads.dx).toBe(target);
    expect(grads.dWeight.shape).toEqual([outF, inF]);
    expect(grads.dBias?.shape).toEqual([outF]);
    const dx = expected.dx.map((v, i) => v + residualGradient[i]!);
    expect(maxRelativeError(await runtime.read(target), dx)).toBeLessThan(1e-5);
    expect(maxRelativeError(await runtime.read(grads.dWeight), expected.dWeight)).toBeLessThan(1e-5);
    expect(maxRelativeError(await runtime.read(grads.dBias!), expected.dBias)).toBeLessThan(1e-5);
  });

  it('linearBackward over 2100 rows splits dW over k and sums the parts; no dx when asked', async () => {
    const random = seededRandom(23);
    const [rows, inF, outF] = [2100, 3, 5];
    const x = randomArray(rows * inF, random);
    const w = randomArray(outF * inF, random);
    const dy = randomArray(rows * outF, random);
    const grads = linearBackward(
      runtime,
      runtime.upload([rows, inF], x),
      runtime.upload([outF, inF], w),
      runtime.upload([rows, outF], dy),
      { hasBias: true, inputGradient: false },
    );
    expect(grads.dx).toBeUndefined();
    const expected = linearBackwardReference(x, w, dy, rows, inF);
    expect(maxRelativeError(await runtime.read(grads.dWeight), expected.dWeight)).toBeLessThan(1e-5);
    expect(maxRelativeError(await runtime.read(grads.dBias!), expected.dBias)).toBeLessThan(1e-5);
  });

  it('linearBackward names a dy that does not match', () => {
    const x = runtime.upload([4, 3], new Float32Array(12));
    const w = runtime.upload([2, 3], new Float32Array(6));
    expect(() => linearBackward(runtime, x, w, runtime.upload([4, 3], new Float32Array(12)))).toThrow(/dy/);
    expect(() => linearBackward(runtime, runtime.upload([4, 5], new Float32Array(20)), w, x)).toThrow(
      /input \[4, 5\] does not match weight \[2, 3\]/,
    );
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

  it('strided column blocks per batch (one direction of a wider projection), with bias', async () => {
    const random = seededRandom(13);
    // A: [rows, K blocks of width w]; batch i multiplies block i by its own weight [n, r] (transposed), as SS2D's
    // dt projection does for each direction's first r columns.
    const [rows, blocks, width, r, n] = [70, 3, 9, 5, 19];
    const a = randomArray(rows * blocks * width, random);
    const w = randomArray(blocks * n * r, random);
    const bias = randomArray(n, random);
    const c = runtime.empty([blocks, rows, n]);
    matmulStrided(runtime, {
      a: runtime.upload([rows, blocks * width], a),
      b: runtime.upload([blocks, n, r], w),
      c,
      bias: runtime.upload([n], bias),
      m: rows,
      n,
      k: r,
      lda: blocks * width,
      ldb: r,
      ldc: n,
      batch: blocks,
      batchStrideA: width,
      batchStrideB: n * r,
      batchStrideC: rows * n,
      transposeB: true,
    });
    const out = await runtime.read(c);
    for (let blk = 0; blk < blocks; blk++) {
      const block = new Float32Array(rows * r);
      for (let i = 0; i < rows; i++)
        for (let p = 0; p < r; p++) block[i * r + p] = a[i * blocks * width + blk * width + p]!;
      const expected = matmulReference(block, w.subarray(blk * n * r, (blk + 1) * n * r), rows, n, r, true);
      for (let i = 0; i < expected.length; i++) expected[i]! += bias[i % n]!;
      expect(
        maxRelativeError(out.subarray(blk * rows * n, (blk + 1) * rows * n), expected),
        `block ${blk}`,
      ).toBeLessThan(1e-5);
    }
  });

  it('linear accumulates into a residual', async () => {
    const random = seededRandom(17);
    const [rows, inF, outF] = [33, 21, 14];
    const x = randomArray(rows * inF, random);
    const w = randomArray(outF * inF, random);
    const residual = randomArray(rows * outF, random);
    const target = runtime.upload([rows, outF], residual);
    linear(runtime, runtime.upload([rows, inF], x), runtime.upload([outF, inF], w), undefined, {
      accumulateInto: target,
    });
    const expected = matmulReference(x, w, rows, outF, inF, true).map((v, i) => v + residual[i]!);
    expect(maxRelativeError(await runtime.read(target), expected)).toBeLessThan(1e-5);
  });

  it('refuses strides that reach past a buffer', () => {
    const t = runtime.upload([4, 4], new Float32Array(16));
    expect(() => matmulStrided(runtime, { a: t, b: t, c: t, m: 4, n: 4, k: 4, lda: 5, ldb: 4, ldc: 4 })).toThrow(
      /operand a .* too small/,
    );
  });

  it('names mismatched inner dimensions', () => {
    const a = runtime.upload([2, 3], new Float32Array(6));
    const b = runtime.upload([4, 2], new Float32Array(8));
    expect(() => matmul(runtime, a, b)).toThrow(/inner dimensions differ/);
  });
});
