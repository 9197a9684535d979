import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, shapeToString, type Tensor } from '../../gpu/tensor.ts';
import { chunkPartials, columnSum, splitPositions, sumChunks } from './reduce.ts';

/** kernels/matmul.wgsl computes 64x64 output tiles and walks k in slices of 16. */
const TILE = 64;
const TILE_K = 16;

/**
 * One batched GEMM over sub-matrices addressed in place: for each batch index i,
 * C_i[m, n] (+)= op(A_i) · op(B_i) (+ bias), where X_i starts at element i·batchStrideX of its buffer and rows are
 * ldX elements apart. A_i is [m, k] with row stride lda, or [k, m] when transposeA; B_i is [k, n] with row stride ldb,
 * or [n, k] when transposeB.
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
  transposeA?: boolean;
  transposeB?: boolean;
  /** Add the product to what c holds instead of overwriting it. */
  accumulate?: boolean;
}

/** k cut into `splits` ranges of kSplit; range s writes its partial product s·strideC after the product's place. */
interface SplitK {
  splits: number;
  kSplit: number;
  strideC: number;
}

function lastElement(rows: number, cols: number, ld: number, batch: number, batchStride: number): number {
  return rows === 0 || cols === 0 ? 0 : (batch - 1) * batchStride + (rows - 1) * ld + cols;
}

function dispatchMatmul(runtime: GpuRuntime, g: StridedMatmul, split: SplitK): void {
  const batch = g.batch ?? 1;
  const transposeA = g.transposeA ?? false;
  const transposeB = g.transposeB ?? false;
  const [strideA, strideB, strideC] = [g.batchStrideA ?? 0, g.batchStrideB ?? 0, g.batchStrideC ?? 0];
  // Out-of-range reads are silently clamped by WebGPU, so check the extents here instead.
  const extents: [string, Tensor, number][] = [
    [
      'a',
      g.a,
      transposeA ? lastElement(g.k, g.m, g.lda, batch, strideA) : lastElement(g.m, g.k, g.lda, batch, strideA),
    ],
    [
      'b',
      g.b,
      transposeB ? lastElement(g.n, g.k, g.ldb, batch, strideB) : lastElement(g.k, g.n, g.ldb, batch, strideB),
    ],
    ['c', g.c, lastElement(g.m, g.n, g.ldc, batch, strideC) + (split.splits - 1) * split.strideC],
  ];
  for (const [name, tensor, needed] of extents) {
    if (needed > tensor.size) {
      throw new Error(`matmul: operand ${name} [${tensor.shape.join(', ')}] is too small for the strides given`);
    }
  }
  if (g.bias && g.bias.size < g.n) throw new Error(`matmul: bias has ${g.bias.size} values for ${g.n} columns`);
  if (batch * split.splits > runtime.maxWorkgroupsPerDimension) throw new Error(`matmul: batch ${batch} is too large`);
  runtime.dispatch({
    kernel: {
      family: 'matmul',
      entryPoint: 'matmul',
      constants: {
        TRANSPOSE_A: transposeA,
        TRANSPOSE_B: transposeB,
        HAS_BIAS: g.bias !== undefined,
        ACCUMULATE: g.accumulate ?? false,
      },
    },
    params: Uint32Array.of(
      g.m,
      g.n,
      g.k,
      g.lda,
      g.ldb,
      g.ldc,
      strideA,
      strideB,
      strideC,
      split.splits,
      split.kSplit,
      split.strideC,
    ),
    buffers: [g.a, g.b, g.c, g.bias ?? runtime.placeholder],
    workgroups: [Math.ceil(g.n / TILE), Math.ceil(g.m / TILE), batch * split.splits],
  });
}

export function matmulStrided(runtime: GpuRuntime, g: StridedMatmul): void {
  dispatchMatmul(runtime, g, { splits: 1, kSplit: g.k, strideC: 0 });
}

export interface MatmulOptions {
  /** Multiply the transpose of a: a is [batch?, k, m] instead of [batch?, m, k]. */
  transposeA?: boolean;
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
 * c = op(a) · op(b), op the transpose where asked. a is [m, k] / [k, m] or batched [batch, ., .]; b is [k, n] / [n, k]
 * or batched. A 2-D operand next to a batched one is broadcast over the batch.
 */
export function matmul(runtime: GpuRuntime, a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transposeA = options.transposeA ?? false;
  const transposeB = options.transposeB ?? false;
  const da = matrixDims('a', a);
  const db = matrixDims('b', b);
  const [m, k] = transposeA ? [da.cols, da.rows] : [da.rows, da.cols];
  const [kb, n] = transposeB ? [db.cols, db.rows] : [db.rows, db.cols];
  if (k !== kb) {
    throw new Error(
      `matmul: inner dimensions differ: a${transposeA ? 'ᵀ' : ''} [${a.shape.join(', ')}] and b${transposeB ? 'ᵀ' : ''} [${b.shape.join(', ')}]`,
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
    lda: transposeA ? m : k,
    ldb: transposeB ? k : n,
    ldc: n,
    batch,
    batchStrideA: a.shape.length === 3 ? m * k : 0,
    batchStrideB: b.shape.length === 3 ? k * n : 0,
    batchStrideC: m * n,
    transposeA,
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

/** dW = dyᵀ · x for dy [rows, outF] and x [rows, inF], split over the rows when that fills the GPU better. */
function weightGradient(runtime: GpuRuntime, dy: Tensor, x: Tensor, rows: number, outF: number, inF: number): Tensor {
  const tiles = Math.ceil(outF / TILE) * Math.ceil(inF / TILE);
  const { splits, perSplit: kSplit } = splitPositions(rows, tiles, outF * inF, TILE_K);
  const partials = chunkPartials(runtime, splits, [outF, inF], 'linear dWeight');
  const product = { a: dy, b: x, c: partials, m: outF, n: inF, k: rows, lda: outF, ldb: inF, ldc: inF };
  dispatchMatmul(runtime, { ...product, transposeA: true }, { splits, kSplit, strideC: outF * inF });
  return sumChunks(runtime, partials, splits, [outF, inF]);
}

export interface LinearBackwardOptions {
  /** The layer has a bias: return its gradient, the column sums of dy. */
  hasBias?: boolean;
  /** false when x needs no gradient (a frozen encoder's feature): dx is skipped. Default true. */
  inputGradient?: boolean;
  /** Add dx into this tensor (x's shape) instead of returning a new one: the gradient of a residual's input. */
  accumulateInputGradientInto?: Tensor;
}

export interface LinearGradients {
  /** [..., in], like x; absent with inputGradient: false. */
  dx?: Tensor;
  /** [out, in], like the weight. */
  dWeight: Tensor;
  /** [out]; present with hasBias. */
  dBias?: Tensor;
}

/**
 * The backward of linear(x, weight, bias) for the upstream gradient dy [..., out]: dx = dy · W, dW = dyᵀ · x (one
 * dispatch: dy is read transposed in place, plus a column sum when the rows are split), dBias = Σ_rows dy.
 */
export function linearBackward(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  options: LinearBackwardOptions = {},
): LinearGradients {
  const [outFeatures, inFeatures] = weight.shape as [number, number];
  if (weight.shape.length !== 2 || x.shape.at(-1) !== inFeatures) {
    throw new Error(
      `linearBackward: input ${shapeToString(x.shape)} does not match weight ${shapeToString(weight.shape)}`,
    );
  }
  const outShape = [...x.shape.slice(0, -1), outFeatures];
  assertShape('linearBackward dy', dy.shape, outShape);
  const rows = x.size / inFeatures;
  if (rows === 0) throw new Error(`linearBackward: input ${shapeToString(x.shape)} has no rows`);
  const gradients: LinearGradients = { dWeight: weightGradient(runtime, dy, x, rows, outFeatures, inFeatures) };
  if (options.hasBias) gradients.dBias = columnSum(runtime, dy, outFeatures);
  if (options.inputGradient ?? true) {
    const target = options.accumulateInputGradientInto;
    if (target) assertShape('linearBackward accumulation target', target.shape, x.shape);
    const dx = target ?? runtime.empty(x.shape, 'linear dx');
    matmulStrided(runtime, {
      a: dy,
      b: weight,
      c: dx,
      m: rows,
      n: inFeatures,
      k: outFeatures,
      lda: outFeatures,
      ldb: inFeatures,
      ldc: inFeatures,
      accumulate: target !== undefined,
    });
    gradients.dx = dx;
  }
  return gradients;
}
