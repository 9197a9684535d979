import { create } from 'zustand';
import type { PickedFile } from '../ui/common/files.ts';
import { type DatasetSource, folderSource, type SampleSet, sampleSource } from '../ui/evaluate/datasetSource.ts';
import { type EvaluationOutcome, type EvaluationProgress, runEvaluation } from '../ui/evaluate/evaluationRun.ts';
import { ThresholdFigures } from '../ui/evaluate/thresholdFigures.ts';
import { engineClient } from '../worker/engineClient.ts';
import { MetricsClient } from '../worker/metricsClient.ts';
import { useModelStore } from './modelStore.ts';

export type MetricDefinition = 'benchmark' | 'standard';

export interface EvaluationResult extends EvaluationOutcome {
  sourceLabel: string;
  modelName: string;
  /** The evaluated weights file (its threshold can be saved only while it is the loaded model). */
  modelBytes: Uint8Array;
  /** The live threshold figures of this result (pooled over its classes). */
  figures: ThresholdFigures;
}

export type EvaluateRun =
  | { state: 'idle' }
  | { state: 'running'; progress?: EvaluationProgress }
  | { state: 'failed'; error: string };

interface EvaluateState {
  source?: DatasetSource;
  /** Why the last folder or sample set could not be used; the previous source and results stay. */
  sourceError?: string;
  /** At most this many test images per class; undefined: all. */
  perClass?: number;
  run: EvaluateRun;
  result?: EvaluationResult;
  definition: MetricDefinition;
  /** The threshold slider's position on the result's histogram edges. */
  thresholdPosition: number;
  chooseFolder(files: readonly PickedFile[]): void;
  chooseSamples(sets: readonly SampleSet[]): void;
  setPerClass(perClass: number | undefined): void;
  start(): Promise<void>;
  cancel(): void;
  setDefinition(definition: MetricDefinition): void;
  setThresholdPosition(position: number): void;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A file the studio's own server serves (sample sets under /shared/), as bytes. */
export async function fetchServedBytes(path: string): Promise<Uint8Array> {
  const response = await fetch(`${import.meta.env.BASE_URL}${path}`);
  if (!response.ok) throw new Error(`${path}: the server answered ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

let metrics: MetricsClient | undefined;
let running: AbortController | undefined;

export const useEvaluateStore = create<EvaluateState>((set, get) => ({
  run: { state: 'idle' },
  definition: 'benchmark',
  thresholdPosition: 0,
  chooseFolder(files) {
    try {
      set({ source: folderSource(files), sourceError: undefined });
    } catch (error) {
      set({ sourceError: errorText(error) });
    }
  },
  chooseSamples(sets) {
    try {
      set({ source: sampleSource(sets, fetchServedBytes), sourceError: undefined });
    } catch (error) {
      set({ sourceError: errorText(error) });
    }
  },
  setPerClass: (perClass) => set({ perClass }),
  async start() {
    const { source, perClass, run } = get();
    const model = useModelStore.getState().model;
    if (run.state === 'running' || !source) return;
    if (!model) {
      set({ run: { state: 'failed', error: 'No model is loaded: load a weights file in Models first.' } });
      return;
    }
    running = new AbortController();
    metrics ??= new MetricsClient();
    set({ run: { state: 'running' } });
    try {
      const outcome = await runEvaluation({
        source,
        perClass,
        analyzer: engineClient(),
        metrics,
        signal: running.signal,
        onProgress: (progress) => set({ run: { state: 'running', progress } }),
      });
      const figures = new ThresholdFigures(outcome.summary);
      // The slider starts on the model's saved threshold, else where the image-level F1 is best.
      const saved = useModelStore.getState().model?.threshold;
      const thresholdPosition = saved === undefined ? figures.bestF1Position('image') : figures.nearestPosition(saved);
      set({
        run: { state: 'idle' },
        result: { ...outcome, sourceLabel: source.label, modelName: model.name, modelBytes: model.bytes, figures },
        thresholdPosition,
      });
    } catch (error) {
      set({ run: { state: 'failed', error: errorText(error) } });
    } finally {
      running = undefined;
    }
  },
  cancel: () => running?.abort(),
  setDefinition: (definition) => set({ definition }),
  setThresholdPosition: (thresholdPosition) => set({ thresholdPosition }),
}));
