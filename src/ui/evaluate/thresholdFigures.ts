import type { ClassSummary, PixelScoreHistogram } from '../../worker/metricsProtocol.ts';

/** Confusion counts of "anomalous when score >= threshold" on the labelled set, and the figures from them. */
export interface BinaryFigures {
  truePositives: number;
  falsePositives: number;
  positives: number;
  negatives: number;
  /** NaN when nothing is flagged. */
  precision: number;
  /** NaN when there is no positive. */
  recall: number;
  /** 0 when nothing is flagged correctly. */
  f1: number;
  /** NaN when there is no negative. */
  fpr: number;
}

function binaryFigures(truePositives: number, falsePositives: number, positives: number, negatives: number) {
  const flagged = truePositives + falsePositives;
  const precision = flagged > 0 ? truePositives / flagged : Number.NaN;
  const recall = positives > 0 ? truePositives / positives : Number.NaN;
  return {
    truePositives,
    falsePositives,
    positives,
    negatives,
    precision,
    recall,
    f1: truePositives > 0 ? (2 * precision * recall) / (precision + recall) : 0,
    fpr: negatives > 0 ? falsePositives / negatives : Number.NaN,
  };
}

/** counts[i..] summed for every i: suffix[i] = Σ_{j >= i} counts[j], suffix[length] = 0. */
function suffixSums(counts: ArrayLike<number>): Float64Array {
  const suffix = new Float64Array(counts.length + 1);
  for (let i = counts.length - 1; i >= 0; i--) suffix[i] = suffix[i + 1]! + counts[i]!;
  return suffix;
}

/** First index of an ascending array whose value is >= x. */
function lowerBound(sorted: Float64Array, x: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! < x) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * The live figures behind the threshold slider, from the metrics worker's compact summary: the image scores of
 * every class pooled and sorted, and the pooled pixel histogram. The slider's positions are the histogram's edges,
 * where the pixel counts are exact; each figure is O(log n) (image) or O(1) (pixel).
 */
export class ThresholdFigures {
  readonly edges: Float64Array;
  private readonly imageScores: Float64Array;
  private readonly defectImagesFrom: Float64Array;
  private readonly normalPixelsFrom: Float64Array;
  private readonly defectPixelsFrom: Float64Array;

  constructor(summary: {
    classes: readonly Pick<ClassSummary, 'imageScores' | 'imageLabels'>[];
    pixelHistogram: PixelScoreHistogram;
  }) {
    this.edges = summary.pixelHistogram.edges;
    const pooled = summary.classes
      .flatMap((c) => Array.from(c.imageScores, (score, i) => ({ score, label: c.imageLabels[i]! })))
      .sort((a, b) => a.score - b.score);
    this.imageScores = Float64Array.from(pooled, (p) => p.score);
    this.defectImagesFrom = suffixSums(pooled.map((p) => p.label));
    this.normalPixelsFrom = suffixSums(summary.pixelHistogram.normal);
    this.defectPixelsFrom = suffixSums(summary.pixelHistogram.defect);
  }

  /** Slider positions: 0 .. edges.length - 1. */
  get positions(): number {
    return this.edges.length;
  }

  threshold(position: number): number {
    return this.edges[position]!;
  }

  /** The position whose edge is nearest to `value` (clamped to the range). */
  nearestPosition(value: number): number {
    const i = lowerBound(this.edges, value);
    if (i === 0) return 0;
    if (i === this.edges.length) return this.edges.length - 1;
    return value - this.edges[i - 1]! <= this.edges[i]! - value ? i - 1 : i;
  }

  image(position: number): BinaryFigures {
    const from = lowerBound(this.imageScores, this.threshold(position));
    const flagged = this.imageScores.length - from;
    const truePositives = this.defectImagesFrom[from]!;
    const positives = this.defectImagesFrom[0]!;
    return binaryFigures(truePositives, flagged - truePositives, positives, this.imageScores.length - positives);
  }

  pixel(position: number): BinaryFigures {
    return binaryFigures(
      this.defectPixelsFrom[position]!,
      this.normalPixelsFrom[position]!,
      this.defectPixelsFrom[0]!,
      this.normalPixelsFrom[0]!,
    );
  }

  /** The position with the highest F1 at the image or pixel level (the lowest threshold among ties). */
  bestF1Position(level: 'image' | 'pixel'): number {
    let best = 0;
    let bestF1 = -1;
    for (let position = 0; position < this.positions; position++) {
      const { f1 } = this[level](position);
      if (f1 > bestF1) {
        bestF1 = f1;
        best = position;
      }
    }
    return best;
  }
}
