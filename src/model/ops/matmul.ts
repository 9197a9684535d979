import type { GpuRuntime } from '../../gpu/runtime.ts';
import type { Tensor } from '../../gpu/tensor.ts';

/** kernels/matmul.wgsl computes 64x64 output tiles. */
const TILE = 64;

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
  runtime.dispatch({
    kernel: { family: 'matmul', entryPoint: 'matmul', constants: { TRANSPOSE_B: transposeB } },
    params: Uint32Array.of(m, n, k, a.shape.length === 3 ? m * k : 0, b.shape.length === 3 ? k * n : 0, m * n),
    buffers: [a, b, c],
    workgroups: [Math.ceil(n / TILE), Math.ceil(m / TILE), batch],
  });
  return c;
}
