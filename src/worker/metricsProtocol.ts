/**
 * Messages between the studio and the metrics worker (src/worker/metricsWorker.ts), and the compact summary the
 * worker hands back: everything the Evaluate screen shows, small enough to send once (curves downsampled, image
 * scores, one pooled histogram of pixel scores), so the main thread never touches per-pixel data.
 */
import type { Curve, PaperMetrics } from '../anomaly/metrics.ts';

/** One analysed test image: its anomaly map and, for a defective image, its ground-truth mask file. */
export interface MetricsImage {
  /** Shown in messages about this image. */
  name: string;
  className: string;
  /** size x size row-major anomaly map (the engine's final map). */
  map: Float32Array;
  size: number;
  /** The mask file (read and decoded in the worker); absent for a good image (an all-zero mask). */
  mask?: Uint8Array | Blob;
}

export type MetricsRequest =
  | { type: 'reset' }
  | { type: 'add'; image: MetricsImage }
  | { type: 'summarize'; id: number };

export type MetricsResponse =
  | { type: 'summary'; id: number; summary: EvaluationSummary }
  | { type: 'failed'; id: number; error: string };

/**
 * Pixel scores of every class pooled on one grid of equal bins: bin i holds the scores in [edges[i], edges[i+1]).
 * Pixel counts at or above an edge are exact, so the live threshold figures are exact at the edges.
 */
export interface PixelScoreHistogram {
  /** bins + 1 ascending edges. */
  edges: Float64Array;
  normal: Float64Array;
  defect: Float64Array;
}

/** The seven metrics under both definitions: the benchmark's (as the paper reports them) and the exact ones. */
export interface DefinitionMetrics {
  /** ADer's evaluator: grid F1-max over 21 thresholds of min-max normalised maps, AU-PRO at 100 thresholds. */
  benchmark: PaperMetrics;
  /** Exact: pixel F1-max over every distinct score, MVTec AD's AU-PRO (exact PRO curve up to FPR 0.3). */
  standard: PaperMetrics;
}

export interface ClassSummary extends DefinitionMetrics {
  className: string;
  images: number;
  defectImages: number;
  pixels: number;
  defectPixels: number;
  regions: number;
  /** Why a metric is NaN (too few labels, no defect pixels, ...). */
  undefinedReasons: string[];
  imageRoc: Curve;
  imagePr: Curve;
  pixelRoc: Curve;
  pixelPr: Curve;
  /** The exact PRO curve (x = FPR, y = PRO). */
  pro: Curve;
  /** Image scores (max of the map), ascending, with each image's label (1 = defective) beside it. */
  imageScores: Float64Array;
  imageLabels: Uint8Array;
}

export interface EvaluationSummary {
  classes: ClassSummary[];
  /** Class means (macro averages), as the paper's tables report them. */
  mean: DefinitionMetrics;
  pixelHistogram: PixelScoreHistogram;
  /** Images left out of the metrics, with the reason (a mask that cannot be decoded, ...). */
  skipped: { name: string; error: string }[];
  /** Images whose folder says defective but whose mask is empty at 256x256: counted as good, as the benchmark does. */
  emptyMasks: string[];
}
