/** Finite-difference checks of float64 backward references. */

/**
 * Central-difference estimates of ∂L/∂x_i, L = Σ_j dy_j · f(x)_j, at the given indices of x: what an analytic
 * backward of f must give for the upstream gradient dy.
 */
export function numericGradient(
  f: (x: Float64Array) => ArrayLike<number>,
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  indices: readonly number[],
  step = 1e-6,
): number[] {
  const loss = (point: Float64Array) => {
    const y = f(point);
    let sum = 0;
    for (let j = 0; j < y.length; j++) sum += dy[j]! * y[j]!;
    return sum;
  };
  const point = Float64Array.from(x);
  return indices.map((i) => {
    const original = point[i]!;
    point[i] = original + step;
    const up = loss(point);
    point[i] = original - step;
    const down = loss(point);
    point[i] = original;
    return (up - down) / (2 * step);
  });
}

/** `count` distinct-enough indices spread over [0, length), deterministic. */
export function sampleIndices(length: number, count: number): number[] {
  return Array.from({ length: Math.min(count, length) }, (_, i) => Math.floor(((i + 0.5) * length) / count));
}

/** max |analytic_i - numeric_i| over the sampled indices, relative to max |numeric|. */
export function finiteDifferenceError(
  analytic: ArrayLike<number>,
  numeric: readonly number[],
  indices: readonly number[],
): number {
  let maxError = 0;
  let maxValue = 0;
  indices.forEach((index, k) => {
    maxError = Math.max(maxError, Math.abs(analytic[index]! - numeric[k]!));
    maxValue = Math.max(maxValue, Math.abs(numeric[k]!));
  });
  return maxValue === 0 ? maxError : maxError / maxValue;
}
