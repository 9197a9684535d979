import { create } from 'zustand';

export const STUDIO_TABS = ['inspect', 'evaluate', 'train', 'scans', 'models'] as const;
export type StudioTab = (typeof STUDIO_TABS)[number];

interface StudioState {
  tab: StudioTab;
  setTab(tab: StudioTab): void;
}

/** Which screen of the studio is showing. */
export const useStudioStore = create<StudioState>((set) => ({
  tab: 'inspect',
  setTab: (tab) => set({ tab }),
}));
