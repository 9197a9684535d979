import { useMemo } from 'react';
import { type InspectItem, useInspectStore } from '../../store/inspectStore.ts';
import { useModelStore } from '../../store/modelStore.ts';
import type { ColorRange } from '../common/colormaps.ts';

export interface ColorScale {
  /** One colour scale for every image of the session, so that colours compare across images. */
  range: ColorRange;
  /** Where the contours are drawn. */
  threshold: number;
  /** The threshold that decides normal/anomalous: only one chosen by someone (here or saved with the model). */
  decisionThreshold: number | undefined;
  /** Where the threshold comes from: set here, saved with the model, or the middle of the range. */
  thresholdSource: 'user' | 'model' | 'auto';
}

export function scaleOf(items: readonly InspectItem[]): ColorRange {
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (const item of items) {
    if (!item.result || item.mapMin === undefined) continue;
    low = Math.min(low, item.mapMin);
    high = Math.max(high, item.result.score);
  }
  return Number.isFinite(low) && high > low ? { low, high } : { low: 0, high: 1 };
}

export function useColorScale(): ColorScale {
  const items = useInspectStore((s) => s.items);
  const userThreshold = useInspectStore((s) => s.display.threshold);
  const modelThreshold = useModelStore((s) => s.model?.threshold);
  const range = useMemo(() => scaleOf(items), [items]);
  const chosen = userThreshold ?? modelThreshold;
  if (chosen !== undefined) {
    const thresholdSource = userThreshold !== undefined ? 'user' : 'model';
    return { range, threshold: chosen, decisionThreshold: chosen, thresholdSource };
  }
  // Nothing calibrated yet: outline the upper half of the range, but call no image normal or anomalous.
  return { range, threshold: (range.low + range.high) / 2, decisionThreshold: undefined, thresholdSource: 'auto' };
}
