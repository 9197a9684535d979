import { useEffect } from 'react';
import { useGpuStore } from '../store/gpuStore.ts';
import { GpuStatusPanel } from './GpuStatusPanel.tsx';

export function App() {
  const connect = useGpuStore((s) => s.connect);
  useEffect(connect, [connect]);
  return (
    <div className="studio">
      <header className="studio-header">
        <h1>MambaAD Studio</h1>
        <GpuStatusPanel />
      </header>
      <main className="studio-main">
        <section className="empty-state" data-testid="model-state">
          <h2>No model loaded</h2>
          <p>
            MambaAD finds defects by comparing an image's CNN features with what a state-space decoder, trained on
            normal images only, reconstructs. Load a weights file (.safetensors) to inspect images.
          </p>
        </section>
      </main>
    </div>
  );
}
