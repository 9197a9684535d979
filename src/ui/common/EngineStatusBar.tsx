import { useState } from 'react';
import { engineClient } from '../../worker/engineClient.ts';
import { FilePickButton } from './DropZone.tsx';
import { useEngineStatus } from './engineStatus.ts';

/** The first `count` lines of a long message (a loader lists every problem, one per line). */
function firstLines(text: string, count: number): string {
  const lines = text.split('\n');
  return lines.length > count ? `${lines.slice(0, count).join(' ')} …` : lines.join(' ');
}

/**
 * One line on the inference engine: GPU, encoder, recovery after device loss. When the encoder weights are missing
 * it explains and offers to pick the file.
 */
export function EngineStatusBar() {
  const status = useEngineStatus();
  const [pickError, setPickError] = useState<string>();
  const { gpu, encoder } = status;
  const recovered =
    gpu.state === 'ready' && status.lastDeviceLoss
      ? `Recovered from a GPU device loss at ${new Date(status.lastDeviceLoss.at).toLocaleTimeString()}.`
      : undefined;
  const encoderUnusable = encoder.state === 'missing' || encoder.state === 'failed';
  // The dot says whether images can be analysed now, which needs the encoder as well as the GPU.
  const dot =
    gpu.state !== 'ready' ? gpu.state : encoderUnusable ? 'failed' : encoder.state === 'loading' ? 'starting' : 'ready';
  return (
    <div className="engine-status" data-testid="engine-status" data-gpu={gpu.state} data-encoder={encoder.state}>
      <span className={`status-dot ${dot}`} aria-hidden="true" />
      <div className="engine-status-text">
        <span data-testid="engine-gpu">
          {gpu.state === 'starting' && 'Engine: opening the GPU…'}
          {gpu.state === 'ready' && (
            <>
              {encoderUnusable ? 'GPU ready, but no encoder:' : 'Engine ready'}
              {!encoderUnusable && gpu.isSoftwareAdapter && ' (software GPU: analysis is slow)'}
              {encoder.state === 'ready' && <span className="muted"> · encoder on {encoder.backend}</span>}
              {encoder.state === 'loading' && <span className="muted"> · loading the encoder…</span>}
            </>
          )}
          {gpu.state === 'recovering' && `${gpu.message} Recovering: re-opening the GPU and re-loading the model…`}
          {gpu.state === 'failed' && (
            <>
              {gpu.message} <span className="muted">Browsing scans and managing models still work.</span>
            </>
          )}
        </span>
        {recovered && <span className="muted"> {recovered}</span>}
        {encoderUnusable && gpu.state !== 'failed' && (
          <span className="engine-encoder-missing" role="alert">
            {encoder.message}{' '}
            <FilePickButton
              label="Choose encoder weights…"
              accept=".safetensors"
              testId="encoder-file-input"
              onFiles={async ([picked]) => {
                if (!picked) return;
                setPickError(undefined);
                try {
                  await engineClient().setEncoderWeights(
                    new Uint8Array(await picked.file.arrayBuffer()),
                    picked.file.name,
                  );
                } catch (error) {
                  setPickError((error as Error).message);
                }
              }}
            />
            {pickError && (
              <span className="error-text" data-testid="encoder-file-error">
                {' '}
                {firstLines(pickError, 4)}
              </span>
            )}
          </span>
        )}
      </div>
    </div>
  );
}
