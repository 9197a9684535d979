import { type ModelConfig, PAPER_CONFIG } from '../../model/config.ts';
import type { DirectionCount, ScanOrder } from '../../model/scanOrders.ts';

export type ModelSize = 'paper' | 'small';

/**
 * The models the Train screen builds from scratch, on the studio's ResNet18 encoder. The decoder's widths are fixed
 * by the encoder's channels; the small one keeps them and shrinks the input and the depth, so a step takes seconds
 * instead of minutes on a software adapter (for trying the workflow, not for the paper's accuracy).
 */
export const MODEL_SIZES: Record<ModelSize, { label: string; detail: string; config: ModelConfig }> = {
  paper: {
    label: 'Paper (256 px)',
    detail: 'MambaAD as published',
    config: { ...PAPER_CONFIG, encoder: 'resnet18' },
  },
  small: {
    label: 'Small (64 px)',
    detail: 'For quick experiments on slow adapters',
    config: { ...PAPER_CONFIG, encoder: 'resnet18', inputSize: 64, depths: [2, 2, 2, 2] },
  },
};

export function scratchConfig(size: ModelSize, scan: ScanOrder, directions: DirectionCount): ModelConfig {
  return { ...MODEL_SIZES[size].config, scan, directions };
}
