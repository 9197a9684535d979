import { create } from 'zustand';
import type { ModelConfig } from '../model/config.ts';

/** The weights file the studio works with: Inspect and Evaluate run it, Train fine-tunes it, Models saves it. */
export interface LoadedModel {
  /** What the user sees: the file name or the library entry's name. */
  name: string;
  /** The safetensors file as loaded (kept so it can be saved, handed to workers and re-loaded after device loss). */
  bytes: Uint8Array;
  config: ModelConfig;
  parameterCount: number;
  /** The `mambaad.training` metadata of the file, when it has one. */
  trainingRecord?: Record<string, unknown>;
  /** Decision threshold on the anomaly map / image score chosen in Evaluate (saved with the model), if any. */
  threshold?: number;
}

interface ModelState {
  model?: LoadedModel;
  /** Why the last load failed (shown in the UI; the previous model stays loaded). */
  error?: string;
  setModel(model: LoadedModel): void;
  setError(error: string | undefined): void;
  setThreshold(threshold: number | undefined): void;
}

export const useModelStore = create<ModelState>((set) => ({
  setModel: (model) => set({ model, error: undefined }),
  setError: (error) => set({ error }),
  setThreshold: (threshold) => set((s) => (s.model ? { model: { ...s.model, threshold } } : {})),
}));
