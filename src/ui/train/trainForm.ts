import { create } from 'zustand';
import type { DirectionCount, ScanOrder } from '../../model/scanOrders.ts';
import type { ModelSize } from './modelSizes.ts';
import type { TrainingImageGroup } from './trainingImages.ts';

/** The Train screen's choices, kept while the user visits other screens. Numbers stay text until Start. */
export interface TrainForm {
  /** Picked files and folders. */
  picked: TrainingImageGroup[];
  /** Names of the chosen sample sets. */
  sampleSets: string[];
  /** At most this many images ('' = all). */
  limit: string;
  source: 'scratch' | 'fine-tune';
  size: ModelSize;
  scan: ScanOrder;
  directions: DirectionCount;
  epochs: string;
  batch: string;
  checkpointEvery: string;
  seed: string;
  lr: string;
  dropPath: string;
  weightsDtype: 'F32' | 'F16';
  /** GPU memory the run may use, in GB (WebGPU cannot tell; a batch that needs more is refused). */
  memoryBudget: string;
  modelName: string;
  encoderWeights?: { name: string; bytes: Uint8Array };
}

interface TrainFormState extends TrainForm {
  /** True once the user chose a size (the default follows the adapter until then). */
  sizeChosen: boolean;
  update(changes: Partial<TrainFormState>): void;
}

function defaultModelName(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `trained-${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}`;
}

export const useTrainForm = create<TrainFormState>((set) => ({
  picked: [],
  sampleSets: [],
  limit: '',
  source: 'scratch',
  size: 'paper',
  sizeChosen: false,
  scan: 'hilbert',
  directions: 8,
  epochs: '10',
  batch: '16',
  checkpointEvery: '20',
  seed: '0',
  lr: '0.005',
  dropPath: '0.2',
  weightsDtype: 'F32',
  memoryBudget: '8',
  modelName: defaultModelName(),
  update: (changes) => set(changes),
}));
