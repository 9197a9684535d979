import type { DeviceLostError } from './errors.ts';
import type { GpuRuntime } from './runtime.ts';

export type GpuStatus =
  | { state: 'starting' }
  | { state: 'ready'; adapterName: string; isSoftwareAdapter: boolean }
  | { state: 'lost'; error: DeviceLostError }
  | { state: 'failed'; error: Error };

/**
 * Owns the current runtime and replaces it after device loss. Work that was running when the device went away fails
 * with DeviceLostError (never hangs); the next call to runtime() opens a fresh device, and listeners hear every change
 * so the UI can say what happened. A device destroyed on purpose (dispose) is not recovered.
 */
export class GpuHost {
  private current: Promise<GpuRuntime> | undefined;
  private readonly listeners = new Set<(status: GpuStatus) => void>();
  private disposed = false;
  status: GpuStatus = { state: 'starting' };

  constructor(private readonly createRuntime: () => Promise<GpuRuntime>) {}

  onStatus(listener: (status: GpuStatus) => void): () => void {
    this.listeners.add(listener);
    listener(this.status);
    return () => this.listeners.delete(listener);
  }

  runtime(): Promise<GpuRuntime> {
    if (this.disposed) return Promise.reject(new Error('the GPU host was disposed'));
    if (!this.current) {
      this.setStatus({ state: 'starting' });
      const created = this.createRuntime();
      this.current = created;
      created.then(
        (runtime) => {
          this.setStatus({
            state: 'ready',
            adapterName: runtime.adapterName,
            isSoftwareAdapter: runtime.isSoftwareAdapter,
          });
          void runtime.lost.then((error) => {
            if (this.current !== created || this.disposed) return;
            this.current = undefined;
            this.setStatus({ state: 'lost', error });
          });
        },
        (error: Error) => {
          if (this.current === created) this.current = undefined;
          this.setStatus({ state: 'failed', error });
        },
      );
    }
    return this.current;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const current = this.current;
    this.current = undefined;
    if (current) (await current.catch(() => undefined))?.destroy();
  }

  private setStatus(status: GpuStatus): void {
    this.status = status;
    for (const listener of this.listeners) listener(status);
  }
}
