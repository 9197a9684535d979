import { useEffect, useState } from 'react';
import { useInspectStore } from '../../store/inspectStore.ts';
import { useModelStore } from '../../store/modelStore.ts';
import { useStudioStore } from '../../store/studioStore.ts';
import { DropZone, FilePickButton } from '../common/DropZone.tsx';
import { EngineStatusBar } from '../common/EngineStatusBar.tsx';
import { useEngineStatus } from '../common/engineStatus.ts';
import { isWeightsName, keepUseful, type PickedFile } from '../common/files.ts';
import { ProgressBar } from '../common/ProgressBar.tsx';
import { Gallery } from './Gallery.tsx';
import { ImageViewer } from './ImageViewer.tsx';
import { InspectSidebar } from './InspectSidebar.tsx';
import { fetchSample, listSamples, type SampleImage, sampleName } from './samples.ts';

const IMAGE_ACCEPT = 'image/png,image/jpeg,image/bmp,image/webp,.png,.jpg,.jpeg,.bmp,.webp';

/** Images go to the analysis queue; a dropped weights file is loaded as the model. */
function useFileRouter(): (files: PickedFile[]) => void {
  const add = useInspectStore((s) => s.add);
  const setNotice = useInspectStore((s) => s.setNotice);
  const loadModel = useModelStore((s) => s.loadModel);
  return (files) => {
    const { kept, skipped } = keepUseful(files);
    const weights = kept.filter((f) => isWeightsName(f.file.name));
    const images = kept.filter((f) => !isWeightsName(f.file.name));
    setNotice(
      skipped > 0 ? `Skipped ${skipped} file${skipped > 1 ? 's' : ''} in the folder that are not images.` : undefined,
    );
    add(images.map((f) => ({ name: f.path ? f.path.replace(/^\//, '') : f.file.name, source: f.file })));
    const model = weights[0];
    if (model)
      void model.file.arrayBuffer().then((buffer) => loadModel(new Uint8Array(buffer), model.file.name, 'file'));
  };
}

function useSamples(): SampleImage[] | undefined {
  const [samples, setSamples] = useState<SampleImage[]>();
  useEffect(() => {
    let live = true;
    void listSamples().then((list) => live && setSamples(list));
    return () => {
      live = false;
    };
  }, []);
  return samples;
}

function Samples({ samples }: { samples: SampleImage[] }) {
  const add = useInspectStore((s) => s.add);
  const [error, setError] = useState<string>();
  const addSamples = async (chosen: SampleImage[]) => {
    setError(undefined);
    try {
      const blobs = await Promise.all(chosen.map(fetchSample));
      add(chosen.map((sample, i) => ({ name: sampleName(sample), source: blobs[i]! })));
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const datasets = [...new Set(samples.map((s) => s.dataset))];
  return (
    <div className="samples" data-testid="inspect-samples">
      {datasets.map((dataset) => (
        <div key={dataset} className="sample-group">
          <span className="sample-dataset">{dataset}</span>
          {samples
            .filter((s) => s.dataset === dataset)
            .map((sample) => (
              <button
                key={sample.path}
                type="button"
                className="chip"
                title={sample.path}
                onClick={() => addSamples([sample])}
              >
                {sample.category}/{sample.fileName}
              </button>
            ))}
        </div>
      ))}
      {error && <p className="error-text">{error}</p>}
    </div>
  );
}

function ModelNotice() {
  const gpuFailed = useEngineStatus().gpu.state === 'failed';
  const model = useModelStore((s) => s.model);
  const defaultModel = useModelStore((s) => s.defaultModel);
  const loading = useModelStore((s) => s.loading);
  const setTab = useStudioStore((s) => s.setTab);
  // Without a GPU no model can load; the engine status above says why.
  if (model || gpuFailed) return null;
  return (
    <div className="notice" data-testid="inspect-model-notice">
      {loading || defaultModel === 'checking'
        ? `Loading ${loading ?? 'the default model'}…`
        : 'No model loaded: images can be added, but they are analysed once a model is loaded.'}{' '}
      {!loading && defaultModel !== 'checking' && (
        <button type="button" className="button small" onClick={() => setTab('models')}>
          Open Models
        </button>
      )}
    </div>
  );
}

/** The two pickers, in the toolbar and in the empty state (only one of them shows at a time). */
function AddImagesButtons({ onFiles }: { onFiles(files: PickedFile[]): void }) {
  return (
    <>
      <FilePickButton
        label="Add images…"
        accept={IMAGE_ACCEPT}
        multiple
        onFiles={onFiles}
        testId="inspect-file-input"
        primary
      />
      <FilePickButton label="Add folder…" folder onFiles={onFiles} testId="inspect-folder-input" />
    </>
  );
}

function Toolbar({ samples }: { samples: SampleImage[] | undefined }) {
  const route = useFileRouter();
  const items = useInspectStore((s) => s.items);
  const progress = useInspectStore((s) => s.progress);
  const cancel = useInspectStore((s) => s.cancel);
  const retry = useInspectStore((s) => s.retry);
  const clear = useInspectStore((s) => s.clear);
  const [showSamples, setShowSamples] = useState(false);
  const again = items.filter((item) => item.state === 'failed' || item.state === 'cancelled');
  const done = items.filter((item) => item.state === 'done').length;
  return (
    <div className="inspect-toolbar">
      <AddImagesButtons onFiles={route} />
      {samples && samples.length > 0 && (
        <button
          type="button"
          className="button"
          aria-expanded={showSamples}
          onClick={() => setShowSamples(!showSamples)}
        >
          Samples
        </button>
      )}
      {progress ? (
        <ProgressBar
          testId="inspect-progress"
          label="Analysing"
          done={progress.done}
          total={progress.total}
          imagesPerSecond={progress.imagesPerSecond}
          etaSeconds={progress.etaSeconds}
          onCancel={cancel}
        />
      ) : (
        <span className="muted inspect-summary">
          {items.length > 0 && `${done} of ${items.length} image${items.length > 1 ? 's' : ''} analysed`}
        </span>
      )}
      <span className="toolbar-spacer" />
      {again.length > 0 && !progress && (
        <button type="button" className="button" onClick={() => retry(again.map((item) => item.id))}>
          Analyse {again.length} again
        </button>
      )}
      {items.length > 0 && (
        <button type="button" className="button" onClick={clear}>
          Clear
        </button>
      )}
      {showSamples && samples && (
        <div className="samples-popover">
          <Samples samples={samples} />
        </div>
      )}
    </div>
  );
}

/** Drop images or folders, see each one's anomaly map over it, sorted by score; export overlays and scores. */
export function InspectView() {
  const route = useFileRouter();
  const items = useInspectStore((s) => s.items);
  const selectedId = useInspectStore((s) => s.selectedId);
  const notice = useInspectStore((s) => s.notice);
  const jobError = useInspectStore((s) => s.jobError);
  const modelError = useModelStore((s) => s.error);
  const samples = useSamples();
  const gpuFailed = useEngineStatus().gpu.state === 'failed';
  const selected = items.find((item) => item.id === selectedId) ?? items[0];
  return (
    <DropZone
      onFiles={route}
      hint="Drop images or folders to analyse them (or a .safetensors file to load it as the model)"
      className="inspect"
      testId="inspect-view"
    >
      <EngineStatusBar />
      <ModelNotice />
      {items.length > 0 && <Toolbar samples={samples} />}
      {notice && <div className="notice">{notice}</div>}
      {jobError && (
        <div className="notice error" role="alert" data-testid="inspect-job-error">
          {jobError}
        </div>
      )}
      {modelError && (
        <div className="notice error" role="alert">
          {modelError}
        </div>
      )}
      {items.length === 0 && gpuFailed ? (
        <div className="inspect-empty">
          <div className="inspect-empty-card" data-testid="inspect-unavailable">
            <h2>Inspect needs WebGPU</h2>
            <p>
              Anomaly maps are computed on the GPU, which this browser does not offer. The Scans tab still browses
              images, and the Models tab still lists, downloads and deletes saved models.
            </p>
          </div>
        </div>
      ) : items.length === 0 ? (
        <div className="inspect-empty">
          <div className="inspect-empty-card">
            <h2>Inspect images</h2>
            <p>
              Drop images or a folder anywhere here, or pick them. Each image gets its anomaly map; the gallery sorts
              them by score. Images stay on this machine.
            </p>
            <div className="button-row centered">
              <AddImagesButtons onFiles={route} />
            </div>
            {samples && samples.length > 0 && (
              <>
                <h3>Or try a sample</h3>
                <Samples samples={samples} />
              </>
            )}
          </div>
        </div>
      ) : (
        <div className="inspect-body">
          <Gallery />
          <div className="inspect-stage">
            {selected?.result ? (
              <ImageViewer item={selected} result={selected.result} />
            ) : (
              <div className="viewer-empty">
                {selected?.state === 'failed' ? (
                  <p className="error-text">
                    <strong>{selected.name}</strong> could not be analysed: {selected.error}
                  </p>
                ) : (
                  <p className="muted">
                    {selected?.state === 'cancelled'
                      ? 'Cancelled before it was analysed.'
                      : 'The anomaly map appears here when the image has been analysed.'}
                  </p>
                )}
              </div>
            )}
          </div>
          <InspectSidebar selected={selected} />
        </div>
      )}
    </DropZone>
  );
}
