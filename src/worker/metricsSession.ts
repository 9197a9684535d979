import { type ClassMetrics, MetricsAccumulator, PAPER_METRIC_NAMES, type PaperMetrics } from '../anomaly/metrics.ts';
import { MODEL_INPUT_SIZE, preprocessMask } from '../image/preprocess.ts';
import { AdaptiveHistogram } from './adaptiveHistogram.ts';
import type { ClassSummary, DefinitionMetrics, EvaluationSummary, MetricsImage } from './metricsProtocol.ts';

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** The exact definitions: F1-max over every distinct pixel score, MVTec AD's AU-PRO. */
function standardMetrics(c: ClassMetrics): PaperMetrics {
  const seven: Omit<PaperMetrics, 'mAD'> = {
    imageAuroc: c.image.auroc,
    imageAp: c.image.ap,
    imageF1Max: c.image.f1Max,
    pixelAuroc: c.pixel.auroc,
    pixelAp: c.pixel.ap,
    pixelF1Max: c.pixel.f1Max,
    aupro: c.auproMvtec,
  };
  return { ...seven, mAD: mean(PAPER_METRIC_NAMES.map((name) => seven[name])) };
}

function classMean(classes: readonly ClassSummary[], definition: keyof DefinitionMetrics): PaperMetrics {
  const names: (keyof PaperMetrics)[] = [...PAPER_METRIC_NAMES, 'mAD'];
  return Object.fromEntries(names.map((name) => [name, mean(classes.map((c) => c[definition][name]))])) as Record<
    keyof PaperMetrics,
    number
  >;
}

/**
 * The metrics worker's state for one evaluation: the exact metrics accumulator, one pooled pixel-score histogram,
 * and each image's score and label; images arrive one by one as the engine produces their maps. Pure (no worker
 * API), so it runs the same in Node tests.
 */
export class MetricsSession {
  private readonly accumulator = new MetricsAccumulator({ width: MODEL_INPUT_SIZE, height: MODEL_INPUT_SIZE });
  private readonly histogram = new AdaptiveHistogram();
  private readonly scores = new Map<string, { score: number; label: 0 | 1 }[]>();
  private readonly skipped: { name: string; error: string }[] = [];
  private readonly emptyMasks: string[] = [];
  private readonly goodMask = new Uint8Array(MODEL_INPUT_SIZE * MODEL_INPUT_SIZE);

  /** Adds one image; an image that cannot be used (bad map, undecodable mask) is recorded as skipped. */
  async add(image: MetricsImage): Promise<void> {
    try {
      await this.addOrThrow(image);
    } catch (error) {
      this.skipped.push({ name: image.name, error: error instanceof Error ? error.message : String(error) });
    }
  }

  private async addOrThrow({ name, className, map, size, mask: maskFile }: MetricsImage): Promise<void> {
    if (size !== MODEL_INPUT_SIZE || map.length !== size * size) {
      throw new RangeError(`the anomaly map is ${size}x${size} (${map.length} values), expected ${MODEL_INPUT_SIZE}²`);
    }
    let mask: Uint8Array = this.goodMask;
    if (maskFile) {
      try {
        const bytes = maskFile instanceof Blob ? new Uint8Array(await maskFile.arrayBuffer()) : maskFile;
        mask = (await preprocessMask(bytes)).mask;
      } catch (error) {
        throw new Error(`its mask cannot be read: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    // The benchmark's image label is max(mask): a defect whose mask vanishes at 256x256 counts as good.
    const label = mask.includes(1) ? 1 : 0;
    if (maskFile && label === 0) this.emptyMasks.push(name);
    // The accumulator checks the map (finite values) before the histogram sees it.
    this.accumulator.add(map, mask, label, className);
    this.histogram.add(map, mask);
    let score = Number.NEGATIVE_INFINITY;
    for (const value of map) if (value > score) score = value;
    const classScores = this.scores.get(className) ?? [];
    classScores.push({ score, label });
    this.scores.set(className, classScores);
  }

  get images(): number {
    let total = 0;
    for (const list of this.scores.values()) total += list.length;
    return total;
  }

  /** Every class's metrics and curves, their means, the pooled histogram. Throws when no image was added. */
  summarize(): EvaluationSummary {
    if (this.images === 0) {
      const reasons = this.skipped.slice(0, 3).map((s) => `${s.name}: ${s.error}`);
      throw new Error(`no image could be evaluated${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}`);
    }
    const result = this.accumulator.finalize();
    const classes = result.classes.map((c): ClassSummary => {
      const sorted = [...(this.scores.get(c.className) ?? [])].sort((a, b) => a.score - b.score);
      return {
        className: c.className,
        images: c.images,
        defectImages: c.defectImages,
        pixels: c.pixels,
        defectPixels: c.defectPixels,
        regions: c.regions,
        undefinedReasons: [...c.undefinedReasons],
        benchmark: c.paper,
        standard: standardMetrics(c),
        imageRoc: c.image.roc,
        imagePr: c.image.pr,
        pixelRoc: c.pixel.roc,
        pixelPr: c.pixel.pr,
        pro: c.proCurve,
        imageScores: Float64Array.from(sorted, (s) => s.score),
        imageLabels: Uint8Array.from(sorted, (s) => s.label),
      };
    });
    return {
      classes,
      mean: { benchmark: result.mean, standard: classMean(classes, 'standard') },
      pixelHistogram: this.histogram.result(),
      skipped: [...this.skipped],
      emptyMasks: [...this.emptyMasks],
    };
  }
}
