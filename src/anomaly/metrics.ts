/**
 * The benchmark's anomaly-detection metrics (spec MAMBAAD.md §12; ADer util/metric.py as the official MambaAD config
 * runs it), in float64, in pure TypeScript: no DOM, usable in a Web Worker and in Node.
 *
 * Use: `const acc = new MetricsAccumulator({ width, height })`, then `acc.add(map, mask, label, className)` once per
 * test image as results arrive, then `acc.finalize()` for every class's metrics and the class mean. `finalize` may be
 * called again after more images are added.
 *
 * Exactness. Every metric is computed from exact integer counts at every distinct score, so ties are handled exactly;
 * what remains is float64 rounding (far below 1e-9). Maps are Float32Array; arithmetic on their values is float64, as
 * ADer's is on its float64 maps. The pixel metrics are exact: no subsampling, no binning of scores. Curves returned
 * for plotting are downsampled (at most about 4 * `curvePoints` points, keeping each bin's first, last, lowest and
 * highest point); the metrics never use the downsampled curves.
 *
 * Scale. Pixel scores are stored as float32 in sorted runs (radix sort, linear time), defect-pixel scores with the
 * index of their region: about 4 bytes per pixel plus 4 per defect pixel plus 4 per region. The maps and masks
 * themselves are not kept, so the caller may drop them after `add`. Nothing is stored per pixel as a JS object.
 *
 * Errors and NaN. Bad input throws a RangeError naming the problem and the image: non-finite scores, a map or mask of
 * the wrong size, mask values other than 0 and 1, a label that disagrees with its mask. A metric that is undefined for
 * valid input is NaN, and `undefinedReasons` says why: one image label only (image AUROC, AP, F1), no defect pixels or
 * no normal pixels (pixel AUROC, AP, F1 and both AU-PROs), all pixel scores equal (grid F1 and the benchmark AU-PRO,
 * where ADer divides by zero), fewer than two benchmark AU-PRO thresholds below the FPR limit. mAD is NaN when any of
 * its seven metrics is.
 */

import { RadixScratch, radixSortFloat32 } from './radixSort.ts';
import { labelRegions } from './regions.ts';

/** A curve for plotting: x and y of each point, in walk order. */
export interface Curve {
  readonly x: Float64Array;
  readonly y: Float64Array;
}

/** Ranking metrics of binary labels against scores, as sklearn computes them. */
export interface RankingMetrics {
  /** roc_auc_score: the area under the ROC curve through every distinct threshold (ties give diagonal steps). */
  readonly auroc: number;
  /** average_precision_score: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds, step-wise. */
  readonly ap: number;
  /** max over precision_recall_curve of 2PR/(P+R), non-finite values dropped. */
  readonly f1Max: number;
  readonly positives: number;
  readonly negatives: number;
  /** ROC curve: x = FPR, y = TPR, from (0, 0) to (1, 1). */
  readonly roc: Curve;
  /** PR curve: x = recall, y = precision, starting at sklearn's (0, 1). */
  readonly pr: Curve;
}

/** ADer's cal_pro_score: PRO and FPR at its thresholds, and the AU-PRO it computes from them. */
export interface BenchmarkPro {
  readonly aupro: number;
  /** numpy.arange(min, max, (max − min)/maxStep) in float64. */
  readonly thresholds: Float64Array;
  readonly fpr: Float64Array;
  readonly pro: Float64Array;
}

/** The seven metrics of the paper's tables, their mean (mAD), all as the benchmark defines them. */
export interface PaperMetrics {
  readonly imageAuroc: number;
  readonly imageAp: number;
  readonly imageF1Max: number;
  readonly pixelAuroc: number;
  readonly pixelAp: number;
  /** The benchmark's grid F1-max (21 thresholds on min-max normalised maps). */
  readonly pixelF1Max: number;
  /** The benchmark's AU-PRO (ADer cal_pro_score). */
  readonly aupro: number;
  readonly mAD: number;
}

export type PaperMetricName = Exclude<keyof PaperMetrics, 'mAD'>;

/** ADer's result keys (metrics_expected.json) for the seven paper metrics. */
export const ADER_METRIC_KEYS = {
  imageAuroc: 'mAUROC_sp_max',
  imageAp: 'mAP_sp_max',
  imageF1Max: 'mF1_max_sp_max',
  pixelAuroc: 'mAUROC_px',
  pixelAp: 'mAP_px',
  pixelF1Max: 'mF1_max_px',
  aupro: 'mAUPRO_px',
} as const satisfies Record<PaperMetricName, string>;

export type AderMetricKey = (typeof ADER_METRIC_KEYS)[PaperMetricName];

export const PAPER_METRIC_NAMES = Object.keys(ADER_METRIC_KEYS) as PaperMetricName[];

export interface ClassMetrics {
  readonly className: string;
  readonly images: number;
  readonly defectImages: number;
  readonly pixels: number;
  readonly defectPixels: number;
  /** 8-connected ground-truth regions over all images of the class. */
  readonly regions: number;
  readonly image: RankingMetrics;
  /** Pixel-level ranking metrics over all pixels; `pixel.f1Max` is the F1-max of the exact PR curve. */
  readonly pixel: RankingMetrics;
  /** The benchmark's pixel F1-max: thresholds 0.05·i, i = 0..20, on the class's min-max normalised maps. */
  readonly pixelF1MaxGrid: number;
  readonly pixelF1Grid: { readonly thresholds: Float64Array; readonly f1: Float64Array };
  readonly proBenchmark: BenchmarkPro;
  /** MVTec AD's AU-PRO: the exact PRO curve integrated up to FPR 0.3 (interpolated there), divided by 0.3. */
  readonly auproMvtec: number;
  /** The exact PRO curve (x = FPR, y = PRO), downsampled for plotting. */
  readonly proCurve: Curve;
  readonly paper: PaperMetrics;
  readonly undefinedReasons: readonly string[];
}

export interface MetricsResult {
  readonly classes: readonly ClassMetrics[];
  /** Class mean (macro average) of each paper metric and of mAD. */
  readonly mean: PaperMetrics;
}

export interface MetricsOptions {
  readonly width: number;
  readonly height: number;
  /** ADer max_step_aupro; 100 in the official MambaAD config. */
  readonly auproMaxStep?: number;
  /** FPR limit of both AU-PROs; 0.3 in both definitions. */
  readonly auproFprLimit?: number;
  /** Plotted curves keep at most about 4 * curvePoints points. */
  readonly curvePoints?: number;
  /** Sizes of the chunks that pixel scores are stored and sorted in; small values only serve tests. */
  readonly minChunkElements?: number;
  readonly maxChunkElements?: number;
}

/** numpy.arange(start, stop, step) in float64: length ceil((stop − start)/step), values start + i·((start + step) − start). */
export function numpyArange(start: number, stop: number, step: number): Float64Array {
  const length = Math.ceil((stop - start) / step);
  if (!Number.isFinite(length))
    throw new RangeError(`numpyArange: length of (${start}, ${stop}, ${step}) is not finite`);
  const out = new Float64Array(Math.max(0, length));
  if (out.length === 0) return out;
  out[0] = start;
  if (out.length === 1) return out;
  const next = start + step;
  out[1] = next;
  // numpy fills from the first two elements, so the stride is their rounded difference, not `step` itself.
  const delta = next - start;
  for (let i = 2; i < out.length; i++) out[i] = start + i * delta;
  return out;
}

/** ADer's grid for the pixel F1-max: np.arange(0.0, 1.0 + 1e-3, 0.05). */
export const F1_GRID_THRESHOLDS: Float64Array = numpyArange(0, 1 + 1e-3, 0.05);

const ADER_EPS = 1e-8;

type SortedRun = Float32Array | Float64Array;

/** Neumaier-compensated summation: millions of terms still sum to within a few ulps. */
class CompensatedSum {
  private sum = 0;
  private compensation = 0;

  add(term: number): void {
    const total = this.sum + term;
    this.compensation += Math.abs(this.sum) >= Math.abs(term) ? this.sum - total + term : term - total + this.sum;
    this.sum = total;
  }

  get value(): number {
    return this.sum + this.compensation;
  }
}

/** Counts at one distinct positive score v, visited in descending order of v. */
class WalkStep {
  value = 0;
  /** Positives with score > v and >= v. */
  tpAbove = 0;
  tpAtOrAbove = 0;
  /** Negatives with score > v and >= v. */
  fpAbove = 0;
  fpAtOrAbove = 0;
  /** Σ 1/area(region) over positives with score > v and >= v: PRO·regions. */
  proAbove = 0;
  proAtOrAbove = 0;
}

interface RegionWeights {
  /** Per positive run, the region index of each element. */
  readonly payload: readonly Uint32Array[];
  readonly areas: Uint32Array;
}

/**
 * Visits every distinct positive score from the highest down, with exact counts of positives and negatives above and
 * at it. Negatives between two positive scores only move along a horizontal (ROC, PRO) or a vertical (PR) segment, so
 * visiting the positive scores is enough for every metric and every curve vertex. Runs are sorted ascending.
 */
function walkDescending(
  positives: readonly SortedRun[],
  negatives: readonly SortedRun[],
  regions: RegionWeights | undefined,
  visit: (step: WalkStep) => void,
): void {
  const positiveCursor = positives.map((run) => run.length);
  const negativeAtOrAbove = negatives.map((run) => run.length);
  const step = new WalkStep();
  let tp = 0;
  let fp = 0;
  const pro = new CompensatedSum();
  for (;;) {
    let value = Number.NEGATIVE_INFINITY;
    let found = false;
    for (let k = 0; k < positives.length; k++) {
      const cursor = positiveCursor[k]!;
      if (cursor > 0) {
        const head = positives[k]![cursor - 1]!;
        if (!found || head > value) value = head;
        found = true;
      }
    }
    if (!found) return;
    step.value = value;
    step.tpAbove = tp;
    step.proAbove = pro.value;
    for (let k = 0; k < positives.length; k++) {
      const run = positives[k]!;
      let cursor = positiveCursor[k]!;
      const payload = regions?.payload[k];
      while (cursor > 0 && run[cursor - 1] === value) {
        cursor -= 1;
        tp += 1;
        if (regions && payload) pro.add(1 / regions.areas[payload[cursor]!]!);
      }
      positiveCursor[k] = cursor;
    }
    let above = 0;
    let equal = 0;
    for (let k = 0; k < negatives.length; k++) {
      const run = negatives[k]!;
      let start = negativeAtOrAbove[k]!;
      while (start > 0 && run[start - 1]! > value) start -= 1;
      above += negativeAtOrAbove[k]! - start;
      let end = start;
      while (end > 0 && run[end - 1] === value) end -= 1;
      equal += start - end;
      negativeAtOrAbove[k] = end;
    }
    step.fpAbove = fp + above;
    fp += above + equal;
    step.fpAtOrAbove = fp;
    step.tpAtOrAbove = tp;
    step.proAtOrAbove = pro.value;
    visit(step);
  }
}

/** Keeps, per x bin, the first, last, lowest and highest point (in walk order): the plotted shape is unchanged. */
class CurveSampler {
  private readonly xs: number[] = [];
  private readonly ys: number[] = [];
  private bin = -1;
  private sequence = 0;
  // Pending points of the current bin: [sequence, x, y] for first, lowest, highest, last.
  private readonly pending = new Float64Array(12);

  constructor(private readonly bins: number) {}

  add(x: number, y: number): void {
    const bin = Math.min(this.bins - 1, Math.max(0, Math.floor(x * this.bins)));
    const s = this.sequence++;
    if (bin !== this.bin) {
      this.flush();
      this.bin = bin;
      for (let slot = 0; slot < 4; slot++) this.keep(slot, s, x, y);
      return;
    }
    if (y < this.pending[5]!) this.keep(1, s, x, y);
    if (y > this.pending[8]!) this.keep(2, s, x, y);
    this.keep(3, s, x, y);
  }

  private keep(slot: number, sequence: number, x: number, y: number): void {
    this.pending[3 * slot] = sequence;
    this.pending[3 * slot + 1] = x;
    this.pending[3 * slot + 2] = y;
  }

  private flush(): void {
    if (this.bin < 0) return;
    const p = this.pending;
    const order = [0, 1, 2, 3].sort((a, b) => p[3 * a]! - p[3 * b]!);
    let last = -1;
    for (const slot of order) {
      const s = p[3 * slot]!;
      if (s === last) continue;
      last = s;
      this.xs.push(p[3 * slot + 1]!);
      this.ys.push(p[3 * slot + 2]!);
    }
  }

  finish(): Curve {
    this.flush();
    this.bin = -1;
    return { x: Float64Array.from(this.xs), y: Float64Array.from(this.ys) };
  }
}

/** AUROC, AP, F1-max and the ROC and PR curves, accumulated over a descending walk. */
class RankingAccumulator {
  private twiceU = 0;
  private readonly ap = new CompensatedSum();
  private f1Max = 0;
  private readonly roc: CurveSampler;
  private readonly pr: CurveSampler;

  constructor(
    private readonly positives: number,
    private readonly negatives: number,
    curvePoints: number,
  ) {
    this.roc = new CurveSampler(curvePoints);
    this.pr = new CurveSampler(curvePoints);
    if (negatives > 0) this.roc.add(0, 0);
    if (positives > 0) this.pr.add(0, 1);
  }

  visit(step: WalkStep): void {
    const P = this.positives;
    const N = this.negatives;
    const tiedPositives = step.tpAtOrAbove - step.tpAbove;
    const tiedNegatives = step.fpAtOrAbove - step.fpAbove;
    // Mann-Whitney: a positive beats each lower negative and half-beats each tied one; doubled to stay integral.
    this.twiceU += tiedPositives * (2 * (N - step.fpAtOrAbove) + tiedNegatives);
    // sklearn's precision_recall_curve expressions, term by term.
    const precision = step.tpAtOrAbove / (step.tpAtOrAbove + step.fpAtOrAbove);
    const recall = step.tpAtOrAbove / P;
    this.ap.add((tiedPositives / P) * precision);
    const f1 = (2 * precision * recall) / (precision + recall);
    if (f1 > this.f1Max) this.f1Max = f1;
    if (N > 0) {
      this.roc.add(step.fpAbove / N, step.tpAbove / P);
      this.roc.add(step.fpAtOrAbove / N, recall);
    }
    if (step.tpAbove > 0) this.pr.add(step.tpAbove / P, step.tpAbove / (step.tpAbove + step.fpAbove));
    this.pr.add(recall, precision);
  }

  finish(): RankingMetrics {
    const P = this.positives;
    const N = this.negatives;
    if (N > 0) this.roc.add(1, 1);
    const defined = P > 0 && N > 0;
    return {
      auroc: defined ? this.twiceU / (2 * P * N) : Number.NaN,
      // With no negatives precision is 1 everywhere, as in sklearn; with no positives recall is undefined.
      ap: P > 0 ? this.ap.value : Number.NaN,
      f1Max: P > 0 ? this.f1Max : Number.NaN,
      positives: P,
      negatives: N,
      roc: this.roc.finish(),
      pr: this.pr.finish(),
    };
  }
}

/**
 * sklearn's roc_auc_score, average_precision_score and the F1-max of precision_recall_curve for 0/1 labels and
 * finite scores, with the ROC and PR curves. Undefined metrics are NaN: AUROC with one label only, AP and F1 with no
 * positive label. Throws for mismatched lengths, labels other than 0/1 and non-finite scores.
 */
export function rankingMetrics(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  curvePoints = 1000,
): RankingMetrics {
  if (labels.length !== scores.length) {
    throw new RangeError(`rankingMetrics: ${labels.length} labels but ${scores.length} scores`);
  }
  let positives = 0;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label !== 0 && label !== 1) throw new RangeError(`rankingMetrics: label ${i} is ${label}, not 0 or 1`);
    if (!Number.isFinite(scores[i]!)) throw new RangeError(`rankingMetrics: score ${i} is ${scores[i]}, not finite`);
    positives += label;
  }
  const positiveScores = new Float64Array(positives);
  const negativeScores = new Float64Array(labels.length - positives);
  let p = 0;
  let q = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 1) positiveScores[p++] = scores[i]!;
    else negativeScores[q++] = scores[i]!;
  }
  positiveScores.sort();
  negativeScores.sort();
  const ranking = new RankingAccumulator(positives, negativeScores.length, curvePoints);
  walkDescending([positiveScores], [negativeScores], undefined, (step) => ranking.visit(step));
  return ranking.finish();
}

/** First index of an ascending run whose element satisfies a predicate that is monotone (false, then true). */
function firstWhere(run: SortedRun, predicate: (value: number) => boolean): number {
  let low = 0;
  let high = run.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (predicate(run[mid]!)) high = mid;
    else low = mid + 1;
  }
  return low;
}

function countWhere(runs: readonly SortedRun[], predicate: (value: number) => boolean): number {
  let count = 0;
  for (const run of runs) count += run.length - firstWhere(run, predicate);
  return count;
}

/** sklearn.metrics.auc: trapezoid over x monotone either way (np.trapz, direction from the sign of the steps). */
function sklearnAuc(x: Float64Array, y: Float64Array): number {
  let anyDecrease = false;
  let anyIncrease = false;
  for (let i = 1; i < x.length; i++) {
    const dx = x[i]! - x[i - 1]!;
    if (dx < 0) anyDecrease = true;
    else if (dx > 0) anyIncrease = true;
  }
  if (anyDecrease && anyIncrease) throw new RangeError('auc: x is neither increasing nor decreasing');
  let area = 0;
  for (let i = 1; i < x.length; i++) area += ((x[i]! - x[i - 1]!) * (y[i]! + y[i - 1]!)) / 2.0;
  return anyDecrease ? -area : area;
}

/** The MVTec AD trapezoid (generic_util.trapezoid) of a PRO curve up to x = limit, fed one vertex at a time. */
class LimitedTrapezoid {
  private x0 = 0;
  private y0 = 0;
  private readonly area = new CompensatedSum();
  private done = false;

  constructor(private readonly limit: number) {}

  add(x: number, y: number): void {
    if (this.done) return;
    if (x <= this.limit) {
      this.area.add(0.5 * (y + this.y0) * (x - this.x0));
      this.x0 = x;
      this.y0 = y;
      return;
    }
    // The first vertex past the limit: interpolate there, unless a vertex lies exactly on it.
    if (this.x0 < this.limit) {
      const yLimit = this.y0 + ((y - this.y0) * (this.limit - this.x0)) / (x - this.x0);
      this.area.add(0.5 * (yLimit + this.y0) * (this.limit - this.x0));
    }
    this.done = true;
  }

  get value(): number {
    return this.area.value;
  }
}

/** Float32 values in sorted runs: filled chunk by chunk, each chunk radix-sorted when full. */
class SortedRunStore {
  private readonly runs: Float32Array[] = [];
  private readonly payloadRuns: Uint32Array[] = [];
  private chunk: Float32Array;
  private chunkPayload: Uint32Array | undefined;
  private fill = 0;
  private sortedFill = -1;

  constructor(
    private readonly withPayload: boolean,
    private readonly minChunk: number,
    private readonly maxChunk: number,
    private readonly scratch: RadixScratch,
  ) {
    this.chunk = new Float32Array(0);
  }

  get length(): number {
    let total = this.fill;
    for (const run of this.runs) total += run.length;
    return total;
  }

  get bytes(): number {
    let total = this.chunk.byteLength + (this.chunkPayload?.byteLength ?? 0);
    for (const run of this.runs) total += run.byteLength;
    for (const run of this.payloadRuns) total += run.byteLength;
    return total;
  }

  /** Appends values (and, for a store with payload, their payload), filling and sorting chunks as they fill. */
  append(values: Float32Array, payload?: Uint32Array): void {
    if (this.withPayload !== (payload !== undefined)) {
      throw new Error(
        `SortedRunStore: payload ${payload ? 'given to a store without' : 'missing for a store with'} payload`,
      );
    }
    let offset = 0;
    while (offset < values.length) {
      if (this.fill === this.chunk.length) this.startChunk();
      const take = Math.min(this.chunk.length - this.fill, values.length - offset);
      this.chunk.set(values.subarray(offset, offset + take), this.fill);
      if (payload && this.chunkPayload) this.chunkPayload.set(payload.subarray(offset, offset + take), this.fill);
      this.fill += take;
      offset += take;
    }
  }

  private startChunk(): void {
    if (this.fill > 0) {
      // A finalize may already have sorted the whole chunk.
      if (this.sortedFill !== this.fill) radixSortFloat32(this.chunk, this.scratch, this.chunkPayload);
      this.runs.push(this.chunk);
      if (this.chunkPayload) this.payloadRuns.push(this.chunkPayload);
    }
    const size = Math.min(this.maxChunk, Math.max(this.minChunk, 2 * this.chunk.length));
    this.chunk = new Float32Array(size);
    this.chunkPayload = this.withPayload ? new Uint32Array(size) : undefined;
    this.fill = 0;
    this.sortedFill = -1;
  }

  /** All runs, sorted. The chunk being filled is sorted in place and keeps filling after it. */
  sortedRuns(): { values: Float32Array[]; payload: Uint32Array[] } {
    const values = [...this.runs];
    const payload = [...this.payloadRuns];
    if (this.fill > 0) {
      const chunkPayload = this.chunkPayload?.subarray(0, this.fill);
      if (this.sortedFill !== this.fill) {
        radixSortFloat32(this.chunk.subarray(0, this.fill), this.scratch, chunkPayload);
        this.sortedFill = this.fill;
      }
      values.push(this.chunk.subarray(0, this.fill));
      if (chunkPayload) payload.push(chunkPayload);
    }
    return { values, payload };
  }
}

/** Per-image work buffers, shared by all classes: region labels and the image's pixels split by the mask. */
class Staging {
  readonly labels: Int32Array;
  readonly normal: Float32Array;
  readonly defective: Float32Array;
  readonly regionOfDefective: Uint32Array;

  constructor(pixels: number) {
    this.labels = new Int32Array(pixels);
    this.normal = new Float32Array(pixels);
    this.defective = new Float32Array(pixels);
    this.regionOfDefective = new Uint32Array(pixels);
  }

  get bytes(): number {
    // labelRegions also allocates pixels + 1 Int32 of union-find parents per image.
    return 5 * this.labels.byteLength + 4;
  }
}

interface ResolvedOptions {
  readonly width: number;
  readonly height: number;
  readonly auproMaxStep: number;
  readonly auproFprLimit: number;
  readonly curvePoints: number;
  readonly minChunkElements: number;
  readonly maxChunkElements: number;
}

/** Everything one class's metrics need, gathered image by image; the maps and masks themselves are not kept. */
class ClassAccumulator {
  private readonly imageScores: number[] = [];
  private readonly imageLabels: number[] = [];
  private readonly negatives: SortedRunStore;
  private readonly positives: SortedRunStore;
  private regionAreas = new Uint32Array(1024);
  private regionCount = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;

  constructor(
    readonly className: string,
    private readonly options: ResolvedOptions,
    private readonly staging: Staging,
    scratch: RadixScratch,
  ) {
    this.negatives = new SortedRunStore(false, options.minChunkElements, options.maxChunkElements, scratch);
    this.positives = new SortedRunStore(true, options.minChunkElements, options.maxChunkElements, scratch);
  }

  get images(): number {
    return this.imageScores.length;
  }

  get bytes(): number {
    return this.negatives.bytes + this.positives.bytes + this.regionAreas.byteLength + 16 * this.imageScores.length;
  }

  add(map: Float32Array, mask: Uint8Array, label: number, what: string): void {
    const { width, height } = this.options;
    const n = width * height;
    if (map.length !== n) throw new RangeError(`${what}: map has ${map.length} values, ${width}x${height} needs ${n}`);
    if (mask.length !== n)
      throw new RangeError(`${what}: mask has ${mask.length} values, ${width}x${height} needs ${n}`);
    if (label !== 0 && label !== 1) throw new RangeError(`${what}: label is ${label}, not 0 or 1`);
    let score = Number.NEGATIVE_INFINITY;
    let min = this.min;
    let defect = 0;
    for (let i = 0; i < n; i++) {
      const value = map[i]!;
      // NaN and ±Infinity both fail this test.
      if (value - value !== 0) throw new RangeError(`${what}: map value at pixel ${i} is ${value}, not finite`);
      if (value > score) score = value;
      if (value < min) min = value;
      const m = mask[i]!;
      if (m > 1) throw new RangeError(`${what}: mask value ${m} at pixel ${i}; masks must be binarised to 0/1`);
      defect |= m;
    }
    if (label !== defect) {
      throw new RangeError(
        `${what}: label ${label} disagrees with its mask (${defect ? 'has' : 'has no'} defect pixels); the benchmark's image label is max(mask)`,
      );
    }
    this.min = min;
    if (score > this.max) this.max = score;
    this.imageScores.push(score);
    this.imageLabels.push(label);
    if (!defect) {
      this.negatives.append(map);
      return;
    }
    const { labels, count } = labelRegions(mask, width, height, this.staging.labels);
    const firstRegion = this.regionCount;
    if (this.regionAreas.length < firstRegion + count) {
      const grown = new Uint32Array(Math.max(2 * this.regionAreas.length, firstRegion + count));
      grown.set(this.regionAreas.subarray(0, firstRegion));
      this.regionAreas = grown;
    }
    const areas = this.regionAreas;
    const { normal, defective, regionOfDefective } = this.staging;
    let normalCount = 0;
    let defectiveCount = 0;
    for (let i = 0; i < n; i++) {
      const region = labels[i]!;
      if (region === 0) {
        normal[normalCount++] = map[i]!;
      } else {
        const index = firstRegion + region - 1;
        areas[index]! += 1;
        defective[defectiveCount] = map[i]!;
        regionOfDefective[defectiveCount++] = index;
      }
    }
    this.negatives.append(normal.subarray(0, normalCount));
    this.positives.append(defective.subarray(0, defectiveCount), regionOfDefective.subarray(0, defectiveCount));
    this.regionCount = firstRegion + count;
  }

  finalize(): ClassMetrics {
    const { auproMaxStep, auproFprLimit, curvePoints } = this.options;
    const reasons: string[] = [];
    const images = this.imageScores.length;
    const image = rankingMetrics(this.imageLabels, this.imageScores, curvePoints);
    if (image.positives === 0) reasons.push(`image AUROC, AP and F1-max: all ${images} images are good`);
    else if (image.negatives === 0) reasons.push(`image AUROC: all ${images} images are defective`);

    const positiveRuns = this.positives.sortedRuns();
    const negativeRuns = this.negatives.sortedRuns().values;
    const P = this.positives.length;
    const N = this.negatives.length;
    const R = this.regionCount;
    if (P === 0) reasons.push('pixel AUROC, AP, F1-max and both AU-PROs: no defect pixels');
    if (N === 0) reasons.push('pixel AUROC and both AU-PROs: no normal pixels');

    const ranking = new RankingAccumulator(P, N, curvePoints);
    const mvtec = new LimitedTrapezoid(auproFprLimit);
    const proCurve = new CurveSampler(curvePoints);
    // ADer's thresholds, ascending; PRO·R above each is recorded when the walk passes below it.
    const range = this.max - this.min;
    const thresholds = range > 0 ? numpyArange(this.min, this.max, range / auproMaxStep) : new Float64Array(0);
    const proAboveThreshold = new Float64Array(thresholds.length);
    let nextThreshold = thresholds.length - 1;
    const proDefined = P > 0 && N > 0;
    if (proDefined) proCurve.add(0, 0);
    const proVertex = (fp: number, pro: number) => {
      if (!proDefined) return;
      const x = fp / N;
      const y = Math.min(1, pro / R);
      mvtec.add(x, y);
      proCurve.add(x, y);
    };
    let totalPro = 0;
    walkDescending(
      positiveRuns.values,
      negativeRuns,
      { payload: positiveRuns.payload, areas: this.regionAreas },
      (step) => {
        ranking.visit(step);
        proVertex(step.fpAbove, step.proAbove);
        proVertex(step.fpAtOrAbove, step.proAtOrAbove);
        while (nextThreshold >= 0 && thresholds[nextThreshold]! >= step.value) {
          proAboveThreshold[nextThreshold] = step.proAbove;
          nextThreshold -= 1;
        }
        totalPro = step.proAtOrAbove;
      },
    );
    while (nextThreshold >= 0) proAboveThreshold[nextThreshold--] = totalPro;
    proVertex(N, totalPro);
    const pixel = ranking.finish();

    const pixelF1Grid = this.gridF1(positiveRuns.values, negativeRuns, P, range, reasons);
    const fpr = thresholds.map((threshold) => countWhere(negativeRuns, (v) => v > threshold) / N);
    const pro = proAboveThreshold.map((sum) => sum / R);
    const aupro = this.benchmarkAupro(fpr, pro, range, reasons);
    const auproMvtec = proDefined ? mvtec.value / auproFprLimit : Number.NaN;

    const seven: Omit<PaperMetrics, 'mAD'> = {
      imageAuroc: image.auroc,
      imageAp: image.ap,
      imageF1Max: image.f1Max,
      pixelAuroc: pixel.auroc,
      pixelAp: pixel.ap,
      pixelF1Max: pixelF1Grid.max,
      aupro,
    };
    return {
      className: this.className,
      images,
      defectImages: image.positives,
      pixels: P + N,
      defectPixels: P,
      regions: R,
      image,
      pixel,
      pixelF1MaxGrid: pixelF1Grid.max,
      pixelF1Grid: { thresholds: F1_GRID_THRESHOLDS, f1: pixelF1Grid.f1 },
      proBenchmark: { aupro, thresholds, fpr, pro },
      auproMvtec,
      proCurve: proCurve.finish(),
      paper: { ...seven, mAD: mean(PAPER_METRIC_NAMES.map((name) => seven[name])) },
      undefinedReasons: reasons,
    };
  }

  /** ADer's mF1_max_px: pooled counts at 21 thresholds on (v − min)/(max − min), with its 1e-8 epsilons. */
  private gridF1(
    positives: readonly SortedRun[],
    negatives: readonly SortedRun[],
    P: number,
    range: number,
    reasons: string[],
  ): { max: number; f1: Float64Array } {
    const f1 = new Float64Array(F1_GRID_THRESHOLDS.length).fill(Number.NaN);
    if (P === 0) return { max: Number.NaN, f1 };
    if (!(range > 0)) {
      reasons.push(
        'pixel F1-max (grid) and AU-PRO (benchmark): all pixel scores are equal, min-max normalisation divides by zero',
      );
      return { max: Number.NaN, f1 };
    }
    const min = this.min;
    let max = Number.NEGATIVE_INFINITY;
    F1_GRID_THRESHOLDS.forEach((threshold, i) => {
      // (v − min)/range rounds monotonically in v, so "normalised > threshold" is a suffix of each sorted run.
      const above = (v: number) => (v - min) / range > threshold;
      const intersection = countWhere(positives, above);
      const predicted = intersection + countWhere(negatives, above);
      const precision = intersection / (predicted + ADER_EPS);
      const recall = intersection / (P + ADER_EPS);
      const value = (2 * precision * recall) / (precision + recall + ADER_EPS);
      f1[i] = value;
      if (value > max) max = value;
    });
    return { max, f1 };
  }

  /** ADer's cal_pro_score from PRO and FPR at its thresholds: FPR < limit kept, stretched to [0, 1], sklearn auc. */
  private benchmarkAupro(fpr: Float64Array, pro: Float64Array, range: number, reasons: string[]): number {
    if (this.positives.length === 0 || this.negatives.length === 0 || !(range > 0)) return Number.NaN;
    const limit = this.options.auproFprLimit;
    const kept: number[] = [];
    fpr.forEach((value, i) => {
      if (value < limit) kept.push(i);
    });
    if (kept.length < 2) {
      reasons.push(
        `AU-PRO (benchmark): ${kept.length} of ${fpr.length} thresholds have FPR < ${limit}, at least 2 needed`,
      );
      return Number.NaN;
    }
    let low = Number.POSITIVE_INFINITY;
    let high = Number.NEGATIVE_INFINITY;
    for (const i of kept) {
      low = Math.min(low, fpr[i]!);
      high = Math.max(high, fpr[i]!);
    }
    if (!(high > low)) {
      reasons.push(
        `AU-PRO (benchmark): every kept threshold has the same FPR (${low}), the FPR stretch divides by zero`,
      );
      return Number.NaN;
    }
    const x = Float64Array.from(kept, (i) => (fpr[i]! - low) / (high - low));
    const y = Float64Array.from(kept, (i) => pro[i]!);
    return sklearnAuc(x, y);
  }
}

function mean(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

/**
 * Streams test images in, class by class, and computes every class's metrics and their class mean.
 * Image label = max(mask), image score = max(map), as the benchmark defines them.
 */
export class MetricsAccumulator {
  private readonly options: ResolvedOptions;
  private readonly classes = new Map<string, ClassAccumulator>();
  private readonly staging: Staging;
  private readonly scratch = new RadixScratch();

  constructor(options: MetricsOptions) {
    const { width, height } = options;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
      throw new RangeError(`MetricsAccumulator: width and height must be positive integers, got ${width}x${height}`);
    }
    const auproMaxStep = options.auproMaxStep ?? 100;
    if (!Number.isInteger(auproMaxStep) || auproMaxStep < 1) {
      throw new RangeError(`MetricsAccumulator: auproMaxStep must be a positive integer, got ${auproMaxStep}`);
    }
    const maxChunkElements = options.maxChunkElements ?? 1 << 23;
    this.options = {
      width,
      height,
      auproMaxStep,
      auproFprLimit: options.auproFprLimit ?? 0.3,
      curvePoints: options.curvePoints ?? 1000,
      minChunkElements: Math.min(options.minChunkElements ?? 1 << 16, maxChunkElements),
      maxChunkElements,
    };
    this.staging = new Staging(width * height);
  }

  /** Adds one test image: its anomaly map (width·height, row-major), binary 0/1 mask, 0/1 label, class name. */
  add(map: Float32Array, mask: Uint8Array, label: 0 | 1, className: string): void {
    let target = this.classes.get(className);
    const what = `class "${className}" image ${target ? target.images : 0}`;
    if (!target) {
      target = new ClassAccumulator(className, this.options, this.staging, this.scratch);
      this.classes.set(className, target);
    }
    target.add(map, mask, label, what);
  }

  get classNames(): string[] {
    return [...this.classes.keys()];
  }

  /** Bytes held in typed arrays by the stored scores and the work buffers; finalize() adds only small arrays. */
  get bytes(): number {
    let total = this.staging.bytes + this.scratch.bytes;
    for (const accumulator of this.classes.values()) total += accumulator.bytes;
    return total;
  }

  finalizeClass(className: string): ClassMetrics {
    const accumulator = this.classes.get(className);
    if (!accumulator) throw new RangeError(`finalizeClass: no images were added for class "${className}"`);
    return accumulator.finalize();
  }

  /** Every class's metrics (in order of first appearance) and the class mean. Throws when no image was added. */
  finalize(): MetricsResult {
    if (this.classes.size === 0) throw new RangeError('MetricsAccumulator.finalize: no images were added');
    const classes = [...this.classes.keys()].map((name) => this.finalizeClass(name));
    const meanOf = (name: keyof PaperMetrics) => mean(classes.map((c) => c.paper[name]));
    const seven = Object.fromEntries(PAPER_METRIC_NAMES.map((name) => [name, meanOf(name)])) as Record<
      PaperMetricName,
      number
    >;
    return { classes, mean: { ...seven, mAD: meanOf('mAD') } };
  }
}

/** The paper metrics under ADer's result keys, as in metrics_expected.json. */
export function toAderKeys(metrics: PaperMetrics): Record<AderMetricKey, number> {
  return Object.fromEntries(PAPER_METRIC_NAMES.map((name) => [ADER_METRIC_KEYS[name], metrics[name]])) as Record<
    AderMetricKey,
    number
  >;
}
