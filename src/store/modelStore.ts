import { create } from 'zustand';
import type { ModelConfig } from '../model/config.ts';
import { engineClient } from '../worker/engineClient.ts';

/** Where the loaded model came from, for the UI. */
export type ModelOrigin = 'default' | 'file' | 'library' | 'training';

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
  /** The `mambaad.evaluation` metadata of the file (metrics per class), when it has one. */
  evaluationRecord?: Record<string, unknown>;
  /** Decision threshold on the anomaly map / image score chosen in Evaluate (saved with the model), if any. */
  threshold?: number;
  origin?: ModelOrigin;
}

/** The bundled default model, fetched from our own origin on start (public/models/default.safetensors). */
export const DEFAULT_MODEL_PATH = 'models/default.safetensors';

/** 'superseded': the user loaded another model while the default one was being fetched. */
export type DefaultModelState = 'not-checked' | 'checking' | 'loaded' | 'absent' | 'failed' | 'superseded';

interface ModelState {
  model?: LoadedModel;
  /** Why the last load failed (shown in the UI; the previous model stays loaded). */
  error?: string;
  /** The name of a weights file the engine is checking now. */
  loading?: string;
  defaultModel: DefaultModelState;
  /**
   * Makes `model` current (e.g. after training) and hands it to the inference engine. Prefer loadModel for files
   * from outside: it checks them before anything changes.
   */
  setModel(model: LoadedModel): void;
  setError(error: string | undefined): void;
  setThreshold(threshold: number | undefined): void;
  /** Checks `bytes` in the engine and makes it current; on failure sets `error` and keeps the current model. */
  loadModel(bytes: Uint8Array, name: string, origin: ModelOrigin): Promise<LoadedModel | undefined>;
  /** Fetches and loads the default model (once per page unless `force`); a missing file leaves 'absent'. */
  loadDefaultModel(force?: boolean): Promise<void>;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const useModelStore = create<ModelState>((set, get) => ({
  defaultModel: 'not-checked',
  setModel: (model) => {
    // Hand the bytes over first: analyses started by this change then queue behind the load in the worker.
    const engine = engineClient();
    if (!engine.isLoaded(model.bytes)) {
      engine.loadModel(model.bytes, model.name).catch((error) => set({ error: errorText(error) }));
    }
    set({ model, error: undefined });
  },
  setError: (error) => set({ error }),
  setThreshold: (threshold) => set((s) => (s.model ? { model: { ...s.model, threshold } } : {})),
  async loadModel(bytes, name, origin) {
    set({ loading: name });
    try {
      const summary = await engineClient().loadModel(bytes, name);
      const model: LoadedModel = { ...summary, name, bytes, origin };
      set({ model, error: undefined, loading: undefined });
      return model;
    } catch (error) {
      set({ error: errorText(error), loading: undefined });
      return undefined;
    }
  },
  async loadDefaultModel(force = false) {
    if (!force && get().defaultModel !== 'not-checked') return;
    set({ defaultModel: 'checking' });
    let response: Response;
    try {
      response = await fetch(`${import.meta.env.BASE_URL}${DEFAULT_MODEL_PATH}`);
    } catch (error) {
      set({ defaultModel: 'failed', error: `the default model could not be fetched: ${errorText(error)}` });
      return;
    }
    // The preview server answers a missing file with index.html: that is "absent" too.
    if (!response.ok || response.headers.get('content-type')?.includes('text/html')) {
      set({ defaultModel: 'absent' });
      return;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (!force && (get().model || get().loading)) {
      set({ defaultModel: 'superseded' });
      return;
    }
    const model = await get().loadModel(bytes, 'default.safetensors', 'default');
    set({ defaultModel: model ? 'loaded' : 'failed' });
  },
}));
