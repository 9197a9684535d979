/** Deterministic inputs and float64 CPU references for kernel tests. */

export { seededRandom } from '../util/random.ts';

/** Uniform values in [-scale, scale). */
export function randomArray(length: number, random: () => number, scale = 1): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}

/** A random integer in [lo, hi]. */
export function randomInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

/** max |actual - expected| / max |expected|: the error measure the goldens' README uses. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: ${actual.length} values against ${expected.length} expected`);
  }
  let maxError = 0;
  let maxValue = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) return Number.POSITIVE_INFINITY;
    maxError = Math.max(maxError, Math.abs(a - e));
    maxValue = Math.max(maxValue, Math.abs(e));
  }
  return maxValue === 0 ? maxError : maxError / maxValue;
}

export function maxAbsoluteError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: ${actual.length} values against ${expected.length} expected`);
  }
  let maxError = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    maxError = Math.max(maxError, d);
  }
  return maxError;
}

/** C = A·B (or A·Bᵀ) in float64 for one [m, k] x [k, n] pair. */
export function matmulReference(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  transposeB = false,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p]! * (transposeB ? b[j * k + p]! : b[p * n + j]!);
      c[i * n + j] = sum;
    }
  }
  return c;
}
