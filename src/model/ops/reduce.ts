import type { GpuRuntime } from '../../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../../gpu/tensor.ts';

/** kernels/reduce.wgsl: column sums, and the second stage of every chunked per-channel reduction of the backward. */
const family = 'reduce';
/** column_sum covers this many columns per workgroup. */
const COLUMNS_PER_WORKGROUP = 16;

/**
 * Long per-channel reductions (a bias or norm gradient over B·H·W positions, a depthwise weight gradient) are cut into
 * chunks of this many rows, one workgroup row each, whose partial sums columnSum then adds: enough workgroups to fill
 * a GPU at any batch size, and the same order of additions on every run.
 */
export const REDUCTION_CHUNK_ROWS = 1024;

export function reductionChunks(rows: number): number {
  return Math.max(1, Math.ceil(rows / REDUCTION_CHUNK_ROWS));
}

/**
 * A weight gradient is a GEMM whose reduction runs over every position of the batch while its output (the weight)
 * has few tiles, which would leave most of a GPU idle. It is split over the positions into enough ranges for about
 * SPLIT_TARGET_WORKGROUPS workgroups, each of at least SPLIT_MIN_POSITIONS, with at most SPLIT_MAX_PARTIAL_VALUES
 * partial values in flight; the ranges' partial weights are then added by columnSum.
 */
const SPLIT_TARGET_WORKGROUPS = 128;
const SPLIT_MIN_POSITIONS = 1024;
const SPLIT_MAX_PARTIAL_VALUES = 1 << 22;

/**
 * How to split a reduction over `positions` (> 0) into ranges of `perSplit` positions, a multiple of `granule` (a
 * kernel's slice), for an output of `workgroups` workgroups and `values` values.
 */
export function splitPositions(
  positions: number,
  workgroups: number,
  values: number,
  granule: number,
): { splits: number; perSplit: number } {
  const wanted = Math.min(
    Math.ceil(SPLIT_TARGET_WORKGROUPS / workgroups),
    Math.floor(positions / SPLIT_MIN_POSITIONS),
    Math.floor(SPLIT_MAX_PARTIAL_VALUES / values),
  );
  const perSplit = Math.ceil(positions / Math.max(1, wanted) / granule) * granule;
  return { splits: Math.ceil(positions / perSplit), perSplit };
}

/** Σ over the rows of x viewed as a row-major [rows, columns] matrix, as a new tensor of `shape` (default [columns]). */
export function columnSum(
  runtime: GpuRuntime,
  x: Tensor,
  columns: number,
  shape: readonly number[] = [columns],
): Tensor {
  if (!Number.isInteger(columns) || columns < 1 || x.size % columns !== 0) {
    throw new Error(`columnSum: ${shapeToString(x.shape)} is not a matrix of ${columns} columns`);
  }
  if (shape.reduce((n, d) => n * d, 1) !== columns) {
    throw new Error(`columnSum: ${columns} column sums do not fill shape ${shapeToString(shape)}`);
  }
  const rows = x.size / columns;
  const chunks = reductionChunks(rows);
  if (chunks > runtime.maxWorkgroupsPerDimension) throw new Error(`columnSum: ${rows} rows are too many`);
  const out = runtime.empty(chunks === 1 ? shape : [chunks, columns], 'columnSum');
  runtime.dispatch({
    kernel: { family, entryPoint: 'column_sum' },
    params: Uint32Array.of(rows, columns, REDUCTION_CHUNK_ROWS),
    buffers: [x, out],
    workgroups: [Math.ceil(columns / COLUMNS_PER_WORKGROUP), chunks],
  });
  if (chunks === 1) return out;
  const total = columnSum(runtime, out, columns, shape);
  out.dispose();
  return total;
}

/**
 * Where a chunked reduction writes its per-chunk sums: the result itself (of `shape`) when there is one chunk,
 * otherwise [chunks, size] partial sums that sumChunks adds up.
 */
export function chunkPartials(runtime: GpuRuntime, chunks: number, shape: readonly number[], label: string): Tensor {
  const size = shape.reduce((n, d) => n * d, 1);
  return runtime.empty(chunks === 1 ? shape : [chunks, size], label);
}

/** The result of a chunked reduction from what chunkPartials gave (which it takes over). */
export function sumChunks(runtime: GpuRuntime, partials: Tensor, chunks: number, shape: readonly number[]): Tensor {
  if (chunks === 1) return partials;
  const total = columnSum(runtime, partials, partials.size / chunks, shape);
  partials.dispose();
  return total;
}
