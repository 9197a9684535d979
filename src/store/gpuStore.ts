import { create } from 'zustand';
import type { GpuStatus } from '../gpu/host.ts';
import { GpuHost } from '../gpu/host.ts';
import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';

interface GpuState {
  status: GpuStatus;
  /** Opens the device (once) and keeps `status` current, including after device loss and recovery. */
  connect(): void;
}

let host: GpuHost | undefined;

export const useGpuStore = create<GpuState>((set) => ({
  status: { state: 'starting' },
  connect() {
    if (host) return;
    host = new GpuHost(() => GpuRuntime.create(navigator.gpu, loadBundledKernel));
    host.onStatus((status) => {
      set({ status });
      // Recover without a reload: a lost device is replaced by a fresh one straight away.
      if (status.state === 'lost') void host?.runtime().catch(() => undefined);
    });
    void host.runtime().catch(() => undefined);
  },
}));
