import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MODEL_INPUT_SIZE, preprocessMask } from '../../image/preprocess.ts';
import { seededRandom } from '../../util/random.ts';
import { MetricsSession } from '../../worker/metricsSession.ts';
import { ThresholdFigures } from './thresholdFigures.ts';

/** Only the fields ThresholdFigures reads: image scores per class and the pooled histogram. */
function compactSummary() {
  const classOf = (scores: number[], labels: number[]) => ({
    imageScores: Float64Array.from(scores),
    imageLabels: Uint8Array.from(labels),
  });
  return {
    classes: [classOf([0.1, 0.5, 0.7], [0, 1, 1]), classOf([0.3, 0.6], [0, 0])],
    pixelHistogram: {
      edges: Float64Array.of(0, 0.25, 0.5, 0.75, 1),
      normal: Float64Array.of(10, 5, 2, 0),
      defect: Float64Array.of(0, 1, 3, 4),
    },
  };
}

describe('ThresholdFigures', () => {
  it('counts images and pixels at or above the threshold (hand-computed)', () => {
    const figures = new ThresholdFigures(compactSummary());
    expect(figures.positions).toBe(5);
    expect(figures.threshold(2)).toBe(0.5);
    // Images >= 0.5: 0.5 and 0.7 (defective), 0.6 (good) of 2 defective and 3 good.
    const image = figures.image(2);
    expect([image.truePositives, image.falsePositives, image.positives, image.negatives]).toEqual([2, 1, 2, 3]);
    expect(image.precision).toBeCloseTo(2 / 3, 15);
    expect(image.recall).toBe(1);
    expect(image.f1).toBeCloseTo(0.8, 15);
    expect(image.fpr).toBeCloseTo(1 / 3, 15);
    // Pixels in the bins from 0.5 up: 3 + 4 defect of 8, 2 + 0 normal of 17.
    const pixel = figures.pixel(2);
    expect(pixel.precision).toBeCloseTo(7 / 9, 15);
    expect(pixel.recall).toBeCloseTo(7 / 8, 15);
    expect(pixel.fpr).toBeCloseTo(2 / 17, 15);
    // Past the top edge nothing is flagged: precision undefined, F1 0.
    const none = figures.pixel(4);
    expect([none.truePositives, none.falsePositives, none.f1, none.recall]).toEqual([0, 0, 0, 0]);
    expect(none.precision).toBeNaN();
    expect(figures.image(0).recall).toBe(1);
    expect(figures.image(0).fpr).toBe(1);
  });

  it('finds the nearest edge and the best-F1 position', () => {
    const figures = new ThresholdFigures(compactSummary());
    expect([-1, 0.1, 0.13, 0.6, 5].map((v) => figures.nearestPosition(v))).toEqual([0, 0, 1, 2, 4]);
    // Image F1 at 0.25: 2 of 3 flagged are defective (0.3 good) plus 0.6: P 2/4, R 1 → 2/3; at 0.5: 0.8; at 0.75: 0.
    expect(figures.bestF1Position('image')).toBe(2);
    // Pixel F1: edge 0.25 → P 8/15, R 1: 0.696; 0.5 → 0.824; 0.75 → P 1, R 0.5: 0.667.
    expect(figures.bestF1Position('pixel')).toBe(2);
  });

  it('reaches the exact F1-max of the metrics worker to within one histogram bin', async () => {
    const random = seededRandom(9);
    const session = new MetricsSession();
    const bottle = new URL('../../../../shared/data/mvtec-bottle/256/ground_truth/', import.meta.url);
    for (const name of ['broken_large/000', 'broken_small/001', 'contamination/002']) {
      const maskBytes = new Uint8Array(readFileSync(new URL(`${name}_mask.png`, bottle)));
      const mask = (await preprocessMask(maskBytes)).mask;
      const map = Float32Array.from(mask, (m) => random() + 0.6 * m * random());
      await session.add({ name, className: 'bottle', map, size: MODEL_INPUT_SIZE, mask: maskBytes });
    }
    for (const name of ['good/000', 'good/001', 'good/002']) {
      const map = Float32Array.from({ length: MODEL_INPUT_SIZE ** 2 }, () => 0.2 + random());
      await session.add({ name, className: 'bottle', map, size: MODEL_INPUT_SIZE });
    }
    const summary = session.summarize();
    const figures = new ThresholdFigures(summary);
    const [c] = summary.classes;
    const pixelBest = figures.pixel(figures.bestF1Position('pixel')).f1;
    expect(pixelBest).toBeLessThanOrEqual(c!.standard.pixelF1Max + 1e-12);
    expect(pixelBest).toBeGreaterThan(c!.standard.pixelF1Max - 1e-3);
    expect(figures.image(figures.bestF1Position('image')).f1).toBeCloseTo(c!.standard.imageF1Max, 12);
  });
});
