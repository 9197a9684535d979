import type { PixelScoreHistogram } from './metricsProtocol.ts';

/**
 * A histogram of pixel scores, normal and defect pixels on one grid of equal bins, built in one pass when the score
 * range is not known in advance. Bin n spans [origin + n·width, origin + (n+1)·width), with the origin fixed by the
 * first map; when the scores outgrow the window of `bins` bins, the width doubles and bins merge in pairs. Both are
 * exact: bin n at width 2w has the edges of bins 2n and 2n+1 at width w (n·2w and 2n·w round alike), and every score
 * is placed against the edges as they are computed, so counts at or above an edge are exact counts. The grid covers
 * the scores' range with at least `bins` / 2 bins.
 */
export class AdaptiveHistogram {
  private origin = 0;
  private width = 0;
  /** Bin index of window slot 0. */
  private offset = 0;
  private occupiedLow = Number.POSITIVE_INFINITY;
  private occupiedHigh = Number.NEGATIVE_INFINITY;
  private normal: Float64Array;
  private defect: Float64Array;

  constructor(private readonly bins = 16384) {
    if (!Number.isInteger(bins) || bins < 2) {
      throw new RangeError(`AdaptiveHistogram: bins must be an integer of at least 2, got ${bins}`);
    }
    this.normal = new Float64Array(bins);
    this.defect = new Float64Array(bins);
  }

  private edge(n: number): number {
    return this.origin + n * this.width;
  }

  /** The bin holding v: edge(n) <= v < edge(n + 1), with the edges as `edge` computes them. */
  private binOf(v: number): number {
    let n = Math.floor((v - this.origin) / this.width);
    if (this.edge(n) > v) n -= 1;
    else if (this.edge(n + 1) <= v) n += 1;
    return n;
  }

  /** Adds one map's finite scores; pixels where `mask` is 1 count as defect pixels. */
  add(map: Float32Array, mask: Uint8Array): void {
    if (map.length !== mask.length) {
      throw new RangeError(`AdaptiveHistogram: map has ${map.length} values, mask ${mask.length}`);
    }
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const value of map) {
      if (value < min) min = value;
      if (value > max) max = value;
    }
    if (!Number.isFinite(min) || !Number.isFinite(max)) {
      throw new RangeError('AdaptiveHistogram: scores must be finite');
    }
    if (this.width === 0) {
      this.origin = min;
      // A constant first map still needs a non-zero width; later maps widen the grid as they need.
      this.width = max > min ? (max - min) / (this.bins - 1) : Math.max(Math.abs(min), 1) * 2 ** -40;
    }
    this.cover(min, max);
    const { offset, normal, defect } = this;
    for (let i = 0; i < map.length; i++) {
      const slot = this.binOf(map[i]!) - offset;
      if (mask[i]) defect[slot]! += 1;
      else normal[slot]! += 1;
    }
  }

  /** Widens until [min, max] and the bins already used fit in the window, then moves the window over them. */
  private cover(min: number, max: number): void {
    let low: number;
    let high: number;
    for (;;) {
      low = Math.min(this.binOf(min), this.occupiedLow);
      high = Math.max(this.binOf(max), this.occupiedHigh);
      if (high - low < this.bins) break;
      this.widen();
    }
    if (low < this.offset || high >= this.offset + this.bins) {
      const offset = low < this.offset ? low : high - this.bins + 1;
      for (const counts of [this.normal, this.defect]) {
        const moved = new Float64Array(this.bins);
        for (let n = this.occupiedLow; n <= this.occupiedHigh; n++) moved[n - offset] = counts[n - this.offset]!;
        counts.set(moved);
      }
      this.offset = offset;
    }
    this.occupiedLow = low;
    this.occupiedHigh = high;
  }

  private widen(): void {
    const offset = Math.floor(this.offset / 2);
    for (const counts of [this.normal, this.defect]) {
      const merged = new Float64Array(this.bins);
      for (let slot = 0; slot < this.bins; slot++)
        merged[Math.floor((this.offset + slot) / 2) - offset]! += counts[slot]!;
      counts.set(merged);
    }
    this.offset = offset;
    this.occupiedLow = Math.floor(this.occupiedLow / 2);
    this.occupiedHigh = Math.floor(this.occupiedHigh / 2);
    this.width *= 2;
  }

  /** The occupied bins, first to last that hold a score; an empty histogram has no bins. */
  result(): PixelScoreHistogram {
    if (!(this.occupiedHigh >= this.occupiedLow)) {
      return { edges: new Float64Array(0), normal: new Float64Array(0), defect: new Float64Array(0) };
    }
    let first = this.occupiedLow;
    let last = this.occupiedHigh;
    const occupied = (n: number) => this.normal[n - this.offset]! > 0 || this.defect[n - this.offset]! > 0;
    while (first < last && !occupied(first)) first++;
    while (last > first && !occupied(last)) last--;
    const window = (counts: Float64Array) => counts.slice(first - this.offset, last + 1 - this.offset);
    return {
      edges: Float64Array.from({ length: last - first + 2 }, (_, k) => this.edge(first + k)),
      normal: window(this.normal),
      defect: window(this.defect),
    };
  }
}
