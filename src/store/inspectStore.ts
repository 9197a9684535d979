import { create } from 'zustand';
import type { ColormapName } from '../ui/common/colormaps.ts';
import { type AnalyzeProgress, type AnalyzeResult, engineClient } from '../worker/engineClient.ts';
import { useModelStore } from './modelStore.ts';

export type InspectResult = Extract<AnalyzeResult, { ok: true }>;

export type InspectItemState = 'queued' | 'analyzing' | 'done' | 'failed' | 'cancelled';

/** One image on the Inspect screen. */
export interface InspectItem {
  readonly id: string;
  readonly name: string;
  /** The file as the user gave it (a File, or a Blob fetched from the samples); read by the worker and the viewer. */
  readonly source: Blob;
  state: InspectItemState;
  result?: InspectResult;
  /** The smallest value of the map (for the colour scale). */
  mapMin?: number;
  error?: string;
}

export interface InspectDisplay {
  opacity: number;
  colormap: ColormapName;
  /** The threshold the user set; undefined follows the model's saved threshold, else the middle of the range. */
  threshold?: number;
  contours: boolean;
  layout: 'overlay' | 'side-by-side';
}

interface InspectState {
  items: InspectItem[];
  selectedId?: string;
  display: InspectDisplay;
  /** The running job's progress (undefined when idle). */
  progress?: AnalyzeProgress;
  /** Why the last job could not run at all (no model, no encoder, no GPU). */
  jobError?: string;
  /** A short note for the user, e.g. how many non-image files a folder drop skipped. */
  notice?: string;
  add(files: { name: string; source: Blob }[]): void;
  select(id: string | undefined): void;
  setDisplay(change: Partial<InspectDisplay>): void;
  setNotice(notice: string | undefined): void;
  cancel(): void;
  /** Queues failed or cancelled images again. */
  retry(ids: readonly string[]): void;
  clear(): void;
}

let nextId = 1;
let running: AbortController | undefined;

function minimum(values: Float32Array): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < values.length; i++) if (values[i]! < min) min = values[i]!;
  return min;
}

function patch(id: string, change: Partial<InspectItem>): void {
  useInspectStore.setState((s) => ({
    items: s.items.map((item) => (item.id === id ? { ...item, ...change } : item)),
  }));
}

/**
 * Runs jobs until no image is queued: one job at a time, images in the order they were added. Without a model the
 * images wait in the queue; loading one starts them (see the subscription below).
 */
async function pump(): Promise<void> {
  const { getState: get, setState: set } = useInspectStore;
  if (running) return;
  while (useModelStore.getState().model) {
    const queued = get().items.filter((item) => item.state === 'queued');
    if (queued.length === 0) return;
    const controller = new AbortController();
    running = controller;
    let pending = queued.map((item) => item.id);
    const markInFlight = () => {
      if (pending[0]) patch(pending[0], { state: 'analyzing' });
    };
    set({
      progress: { done: 0, total: queued.length, imagesPerSecond: 0, etaSeconds: Number.NaN },
      jobError: undefined,
    });
    markInFlight();
    try {
      await engineClient().analyze(
        queued.map((item) => ({ id: item.id, name: item.name, bytes: item.source })),
        {
          signal: controller.signal,
          onResult: (result) => {
            pending = pending.filter((id) => id !== result.id);
            if (result.ok) {
              patch(result.id, { state: 'done', result, mapMin: minimum(result.map), error: undefined });
              if (!get().selectedId) set({ selectedId: result.id });
            } else {
              patch(result.id, { state: 'failed', error: result.error });
            }
            markInFlight();
          },
          onProgress: (progress) => set({ progress }),
        },
      );
    } catch (error) {
      const cancelled = (error as Error).name === 'AbortError';
      for (const id of pending) {
        patch(id, cancelled ? { state: 'cancelled' } : { state: 'failed', error: (error as Error).message });
      }
      if (!cancelled) set({ jobError: (error as Error).message });
    } finally {
      running = undefined;
      set({ progress: undefined });
    }
    if (controller.signal.aborted) return;
  }
}

export const useInspectStore = create<InspectState>((set) => {
  return {
    items: [],
    display: { opacity: 0.5, colormap: 'jet', contours: true, layout: 'overlay' },
    add(files) {
      if (files.length === 0) return;
      const items = files.map(
        (f): InspectItem => ({ id: `image-${nextId++}`, name: f.name, source: f.source, state: 'queued' }),
      );
      set((s) => ({ items: [...s.items, ...items] }));
      void pump();
    },
    select: (selectedId) => set({ selectedId }),
    setDisplay: (change) => set((s) => ({ display: { ...s.display, ...change } })),
    setNotice: (notice) => set({ notice }),
    cancel() {
      running?.abort();
    },
    retry(ids) {
      const again = new Set(ids);
      set((s) => ({
        items: s.items.map((item) =>
          again.has(item.id) && (item.state === 'failed' || item.state === 'cancelled')
            ? { ...item, state: 'queued', error: undefined }
            : item,
        ),
      }));
      void pump();
    },
    clear() {
      running?.abort();
      set({ items: [], selectedId: undefined, notice: undefined, jobError: undefined });
    },
  };
});

// Images dropped before any model was loaded start as soon as one is.
useModelStore.subscribe((state, previous) => {
  if (state.model && state.model !== previous.model) void pump();
});
