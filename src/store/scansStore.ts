import { create } from 'zustand';
import type { ScanOrder } from '../model/scanOrders.ts';
import {
  type CandidateModel,
  type ComparisonProgress,
  compareModels,
  type ModelComparisonResult,
  readCandidate,
} from '../ui/scans/modelComparison.ts';
import { engineClient } from '../worker/engineClient.ts';
import { MetricsClient } from '../worker/metricsClient.ts';
import { useEvaluateStore } from './evaluateStore.ts';
import { useModelStore } from './modelStore.ts';

/** The picture the scan paths are drawn over, and the comparison's input image. */
export interface ScanImage {
  name: string;
  blob: Blob;
}

export type ComparisonRun =
  | { state: 'idle' }
  | { state: 'running'; progress?: ComparisonProgress }
  | { state: 'failed'; error: string }
  | { state: 'cancelled' };

interface ScansState {
  order: ScanOrder;
  direction: number;
  gridSize: number;
  playing: boolean;
  /** Steps per second while playing. */
  speed: number;
  /** The animation's position: steps drawn so far (fractional while playing). */
  step: number;
  image?: ScanImage;
  imageError?: string;
  models: CandidateModel[];
  /** Files that could not be added, with the reason. */
  modelErrors: string[];
  useLabelledSet: boolean;
  comparison: ComparisonRun;
  results: Record<string, ModelComparisonResult>;
  set(
    patch: Partial<
      Pick<ScansState, 'order' | 'direction' | 'gridSize' | 'playing' | 'speed' | 'step' | 'useLabelledSet'>
    >,
  ): void;
  /** A new picture, or undefined to draw on the bare grid. */
  setImage(image: ScanImage | undefined): void;
  /** Why a picked file cannot be drawn under the paths (the current picture stays). */
  setImageError(error: string): void;
  addModels(files: readonly { name: string; bytes: Uint8Array }[]): void;
  removeModel(id: string): void;
  compare(): Promise<void>;
  cancelComparison(): void;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let metrics: MetricsClient | undefined;
let running: AbortController | undefined;
let nextModelId = 0;

export const useScansStore = create<ScansState>((set, get) => ({
  order: 'hilbert',
  direction: 0,
  gridSize: 8,
  playing: true,
  speed: 12,
  step: 0,
  models: [],
  modelErrors: [],
  useLabelledSet: true,
  comparison: { state: 'idle' },
  results: {},
  set: (patch) => set(patch),
  setImage: (image) => set({ image, imageError: undefined }),
  setImageError: (imageError) => set({ imageError }),
  addModels(files) {
    const added: CandidateModel[] = [];
    const modelErrors: string[] = [];
    for (const file of files) {
      try {
        added.push(readCandidate(`model-${nextModelId++}`, file.name, file.bytes));
      } catch (error) {
        modelErrors.push(errorText(error));
      }
    }
    set((s) => ({ models: [...s.models, ...added], modelErrors }));
  },
  removeModel: (id) =>
    set((s) => {
      const { [id]: _removed, ...results } = s.results;
      return { models: s.models.filter((m) => m.id !== id), results };
    }),
  async compare() {
    const { models, image, useLabelledSet, comparison } = get();
    if (comparison.state === 'running' || models.length === 0) return;
    const { source, perClass } = useEvaluateStore.getState();
    const labelled = useLabelledSet && source ? { source, perClass } : undefined;
    if (!image && !labelled) {
      set({
        comparison: { state: 'failed', error: 'Choose an image above, or a labelled set in Evaluate, to compare on.' },
      });
      return;
    }
    const current = useModelStore.getState().model;
    running = new AbortController();
    metrics ??= new MetricsClient();
    set({ comparison: { state: 'running' }, results: {} });
    try {
      await compareModels({
        models,
        image: image && { name: image.name, bytes: image.blob },
        labelled,
        engine: engineClient(),
        metrics,
        restore: current && { bytes: current.bytes, name: current.name },
        signal: running.signal,
        onProgress: (progress) => set({ comparison: { state: 'running', progress } }),
        onResult: (result) => set((s) => ({ results: { ...s.results, [result.modelId]: result } })),
      });
      set({ comparison: { state: 'idle' } });
    } catch (error) {
      const cancelled = error instanceof DOMException && error.name === 'AbortError';
      set({ comparison: cancelled ? { state: 'cancelled' } : { state: 'failed', error: errorText(error) } });
    } finally {
      running = undefined;
    }
  },
  cancelComparison: () => running?.abort(),
}));
