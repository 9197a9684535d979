import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, type Tensor } from '../../gpu/tensor.ts';

/** kernels/matmul.wgsl computes 64x64 output tiles. */
const TILE = 64;

/**
 * One batched GEMM over sub-matrices addressed in place: for each batch index i,
 * C_i[m, n] (+)= A_i[m, k] · B_i (+ bias), where X_i starts at element i·batchStrideX of its buffer and rows are
 * ldX elements apart. B_i is [k, n] with row stride ldb, or [n, k] when transposeB.
 */
export interface StridedMatmul {
  a: Tensor;
  b: Tensor;
  c: Tensor;
  bias?: Tensor;
  m: number;
  n: number;
  k: number;
  lda: number;
  ldb: number;
  ldc: number;
  batch?: number;
  batchStrideA?: number;
  batchStrideB?: number;
  batchStrideC?: number;
  transposeB?: boolean;
  /** Add the product to what c holds instead of overwriting it. */
  accumulate?: boolean;
}

function lastElement(rows: number, cols: number, ld: number, batch: number, batchStride: number): number {
  return rows === 0 || cols === 0 ? 0 : (batch - 1) * batchStride + (rows - 1) * ld + cols;
}

export function matmulStrided(runtime: GpuRuntime, g: StridedMatmul): void {
  const batch = g.batch ?? 1;
  const transposeB = g.transposeB ?? false;
  const [strideA, strideB, strideC] = [g.batchStrideA ?? 0, g.batchStrideB ?? 0, g.batchStrideC ?? 0];
  // Out-of-range reads are silently clamped by WebGPU, so check the extents here instead.
  const extents: [string, Tensor, number][] = [
    ['a', g.a, lastElement(g.m, g.k, g.lda, batch, strideA)],
    [
      'b',
      g.b,
      transposeB ? lastElement(g.n, g.k, g.ldb, batch, strideB) : lastElement(g.k, g.n, g.ldb, batch, strideB),
    ],
    ['c', g.c, lastElement(g.m, g.n, g.ldc, batch, strideC)],
  ];
  for (const [name, tensor, needed] of extents) {
    if (needed > tensor.size) {
      throw new Error(`matmul: operand ${name} [${tensor.shape.join(', ')}] is too small for the strides given`);
    }
  }
  if (g.bias && g.bias.size < g.n) throw new Error(`matmul: bias has ${g.bias.size} values for ${g.n} columns`);
  if (batch > runtime.maxWorkgroupsPerDimension) throw new Error(`matmul: batch ${batch} is too large`);
  runtime.dispatch({
    kernel: {
      family: 'matmul',
      entryPoint: 'matmul',
      constants: { TRANSPOSE_B: transposeB, HAS_BIAS: g.bias !== undefined, ACCUMULATE: g.accumulate ?? false },
    },
    params: Uint32Array.of(g.m, g.n, g.k, g.lda, g.ldb, g.ldc, strideA, strideB, strideC),
    buffers: [g.a, g.b, g.c, g.bias ?? runtime.placeholder],
    workgroups: [Math.ceil(g.n / TILE), Math.ceil(g.m / TILE), batch],
  });
}

export interface MatmulOptions {
  /** Multiply by the transpose of b: b is [batch?, n, k] (a Linear layer's weight layout) instead of [batch?, k, n]. */
  transposeB?: boolean;
}

function matrixDims(what: string, t: Tensor): { batch: number; rows: number; cols: number } {
  if (t.shape.length !== 2 && t.shape.length !== 3) {
    throw new Error(`matmul: ${what} must be 2-D or 3-D (batched), got shape [${t.shape.join(', ')}]`);
  }
  const [rows, cols] = t.shape.slice(-2) as [number, number];
  return { batch: t.shape.length === 3 ? t.shape[0]! : 1, rows, cols };
}

/**
 * c = a · b (or a · bᵀ). a is [m, k] or [batch, m, k]; b is [k, n] / [n, k] or batched. A 2-D operand next to a
 * batched one is broadcast over the batch.
 */
export function matmul(runtime: GpuRuntime, a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transposeB = options.transposeB ?? false;
  const da = matrixDims('a', a);
  const db = matrixDims('b', b);
  const [m, k] = [da.rows, da.cols];
  const [kb, n] = transposeB ? [db.cols, db.rows] : [db.rows, db.cols];
  if (k !== kb) {
    throw new Error(
      `matmul: inner dimensions differ: a [${a.shape.join(', ')}] and b${transposeB ? 'ᵀ' : ''} [${b.shape.join(', ')}]`,
    );
  }
  const batch = Math.max(da.batch, db.batch);
  if ((da.batch !== 1 && da.batch !== batch) || (db.batch !== 1 && db.batch !== batch)) {
    throw new Error(`matmul: batch sizes ${da.batch} and ${db.batch} cannot broadcast`);
  }
  const batched = a.shape.length === 3 || b.shape.length === 3;
  const c = runtime.empty(batched ? [batch, m, n] : [m, n], 'matmul');
  matmulStrided(runtime, {
    a,
    b,
    c,
    m,
    n,
    k,
    lda: k,
    ldb: transposeB ? k : n,
    ldc: n,
    batch,
    batchStrideA: a.shape.length === 3 ? m * k : 0,
    batchStrideB: b.shape.length === 3 ? k * n : 0,
    batchStrideC: m * n,
    transposeB,
  });
  return c;
}

export interface LinearOptions {
  /** Add the result into this tensor (a fused residual add) instead of returning a new one. */
  accumulateInto?: Tensor;
}

/**
 * PyTorch's Linear on the last axis: x [..., in] · weightᵀ (weight [out, in]) + bias. Channels-last activations make
 * every 1x1 convolution a linear too.
 */
export function linear(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  bias?: Tensor,
  options: LinearOptions = {},
): Tensor {
  const [outFeatures, inFeatures] = weight.shape as [number, number];
  if (weight.shape.length !== 2 || x.shape.at(-1) !== inFeatures) {
    throw new Error(`linear: input [${x.shape.join(', ')}] does not match weight [${weight.shape.join(', ')}]`);
  }
  if (bias) assertShape('linear bias', bias.shape, [outFeatures]);
  const rows = x.size / inFeatures;
  const outShape = [...x.shape.slice(0, -1), outFeatures];
  const out = options.accumulateInto ?? runtime.empty(outShape, 'linear');
  assertShape('linear accumulation target', out.shape, outShape);
  matmulStrided(runtime, {
    a: x,
    b: weight,
    c: out,
    ...(bias ? { bias } : {}),
    m: rows,
    n: outFeatures,
    k: inFeatures,
    lda: inFeatures,
    ldb: inFeatures,
    ldc: outFeatures,
    transposeB: true,
    accumulate: options.accumulateInto !== undefined,
  });
  return out;
}
