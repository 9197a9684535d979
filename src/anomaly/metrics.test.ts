import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors } from '../io/safetensors.ts';
import { seededRandom as random } from '../testing/reference.ts';
import {
  ADER_METRIC_KEYS,
  type AderMetricKey,
  F1_GRID_THRESHOLDS,
  MetricsAccumulator,
  type MetricsOptions,
  numpyArange,
  rankingMetrics,
  toAderKeys,
} from './metrics.ts';
import { RadixScratch, radixSortFloat32 } from './radixSort.ts';
import { labelRegions, regionAreas } from './regions.ts';

const golden = (name: string) => readFileSync(new URL(`../../../shared/spec/golden/${name}`, import.meta.url));

interface Image {
  map: Float32Array;
  mask: Uint8Array;
}

const labelOf = (mask: Uint8Array): 0 | 1 => (mask.includes(1) ? 1 : 0);

/** Small images with blobs and scattered pixels in the masks and few distinct map values (many ties). */
function randomImages(seed: number, count: number, width: number, height: number, levels: number): Image[] {
  const rand = random(seed);
  return Array.from({ length: count }, () => {
    const mask = new Uint8Array(width * height);
    if (rand() < 0.6) {
      const [cx, cy, r] = [rand() * width, rand() * height, 1 + rand() * 3];
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) mask[y * width + x] = 1;
      for (let i = 0; i < mask.length; i++) if (rand() < 0.03) mask[i] = 1;
    }
    const scale = 0.6 + 0.8 * rand();
    const map = Float32Array.from(mask, (m) => Math.floor((scale * rand() + 0.4 * m * rand()) * levels) / levels);
    return { map, mask };
  });
}

// ---- Plain transliterations of the definitions: slow, obviously right, independent of the streaming code. ----

/** sklearn: _binary_clf_curve at every distinct threshold, roc trapezoid, AP step sum, F1 of the PR curve. */
function naiveRanking(labels: number[], scores: number[]): { auroc: number; ap: number; f1Max: number } {
  const distinct = [...new Set(scores)].sort((a, b) => b - a);
  const P = labels.filter((l) => l === 1).length;
  const N = labels.length - P;
  const tps = distinct.map((t) => scores.filter((s, i) => s >= t && labels[i] === 1).length);
  const fps = distinct.map((t) => scores.filter((s, i) => s >= t && labels[i] === 0).length);
  let auroc = 0;
  let ap = 0;
  let f1Max = 0;
  tps.forEach((tp, k) => {
    const [tpBefore, fpBefore] = k === 0 ? [0, 0] : [tps[k - 1]!, fps[k - 1]!];
    auroc += ((fps[k]! - fpBefore) / N) * ((tp + tpBefore) / P / 2);
    const precision = tp / (tp + fps[k]!);
    ap += ((tp - tpBefore) / P) * precision;
    const f1 = (2 * precision * (tp / P)) / (precision + tp / P);
    if (f1 > f1Max) f1Max = f1;
  });
  return { auroc, ap, f1Max };
}

/** ADer cal_pro_score, literally: every threshold, every region of every image, then the stretched trapezoid. */
function naiveBenchmarkAupro(images: Image[], width: number, height: number): number {
  const all = images.flatMap(({ map }) => [...map]);
  const [min, max] = [Math.min(...all), Math.max(...all)];
  const fprs: number[] = [];
  const pros: number[] = [];
  for (const th of numpyArange(min, max, (max - min) / 100)) {
    const pro: number[] = [];
    let falsePositives = 0;
    let normals = 0;
    for (const { map, mask } of images) {
      const labelled = labelRegions(mask, width, height);
      const areas = regionAreas(labelled);
      const hits = new Array<number>(labelled.count).fill(0);
      map.forEach((v, i) => {
        const region = labelled.labels[i]!;
        if (region > 0 && v > th) hits[region - 1]! += 1;
        if (mask[i] === 0) {
          normals += 1;
          if (v > th) falsePositives += 1;
        }
      });
      for (const [r, h] of hits.entries()) pro.push(h / areas[r]!);
    }
    pros.push(pro.reduce((a, b) => a + b, 0) / pro.length);
    fprs.push(falsePositives / normals);
  }
  const kept = fprs.map((f, i) => [f, pros[i]!] as const).filter(([f]) => f < 0.3);
  const [lo, hi] = [Math.min(...kept.map(([f]) => f)), Math.max(...kept.map(([f]) => f))];
  const x = kept.map(([f]) => (f - lo) / (hi - lo));
  let area = 0;
  for (let i = 1; i < kept.length; i++) area += ((x[i]! - x[i - 1]!) * (kept[i]![1] + kept[i - 1]![1])) / 2;
  return -area;
}

/** MVTec AD: vertices at every distinct score (descending), (0, 0) prepended, trapezoid to FPR 0.3, / 0.3. */
function naiveMvtecAupro(images: Image[], width: number, height: number): number {
  const pixels: { v: number; normal: boolean; weight: number }[] = [];
  let regions = 0;
  for (const { map, mask } of images) {
    const labelled = labelRegions(mask, width, height);
    const areas = regionAreas(labelled);
    regions += labelled.count;
    map.forEach((v, i) => {
      const region = labelled.labels[i]!;
      pixels.push({ v, normal: region === 0, weight: region > 0 ? 1 / areas[region - 1]! : 0 });
    });
  }
  const normals = pixels.filter((p) => p.normal).length;
  pixels.sort((a, b) => b.v - a.v);
  const x = [0];
  const y = [0];
  let fp = 0;
  let pro = 0;
  pixels.forEach((p, i) => {
    fp += p.normal ? 1 : 0;
    pro += p.weight;
    if (i === pixels.length - 1 || pixels[i + 1]!.v !== p.v) {
      x.push(fp / normals);
      y.push(Math.min(1, pro / regions));
    }
  });
  let area = 0;
  for (let i = 1; i < x.length; i++) {
    if (x[i]! <= 0.3) {
      area += 0.5 * (y[i]! + y[i - 1]!) * (x[i]! - x[i - 1]!);
    } else {
      if (x[i - 1]! < 0.3) {
        const yLimit = y[i - 1]! + ((y[i]! - y[i - 1]!) * (0.3 - x[i - 1]!)) / (x[i]! - x[i - 1]!);
        area += 0.5 * (yLimit + y[i - 1]!) * (0.3 - x[i - 1]!);
      }
      break;
    }
  }
  return area / 0.3;
}

function accumulate(images: Image[], width: number, height: number, options: Partial<MetricsOptions> = {}) {
  const accumulator = new MetricsAccumulator({ width, height, ...options });
  for (const { map, mask } of images) accumulator.add(map, mask, labelOf(mask), 'c');
  return accumulator;
}

describe('golden: ADer evaluator on metrics_inputs', () => {
  const file = parseSafetensors(new Uint8Array(golden('metrics_inputs.safetensors')), 'metrics_inputs');
  const expected = JSON.parse(golden('metrics_expected.json').toString('utf8')) as {
    per_class: Record<string, Record<AderMetricKey, number>>;
    mean: Record<AderMetricKey, number>;
  };
  const [n, height, width] = file.tensor('maps').shape as [number, number, number];
  const maps = file.float32('maps');
  const masks = file.tensor('masks').data as Uint8Array;
  const classIndex = file.tensor('class_index').data as BigInt64Array;
  const classes = (JSON.parse(file.metadata.case ?? '{}') as { classes: string[] }).classes;

  for (const [label, options] of [
    ['one sorted run per class', {}],
    ['many small sorted runs', { minChunkElements: 97, maxChunkElements: 1000 }],
  ] as const) {
    it(`reproduces every class and the class mean to 1e-9 (${label})`, () => {
      const accumulator = new MetricsAccumulator({ width, height, ...options });
      for (let i = 0; i < n; i++) {
        const mask = masks.subarray(i * width * height, (i + 1) * width * height);
        const map = maps.subarray(i * width * height, (i + 1) * width * height);
        accumulator.add(map, mask, labelOf(mask), classes[Number(classIndex[i])]!);
      }
      const result = accumulator.finalize();
      expect(result.classes.map((c) => c.className)).toEqual(Object.keys(expected.per_class));
      for (const c of result.classes) {
        const got = toAderKeys(c.paper);
        for (const key of Object.values(ADER_METRIC_KEYS)) {
          expect(Math.abs(got[key] - expected.per_class[c.className]![key]), `${c.className} ${key}`).toBeLessThan(
            1e-9,
          );
        }
        expect(c.undefinedReasons).toEqual([]);
      }
      const mean = toAderKeys(result.mean);
      for (const key of Object.values(ADER_METRIC_KEYS)) {
        expect(Math.abs(mean[key] - expected.mean[key]), `mean ${key}`).toBeLessThan(1e-9);
      }
      const sevenMean = Object.values(expected.mean).reduce((a, b) => a + b, 0) / 7;
      expect(Math.abs(result.mean.mAD - sevenMean)).toBeLessThan(1e-9);
    });
  }
});

describe('rankingMetrics (sklearn semantics)', () => {
  it('matches the sklearn documentation example', () => {
    // roc_auc_score 0.75, average_precision_score 0.8333..., PR-curve F1 max at threshold 0.35: P 2/3, R 1.
    const r = rankingMetrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]);
    expect(r.auroc).toBeCloseTo(0.75, 15);
    expect(r.ap).toBeCloseTo(5 / 6, 15);
    expect(r.f1Max).toBeCloseTo(0.8, 15);
  });

  it('handles ties between a positive and a negative exactly (hand-computed)', () => {
    // Pairs: 0.5 vs {0.1, 0.5} = 1.5, 0.9 = 2, 0.2 = 1: U = 4.5 of 6. AP = (1 + 2/3 + 3/4)/3. F1 max at 0.2: 6/7.
    const r = rankingMetrics([0, 0, 1, 1, 1], [0.1, 0.5, 0.5, 0.9, 0.2]);
    expect(r.auroc).toBeCloseTo(0.75, 15);
    expect(r.ap).toBeCloseTo(29 / 36, 15);
    expect(r.f1Max).toBeCloseTo(6 / 7, 15);
    const allTied = rankingMetrics([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]);
    expect([allTied.auroc, allTied.ap, allTied.f1Max]).toEqual([0.5, 0.5, 2 / 3]);
  });

  it('agrees with a literal transliteration on random tie-heavy data', () => {
    const rand = random(7);
    for (let trial = 0; trial < 30; trial++) {
      const n = 5 + Math.floor(rand() * 60);
      const labels = Array.from({ length: n }, () => (rand() < 0.4 ? 1 : 0));
      labels[0] = 1;
      labels[1] = 0;
      const scores = labels.map((l) => Math.floor((rand() + 0.3 * l) * 5) / 5);
      const got = rankingMetrics(labels, scores);
      const want = naiveRanking(labels, scores);
      expect(Math.abs(got.auroc - want.auroc)).toBeLessThan(1e-12);
      expect(Math.abs(got.ap - want.ap)).toBeLessThan(1e-12);
      expect(Math.abs(got.f1Max - want.f1Max)).toBeLessThan(1e-12);
    }
  });

  it('returns curves from (0,0) to (1,1) (ROC) and from sklearn (0,1) (PR)', () => {
    const r = rankingMetrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]);
    expect([r.roc.x[0], r.roc.y[0], r.roc.x.at(-1), r.roc.y.at(-1)]).toEqual([0, 0, 1, 1]);
    expect([r.pr.x[0], r.pr.y[0]]).toEqual([0, 1]);
    // Every ROC vertex of this example: (0,.5) after 0.8, (.5,.5) after 0.4, (.5,1) after 0.35.
    const points = [...r.roc.x].map((x, i) => [x, r.roc.y[i]]);
    for (const vertex of [
      [0, 0.5],
      [0.5, 0.5],
      [0.5, 1],
    ]) {
      expect(points).toContainEqual(vertex);
    }
  });

  it('gives NaN for undefined metrics and throws for bad input', () => {
    const oneLabel = rankingMetrics([1, 1, 1], [0.1, 0.2, 0.3]);
    expect(oneLabel.auroc).toBeNaN();
    expect(oneLabel.ap).toBe(1);
    const noPositive = rankingMetrics([0, 0], [0.1, 0.2]);
    expect([noPositive.auroc, noPositive.ap, noPositive.f1Max].every(Number.isNaN)).toBe(true);
    expect(() => rankingMetrics([0, 1], [0.1])).toThrow(/2 labels but 1 scores/);
    expect(() => rankingMetrics([0, 2], [0.1, 0.2])).toThrow(/label 1 is 2/);
    expect(() => rankingMetrics([0, 1], [0.1, Number.NaN])).toThrow(/score 1 is NaN/);
  });
});

describe('pixel metrics', () => {
  const [width, height] = [12, 10];
  const images = randomImages(11, 16, width, height, 9);

  it('match literal transliterations of every definition (ties, many sorted runs)', () => {
    const c = accumulate(images, width, height, { minChunkElements: 50, maxChunkElements: 300 }).finalizeClass('c');
    const labels = images.flatMap(({ mask }) => [...mask]);
    const scores = images.flatMap(({ map }) => [...map]);
    const ranking = naiveRanking(labels, scores);
    expect(Math.abs(c.pixel.auroc - ranking.auroc)).toBeLessThan(1e-12);
    expect(Math.abs(c.pixel.ap - ranking.ap)).toBeLessThan(1e-12);
    expect(Math.abs(c.pixel.f1Max - ranking.f1Max)).toBeLessThan(1e-12);
    expect(Math.abs(c.proBenchmark.aupro - naiveBenchmarkAupro(images, width, height))).toBeLessThan(1e-12);
    expect(Math.abs(c.auproMvtec - naiveMvtecAupro(images, width, height))).toBeLessThan(1e-12);
    const image = naiveRanking(
      images.map(({ mask }) => labelOf(mask)),
      images.map(({ map }) => Math.max(...map)),
    );
    expect(Math.abs(c.image.auroc - image.auroc)).toBeLessThan(1e-12);
    expect(c.images).toBe(16);
    expect(c.pixels).toBe(16 * width * height);
  });

  it('does not depend on how the scores are chunked, nor on finalizing part-way', () => {
    const whole = accumulate(images, width, height).finalizeClass('c');
    const streamed = new MetricsAccumulator({ width, height, minChunkElements: 64, maxChunkElements: 256 });
    images.forEach(({ map, mask }, i) => {
      streamed.add(map, mask, labelOf(mask), 'c');
      // A finalize sorts the chunk being filled in place; later adds must still be counted.
      if (i % 5 === 2) streamed.finalizeClass('c');
    });
    const later = streamed.finalizeClass('c');
    expect(later.paper).toEqual(whole.paper);
    expect(later.auproMvtec).toBe(whole.auproMvtec);
  });

  it('hand-checked example: AUROC, AP, the MVTec PRO area and the grid F1 with its epsilons', () => {
    // One 4x1 image; the two defect pixels touch, so one region. Descending: 0.8 defect (PRO 1/2, FPR 0),
    // 0.4 normal (FPR 1/2): the PRO curve is 1/2 up to FPR 0.3, so the MVTec AU-PRO is 1/2.
    const c = accumulate(
      [{ map: Float32Array.from([0.1, 0.4, 0.35, 0.8]), mask: Uint8Array.from([0, 0, 1, 1]) }],
      4,
      1,
    ).finalizeClass('c');
    expect(c.regions).toBe(1);
    expect(c.pixel.auroc).toBeCloseTo(0.75, 15);
    expect(c.pixel.ap).toBeCloseTo(5 / 6, 15);
    expect(c.auproMvtec).toBeCloseTo(0.5, 15);
    // Normalised (v − 0.1)/0.7: 0, 0.43, 0.36, 1. Above θ7 = 0.35000000000000003: TP 2 of 3 predicted; above
    // θ8 = 0.4: TP 1 of 2 predicted. P = TP/(predicted + 1e-8), R = TP/(2 + 1e-8), F1 = 2PR/(P + R + 1e-8).
    const gridF1 = (tp: number, predicted: number) => {
      const [precision, recall] = [tp / (predicted + 1e-8), tp / (2 + 1e-8)];
      return (2 * precision * recall) / (precision + recall + 1e-8);
    };
    expect(c.pixelF1Grid.f1[7]).toBe(gridF1(2, 3));
    expect(c.pixelF1Grid.f1[8]).toBe(gridF1(1, 2));
    expect(c.pixelF1MaxGrid).toBe(gridF1(2, 3));
    // Every FPR below 0.3 is 0 here (only 0.4 > th), so the benchmark's FPR stretch divides by zero: NaN.
    expect(c.proBenchmark.aupro).toBeNaN();
    expect(c.undefinedReasons.join()).toMatch(/same FPR/);
  });
});

describe('grid F1 at scores exactly on a threshold', () => {
  it('predicts strictly above the threshold, as ADer does', () => {
    // Normalised scores 0, 0.25, 0.5, 1 are exactly θ0, θ5 = 5·0.05 and θ10 = 10·0.05 in float64.
    const c = accumulate([{ map: Float32Array.from([0, 0.25, 0.5, 1]), mask: Uint8Array.from([0, 0, 1, 1]) }], 4, 1);
    const { f1 } = c.finalizeClass('c').pixelF1Grid;
    const gridF1 = (tp: number, predicted: number) => {
      const [precision, recall] = [tp / (predicted + 1e-8), tp / (2 + 1e-8)];
      return (2 * precision * recall) / (precision + recall + 1e-8);
    };
    expect([f1[0], f1[5], f1[10], f1[20]]).toEqual([gridF1(2, 3), gridF1(2, 2), gridF1(1, 1), 0]);
  });
});

describe('numpyArange', () => {
  it('follows numpy: ceil length, fill from the first two elements', () => {
    expect(F1_GRID_THRESHOLDS.length).toBe(21);
    expect(F1_GRID_THRESHOLDS[3]).toBe(0.15000000000000002);
    expect(F1_GRID_THRESHOLDS[20]).toBe(1);
    // numpy 1.24: np.arange(a, b, (b - a)/100) has 101 elements here, the last just below b.
    const [a, b] = [0.04097352549433708, 0.09055643528699875];
    const t = numpyArange(a, b, (b - a) / 100);
    expect(t.length).toBe(101);
    expect(t[1]).toBe(0.041469354592263696);
    expect(t[100]).toBe(0.09055643528699853);
    expect(numpyArange(1, 1, 0.5).length).toBe(0);
  });
});

describe('degenerate input', () => {
  const [width, height] = [4, 3];
  const good = () => new Uint8Array(width * height);
  const map = () => Float32Array.from({ length: width * height }, (_, i) => i / 12);

  it('throws, naming the image, for non-finite scores, wrong sizes, non-binary masks and wrong labels', () => {
    const acc = new MetricsAccumulator({ width, height });
    acc.add(map(), good(), 0, 'a');
    const withNaN = map();
    withNaN[5] = Number.NaN;
    expect(() => acc.add(withNaN, good(), 0, 'a')).toThrow(/class "a" image 1: map value at pixel 5 is NaN/);
    const withInf = map();
    withInf[0] = Number.POSITIVE_INFINITY;
    expect(() => acc.add(withInf, good(), 0, 'a')).toThrow(/Infinity, not finite/);
    expect(() => acc.add(new Float32Array(11), good(), 0, 'a')).toThrow(/map has 11 values, 4x3 needs 12/);
    expect(() => acc.add(map(), new Uint8Array(13), 0, 'a')).toThrow(/mask has 13 values/);
    expect(() => acc.add(map(), good().fill(255), 1, 'a')).toThrow(/mask value 255 .* binarised to 0\/1/);
    expect(() => acc.add(map(), good(), 1, 'a')).toThrow(/label 1 disagrees with its mask/);
    expect(() => new MetricsAccumulator({ width: 0, height })).toThrow(/positive integers/);
    expect(() => new MetricsAccumulator({ width, height }).finalize()).toThrow(/no images were added/);
    expect(() => acc.finalizeClass('b')).toThrow(/no images were added for class "b"/);
  });

  it('gives NaN with a reason for good-only classes, and a NaN mean', () => {
    const acc = new MetricsAccumulator({ width, height });
    acc.add(map(), good(), 0, 'good-only');
    acc.add(
      map().map((v) => v / 2),
      good(),
      0,
      'good-only',
    );
    const mask = good();
    mask[3] = 1;
    acc.add(map(), mask, 1, 'fine');
    acc.add(
      map().map((v) => 1 - v),
      good(),
      0,
      'fine',
    );
    const result = acc.finalize();
    const goodOnly = result.classes[0]!;
    const p = goodOnly.paper;
    expect([p.imageAuroc, p.imageAp, p.pixelAuroc, p.pixelAp, p.pixelF1Max, p.aupro, p.mAD].every(Number.isNaN)).toBe(
      true,
    );
    expect(goodOnly.auproMvtec).toBeNaN();
    expect(goodOnly.undefinedReasons.join('; ')).toMatch(/all 2 images are good.*no defect pixels/);
    expect(Number.isNaN(result.classes[1]!.paper.pixelAuroc)).toBe(false);
    expect(result.mean.mAD).toBeNaN();
  });

  it('gives NaN for the grid F1 and the benchmark AU-PRO when every score is equal', () => {
    const mask = good();
    mask[0] = 1;
    const c = accumulate([{ map: new Float32Array(width * height).fill(0.25), mask }], width, height).finalizeClass(
      'c',
    );
    expect(c.pixelF1MaxGrid).toBeNaN();
    expect(c.proBenchmark.aupro).toBeNaN();
    expect(c.pixel.auroc).toBe(0.5);
    expect(c.undefinedReasons.join()).toMatch(/all pixel scores are equal/);
  });
});

describe('curves for plotting', () => {
  it('are downsampled for large inputs while the metrics stay exact', () => {
    const [width, height] = [64, 64];
    const images = randomImages(5, 20, width, height, 1 << 20);
    const c = accumulate(images, width, height, { curvePoints: 50 }).finalizeClass('c');
    for (const curve of [c.pixel.roc, c.pixel.pr, c.proCurve]) {
      expect(curve.x.length).toBeLessThanOrEqual(4 * 50 + 4);
      expect(curve.x.length).toBeGreaterThan(50);
      expect(curve.x.every((x, i) => i === 0 || x >= curve.x[i - 1]!)).toBe(true);
    }
    const labels = images.flatMap(({ mask }) => [...mask]);
    const scores = images.flatMap(({ map }) => [...map]);
    expect(Math.abs(c.pixel.auroc - rankingMetrics(labels, scores).auroc)).toBeLessThan(1e-12);
    expect(c.proBenchmark.thresholds.length).toBeGreaterThanOrEqual(100);
    expect(c.proBenchmark.fpr.length).toBe(c.proBenchmark.thresholds.length);
  });
});

describe('labelRegions (skimage.measure.label, 8-connectivity)', () => {
  it('joins diagonal neighbours, merges U shapes, separates different values, numbers in raster order', () => {
    // The 1s form one region through diagonal steps, merged only at (3,3) where two provisional labels meet; the
    // 2s beside them are a region of their own.
    const image = Uint8Array.from(
      [
        [1, 0, 0, 2, 2],
        [0, 1, 0, 0, 1],
        [1, 0, 0, 1, 0],
        [1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
        [2, 0, 0, 0, 1],
      ].flat(),
    );
    const labelled = labelRegions(image, 5, 6);
    expect(labelled.count).toBe(4);
    expect([...labelled.labels]).toEqual(
      [
        [1, 0, 0, 2, 2],
        [0, 1, 0, 0, 1],
        [1, 0, 0, 1, 0],
        [1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
        [3, 0, 0, 0, 4],
      ].flat(),
    );
    expect([...regionAreas(labelled)]).toEqual([9, 2, 1, 1]);
  });

  it('agrees with a flood fill on random masks', () => {
    const rand = random(3);
    for (let trial = 0; trial < 20; trial++) {
      const [w, h] = [3 + Math.floor(rand() * 20), 3 + Math.floor(rand() * 20)];
      const image = Uint8Array.from({ length: w * h }, () => (rand() < 0.45 ? 1 + Math.floor(rand() * 2) : 0));
      const { labels, count } = labelRegions(image, w, h);
      const expected = new Int32Array(w * h);
      let next = 0;
      for (let start = 0; start < w * h; start++) {
        if (image[start] === 0 || expected[start] !== 0) continue;
        next += 1;
        const stack = [start];
        expected[start] = next;
        while (stack.length > 0) {
          const p = stack.pop()!;
          const [px, py] = [p % w, Math.floor(p / w)];
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const [x, y] = [px + dx, py + dy];
              const q = y * w + x;
              if (x < 0 || y < 0 || x >= w || y >= h || expected[q] !== 0 || image[q] !== image[start]) continue;
              expected[q] = next;
              stack.push(q);
            }
          }
        }
      }
      expect(count).toBe(next);
      expect([...labels]).toEqual([...expected]);
    }
  });

  it('rejects sizes that do not match', () => {
    expect(() => labelRegions(new Uint8Array(5), 2, 3)).toThrow(/5 pixels, but 2x3 needs 6/);
  });
});

describe('radixSortFloat32', () => {
  it('sorts like Float32Array.prototype.sort (negatives, -0, subnormals, large) and carries the payload', () => {
    const rand = random(9);
    const special = [-0, 0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1, -1];
    const values = Float32Array.from({ length: 5000 }, (_, i) =>
      i < special.length ? special[i]! : (rand() - 0.5) * 10 ** Math.floor(rand() * 10 - 5),
    );
    const original = values.slice();
    const payload = Uint32Array.from(values, (_, i) => i);
    radixSortFloat32(values, new RadixScratch(), payload);
    // The built-in typed-array sort also puts -0 before +0.
    const expected = original.slice().sort();
    expect([...values].every((v, i) => Object.is(v, expected[i]))).toBe(true);
    expect([...payload].every((p, i) => Object.is(original[p], values[i]))).toBe(true);
    expect(new Set(payload).size).toBe(payload.length);
  });
});
