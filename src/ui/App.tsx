import { useEffect } from 'react';
import { useGpuStore } from '../store/gpuStore.ts';
import { useModelStore } from '../store/modelStore.ts';
import { STUDIO_TABS, type StudioTab, useStudioStore } from '../store/studioStore.ts';
import { EvaluateView } from './evaluate/EvaluateView.tsx';
import { GpuStatusPanel } from './GpuStatusPanel.tsx';
import { InspectView } from './inspect/InspectView.tsx';
import { ModelStateBadge } from './models/ModelStateBadge.tsx';
import { ModelsView } from './models/ModelsView.tsx';
import { ScansView } from './scans/ScansView.tsx';
import { TrainView } from './train/TrainView.tsx';

const TAB_LABELS: Record<StudioTab, string> = {
  inspect: 'Inspect',
  evaluate: 'Evaluate',
  train: 'Train',
  scans: 'Scans',
  models: 'Models',
};

const VIEWS: Record<StudioTab, () => React.JSX.Element> = {
  inspect: InspectView,
  evaluate: EvaluateView,
  train: TrainView,
  scans: ScansView,
  models: ModelsView,
};

export function App() {
  const connect = useGpuStore((s) => s.connect);
  const { tab, setTab } = useStudioStore();
  const loadDefaultModel = useModelStore((s) => s.loadDefaultModel);
  useEffect(connect, [connect]);
  useEffect(() => void loadDefaultModel(), [loadDefaultModel]);
  const View = VIEWS[tab];
  return (
    <div className="studio">
      <header className="studio-header">
        <h1>MambaAD Studio</h1>
        <div className="studio-tabs" role="tablist">
          {STUDIO_TABS.map((t) => (
            <button key={t} type="button" role="tab" aria-selected={t === tab} onClick={() => setTab(t)}>
              {TAB_LABELS[t]}
            </button>
          ))}
        </div>
        <ModelStateBadge />
        <GpuStatusPanel />
      </header>
      <main className="studio-main">
        <View />
      </main>
    </div>
  );
}
