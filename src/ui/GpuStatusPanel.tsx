import { useGpuStore } from '../store/gpuStore.ts';

/** Which GPU the studio runs on, or why it cannot run there. */
export function GpuStatusPanel() {
  const status = useGpuStore((s) => s.status);
  switch (status.state) {
    case 'starting':
      return (
        <div className="gpu-status" data-testid="gpu-status" data-state="starting">
          Opening the GPU…
        </div>
      );
    case 'ready':
      return (
        <div className="gpu-status" data-testid="gpu-status" data-state="ready">
          WebGPU adapter: <strong data-testid="gpu-adapter">{status.adapterName}</strong>
          {status.isSoftwareAdapter && <span className="badge">software (CPU) adapter: expect slow inference</span>}
        </div>
      );
    case 'lost':
      return (
        <div className="gpu-status error" data-testid="gpu-status" data-state="lost" role="alert">
          {status.error.message} Reconnecting…
        </div>
      );
    case 'failed':
      return (
        <div className="gpu-status error" data-testid="gpu-status" data-state="failed" role="alert">
          {status.error.message}
        </div>
      );
  }
}
