import { describe, expect, it } from 'vitest';
import { seededRandom } from '../util/random.ts';
import { AdaptiveHistogram } from './adaptiveHistogram.ts';

/** Pixels at or above `threshold`, counted directly. */
function countAtOrAbove(values: readonly number[], threshold: number): number {
  return values.filter((v) => v >= threshold).length;
}

describe('AdaptiveHistogram', () => {
  it('counts every pixel once, split by the mask, on bins whose edges give exact counts', () => {
    const random = seededRandom(3);
    const histogram = new AdaptiveHistogram(64);
    const normal: number[] = [];
    const defect: number[] = [];
    // Ranges that grow upwards and downwards after the first map, so the grid widens both ways.
    for (const [low, high] of [
      [0.4, 0.5],
      [0.3, 0.9],
      [-0.2, 0.45],
      [0.41, 0.42],
      [0, 2.5],
    ] as const) {
      const map = Float32Array.from({ length: 50 }, () => low + (high - low) * random());
      const mask = Uint8Array.from(map, () => (random() < 0.3 ? 1 : 0));
      histogram.add(map, mask);
      map.forEach((v, i) => {
        (mask[i] ? defect : normal).push(v);
      });
    }
    const result = histogram.result();
    const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);
    expect(sum(result.normal)).toBe(normal.length);
    expect(sum(result.defect)).toBe(defect.length);
    const all = [...normal, ...defect];
    const [min, max] = [Math.min(...all), Math.max(...all)];
    const { edges } = result;
    expect(edges).toHaveLength(result.normal.length + 1);
    expect(edges[0]).toBeLessThanOrEqual(min);
    expect(edges.at(-1)).toBeGreaterThan(max);
    // Trimmed to the occupied bins, and at least half the grid spans the scores' range.
    expect(result.normal.length).toBeGreaterThanOrEqual(64 / 2 - 1);
    expect(result.normal[0]! + result.defect[0]!).toBeGreaterThan(0);
    const width = edges[1]! - edges[0]!;
    for (let k = 1; k < edges.length; k++) expect(edges[k]! - edges[k - 1]!).toBeCloseTo(width, 12);
    for (let k = 0; k < edges.length; k++) {
      const edge = edges[k]!;
      const above = (counts: Float64Array) => sum(counts.subarray(k));
      expect(above(result.normal), `normal pixels >= edge ${k}`).toBe(countAtOrAbove(normal, edge));
      expect(above(result.defect), `defect pixels >= edge ${k}`).toBe(countAtOrAbove(defect, edge));
    }
  });

  it('starts from a constant map and still resolves later scores', () => {
    const histogram = new AdaptiveHistogram(16);
    histogram.add(new Float32Array(4).fill(0.25), new Uint8Array(4));
    histogram.add(Float32Array.of(0, 1), Uint8Array.of(0, 1));
    const result = histogram.result();
    expect(result.normal.reduce((s, v) => s + v, 0)).toBe(5);
    expect(result.defect.at(-1)).toBe(1);
    expect(result.normal[0]).toBe(1);
    expect(result.normal.length).toBeGreaterThanOrEqual(4);
  });

  it('refuses non-finite scores and mismatched masks, and is empty before any map', () => {
    const histogram = new AdaptiveHistogram(8);
    expect(histogram.result().edges).toHaveLength(0);
    expect(() => histogram.add(Float32Array.of(Number.NaN), Uint8Array.of(0))).toThrow(/finite/);
    expect(() => histogram.add(Float32Array.of(1, 2), Uint8Array.of(0))).toThrow(/mask 1/);
  });
});
