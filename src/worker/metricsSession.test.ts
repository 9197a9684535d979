import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAPER_METRIC_NAMES } from '../anomaly/metrics.ts';
import { MODEL_INPUT_SIZE, preprocessMask } from '../image/preprocess.ts';
import { seededRandom } from '../util/random.ts';
import { MetricsSession } from './metricsSession.ts';
import { grayPng } from './testMasks.ts';

const bottle = new URL('../../../shared/data/mvtec-bottle/256/', import.meta.url);
const read = (path: string) => new Uint8Array(readFileSync(new URL(path, bottle)));
const PIXELS = MODEL_INPUT_SIZE * MODEL_INPUT_SIZE;

/** A map that scores defect pixels `gap` above the normal ones, with noise. */
function mapFor(mask: Uint8Array, random: () => number, gap: number): Float32Array {
  return Float32Array.from(mask, (m) => 0.1 + 0.2 * random() + gap * m);
}

const defects = ['broken_large/000', 'broken_small/003', 'contamination/001'];

describe('MetricsSession', () => {
  it('scores a perfectly separating map 100% under both definitions, with exact scores and pooled counts', async () => {
    const random = seededRandom(11);
    const session = new MetricsSession();
    const maps: Float32Array[] = [];
    for (const name of defects) {
      const maskBytes = read(`ground_truth/${name}_mask.png`);
      const map = mapFor((await preprocessMask(maskBytes)).mask, random, 1);
      maps.push(map);
      await session.add({ name, className: 'bottle', map: map.slice(), size: MODEL_INPUT_SIZE, mask: maskBytes });
    }
    for (const name of ['good/000', 'good/001']) {
      const map = mapFor(new Uint8Array(PIXELS), random, 1);
      maps.push(map);
      await session.add({ name, className: 'bottle', map: map.slice(), size: MODEL_INPUT_SIZE });
    }
    const summary = session.summarize();
    expect(summary.classes.map((c) => [c.className, c.images, c.defectImages])).toEqual([['bottle', 5, 3]]);
    const [c] = summary.classes;
    for (const definition of ['benchmark', 'standard'] as const) {
      for (const name of [...PAPER_METRIC_NAMES, 'mAD'] as const) {
        expect(c![definition][name], `${definition} ${name}`).toBeCloseTo(1, 6);
        expect(summary.mean[definition][name]).toBe(c![definition][name]);
      }
    }
    const maxOf = (map: Float32Array) => map.reduce((m, v) => Math.max(m, v), Number.NEGATIVE_INFINITY);
    expect([...c!.imageScores]).toEqual(maps.map(maxOf).sort((a, b) => a - b));
    // Defective images score above 1.1, good ones below 0.3: the labels travel with the sorted scores.
    expect([...c!.imageLabels]).toEqual([0, 0, 1, 1, 1]);
    const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);
    expect(sum(summary.pixelHistogram.defect)).toBe(c!.defectPixels);
    expect(sum(summary.pixelHistogram.normal) + c!.defectPixels).toBe(5 * PIXELS);
    expect(summary.skipped).toEqual([]);
  });

  it('keeps the two definitions apart where they differ, per class, with the class mean', async () => {
    const random = seededRandom(5);
    const session = new MetricsSession();
    for (const [index, name] of defects.entries()) {
      const maskBytes = read(`ground_truth/${name}_mask.png`);
      const mask = (await preprocessMask(maskBytes)).mask;
      for (const className of ['a', 'b']) {
        const map = mapFor(mask, random, className === 'a' ? 0.1 : 0.05 * index);
        await session.add({ name, className, map, size: MODEL_INPUT_SIZE, mask: maskBytes });
      }
    }
    for (const className of ['a', 'b']) {
      const map = mapFor(new Uint8Array(PIXELS), random, 0);
      await session.add({ name: 'good', className, map, size: MODEL_INPUT_SIZE });
    }
    const summary = session.summarize();
    expect(summary.classes.map((c) => c.className)).toEqual(['a', 'b']);
    for (const c of summary.classes) {
      // Image-level and pixel AUROC/AP are defined one way; F1-max and AU-PRO differ between the definitions.
      for (const name of ['imageAuroc', 'imageAp', 'imageF1Max', 'pixelAuroc', 'pixelAp'] as const) {
        expect(c.standard[name]).toBe(c.benchmark[name]);
      }
      // The exact F1-max looks at every threshold, the benchmark's at 21 of them.
      expect(c.standard.pixelF1Max).toBeGreaterThanOrEqual(c.benchmark.pixelF1Max - 1e-7);
      expect(c.standard.aupro).not.toBe(c.benchmark.aupro);
      const seven = PAPER_METRIC_NAMES.map((name) => c.standard[name]);
      expect(c.standard.mAD).toBeCloseTo(seven.reduce((s, v) => s + v, 0) / 7, 12);
      for (const value of [...seven, c.benchmark.mAD]) expect(value).toBeGreaterThanOrEqual(0);
    }
    const [a, b] = summary.classes;
    expect(summary.mean.standard.aupro).toBeCloseTo((a!.standard.aupro + b!.standard.aupro) / 2, 12);
    expect(summary.mean.benchmark.pixelF1Max).toBeCloseTo((a!.benchmark.pixelF1Max + b!.benchmark.pixelF1Max) / 2, 12);
  });

  it('skips an image whose mask cannot be read, counts an empty mask as good, and uses the rest', async () => {
    const random = seededRandom(2);
    const session = new MetricsSession();
    const maskBytes = read(`ground_truth/${defects[0]}_mask.png`);
    const mask = (await preprocessMask(maskBytes)).mask;
    await session.add({ name: 'defect', className: 'c', map: mapFor(mask, random, 1), size: 256, mask: maskBytes });
    await session.add({
      name: 'broken mask',
      className: 'c',
      map: mapFor(mask, random, 1),
      size: 256,
      mask: new Blob([maskBytes.subarray(0, 100)]),
    });
    await session.add({ name: 'wrong size', className: 'c', map: new Float32Array(64 * 64), size: 64 });
    await session.add({
      name: 'empty mask',
      className: 'c',
      map: mapFor(new Uint8Array(PIXELS), random, 0),
      size: 256,
      mask: grayPng(16, () => 0),
    });
    const summary = session.summarize();
    expect(summary.skipped.map((s) => s.name)).toEqual(['broken mask', 'wrong size']);
    expect(summary.skipped[0]!.error).toMatch(/^its mask cannot be read: truncated PNG/);
    expect(summary.skipped[1]!.error).toMatch(/64x64/);
    expect(summary.emptyMasks).toEqual(['empty mask']);
    expect(summary.classes[0]!.images).toBe(2);
    expect(summary.classes[0]!.defectImages).toBe(1);
  });

  it('says why nothing could be evaluated', async () => {
    const session = new MetricsSession();
    expect(() => session.summarize()).toThrow(/no image could be evaluated/);
    await session.add({ name: 'x.png', className: 'c', map: Float32Array.of(Number.NaN), size: 1 });
    expect(() => session.summarize()).toThrow(/x\.png: the anomaly map is 1x1/);
  });
});
