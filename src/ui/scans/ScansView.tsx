import { useEffect, useState } from 'react';
import { SCAN_ORDERS } from '../../model/scanOrders.ts';
import { type ScanImage, useScansStore } from '../../store/scansStore.ts';
import { DropZone, FilePickButton } from '../common/DropZone.tsx';
import { isImageName, type PickedFile } from '../common/files.ts';
import { fetchSample, listSamples, type SampleImage, sampleName } from '../inspect/samples.ts';
import { ModelComparisonPanel } from './ModelComparisonPanel.tsx';
import { PATH_GRADIENT, ScanCanvas } from './ScanCanvas.tsx';
import { DIRECTION_LABELS, GRID_SIZES, SCAN_ORDER_LABELS } from './scanPath.ts';

const ORDER_NOTES: Record<(typeof SCAN_ORDERS)[number], string> = {
  sweep: 'Row by row, left to right: neighbours across rows end up a whole row apart in the sequence.',
  scan: 'Row by row, alternating direction (boustrophedon): every step moves to an adjacent cell.',
  zorder: 'Morton order: recursively visits 2×2 quadrants in a Z; nearby cells stay close, with jumps between blocks.',
  zigzag: 'Along anti-diagonals, alternating direction, like JPEG’s coefficient order.',
  hilbert: 'A space-filling curve: every step moves to an adjacent cell and nearby cells stay close in the sequence.',
};

const DIRECTION_NOTES = [
  'The curve itself.',
  'The curve over the transposed grid (rows and columns swapped).',
  'The curve over the grid rotated by 90°.',
  'The curve over the horizontally mirrored grid.',
];

/** Which decoder stage scans a grid of this size at a 256-pixel input. */
function stageNote(size: number): string {
  const stage = Math.log2(size / 8);
  return `At a 256-pixel input, stage ${stage + 1} of the decoder’s 4 scans a ${size}×${size} grid.`;
}

/** Steps per second from the speed slider's 0..100 (logarithmic: 1 to about 2000). */
const speedFromSlider = (value: number) => Math.round(10 ** ((value / 100) * 3.3));
const sliderFromSpeed = (speed: number) => Math.round((Math.log10(Math.max(1, speed)) / 3.3) * 100);

/** Advances the animation while it plays, on the display's frame clock. */
function useAnimation(length: number) {
  const playing = useScansStore((s) => s.playing);
  useEffect(() => {
    if (!playing) return;
    let frame = 0;
    let last = performance.now();
    const tick = (now: number) => {
      const { step, speed, set } = useScansStore.getState();
      const next = step + (speed * (now - last)) / 1000;
      last = now;
      // Hold the full path briefly (a quarter of a second's worth of steps), then start again.
      set({ step: next > length + speed / 4 ? 0 : next });
      frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(frame);
  }, [playing, length]);
}

/** The picture under the paths, decoded by the browser off the main thread; a file it cannot decode is reported. */
function useImageBitmap(image: ScanImage | undefined): ImageBitmap | undefined {
  const [bitmap, setBitmap] = useState<ImageBitmap>();
  useEffect(() => {
    setBitmap(undefined);
    if (!image) return;
    let active = true;
    createImageBitmap(image.blob).then(
      (decoded) => (active ? setBitmap(decoded) : decoded.close()),
      () => active && useScansStore.getState().setImageError(`${image.name} could not be decoded as an image`),
    );
    return () => {
      active = false;
    };
  }, [image]);
  return bitmap;
}

/** One sample image per data set and test category, e.g. a broken bottle and a good one. */
function useSampleChoices(): SampleImage[] {
  const [samples, setSamples] = useState<SampleImage[]>([]);
  useEffect(() => {
    void listSamples().then((all) => {
      const seen = new Set<string>();
      setSamples(
        all.filter((s) => {
          const key = `${s.dataset}/${s.category}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        }),
      );
    });
  }, []);
  return samples;
}

function ImageChooser() {
  const { image, imageError, setImage, setImageError } = useScansStore();
  const samples = useSampleChoices();
  const pick = (files: PickedFile[]) => {
    const file = files.find((f) => isImageName(f.file.name)) ?? files[0];
    if (!file) return;
    if (!isImageName(file.file.name)) {
      setImageError(`${file.file.name} is not a PNG, JPEG, BMP or WebP image`);
      return;
    }
    setImage({ name: file.file.name, blob: file.file });
  };
  const pickSample = async (path: string) => {
    const sample = samples.find((s) => s.path === path);
    if (!sample) return;
    try {
      setImage({ name: sampleName(sample), blob: await fetchSample(sample) });
    } catch (error) {
      setImageError(error instanceof Error ? error.message : String(error));
    }
  };
  return (
    <DropZone onFiles={pick} hint="Drop the image to draw the scans over" className="image-chooser">
      <div className="button-row">
        <span className="muted">Draw over an image:</span>
        <FilePickButton
          label="Choose image…"
          accept="image/png,image/jpeg,image/bmp,image/webp"
          onFiles={pick}
          testId="scans-image-input"
        />
        {samples.length > 0 && (
          <select
            value=""
            onChange={(event) => void pickSample(event.currentTarget.value)}
            data-testid="scans-sample-select"
            aria-label="Sample image"
          >
            <option value="">sample image…</option>
            {samples.map((s) => (
              <option key={s.path} value={s.path}>
                {sampleName(s)}
              </option>
            ))}
          </select>
        )}
        {image && (
          <>
            <span data-testid="scans-image-name">{image.name}</span>
            <button type="button" className="button small" onClick={() => setImage(undefined)}>
              Clear
            </button>
          </>
        )}
        {imageError && (
          <span className="error-text" role="alert">
            {imageError}
          </span>
        )}
      </div>
    </DropZone>
  );
}

function Controls({ length }: { length: number }) {
  const { order, direction, gridSize, playing, speed, step, set } = useScansStore();
  return (
    <div className="scan-controls">
      <label className="field inline">
        Method
        <select
          value={order}
          onChange={(e) => set({ order: e.currentTarget.value as typeof order })}
          data-testid="scans-order"
        >
          {SCAN_ORDERS.map((o) => (
            <option key={o} value={o}>
              {SCAN_ORDER_LABELS[o]}
            </option>
          ))}
        </select>
      </label>
      <label className="field inline">
        Direction
        <select
          value={direction}
          onChange={(e) => set({ direction: Number(e.currentTarget.value) })}
          data-testid="scans-direction"
        >
          {DIRECTION_LABELS.map((label, d) => (
            <option key={label} value={d}>
              {d}: {label}
            </option>
          ))}
        </select>
      </label>
      <label className="field inline">
        Grid
        <select
          value={gridSize}
          onChange={(e) => {
            const size = Number(e.currentTarget.value);
            set({ gridSize: size, step: Math.min(step, size * size) });
          }}
          data-testid="scans-grid"
        >
          {GRID_SIZES.map((s) => (
            <option key={s} value={s}>
              {s}×{s}
            </option>
          ))}
        </select>
      </label>
      <button
        type="button"
        className="button"
        onClick={() => set({ playing: !playing, step: !playing && step >= length ? 0 : step })}
        data-testid="scans-play"
        aria-pressed={playing}
      >
        {playing ? 'Pause' : 'Play'}
      </button>
      <label className="field inline">
        Speed
        <input
          type="range"
          min={0}
          max={100}
          value={sliderFromSpeed(speed)}
          onChange={(e) => set({ speed: speedFromSlider(Number(e.currentTarget.value)) })}
          data-testid="scans-speed"
        />
        <span className="muted numeric">{speed} steps/s</span>
      </label>
      <label className="field inline step-field">
        Step
        <input
          type="range"
          min={0}
          max={length}
          value={Math.min(length, Math.floor(step))}
          onChange={(e) => set({ step: Number(e.currentTarget.value), playing: false })}
          data-testid="scans-step"
        />
        <span className="numeric" data-testid="scans-step-value">
          {Math.min(length, Math.floor(step))} / {length}
        </span>
      </label>
    </div>
  );
}

/** The Scans screen: how the five scan methods and their eight directions walk the feature grid, and models compared. */
export function ScansView() {
  const { order, direction, gridSize, step, image, set } = useScansStore();
  const length = gridSize * gridSize;
  useAnimation(length);
  const background = useImageBitmap(image);
  const shownStep = Math.min(length, step);
  return (
    <section className="scans-view" data-testid="scans-view">
      <section className="panel">
        <h3 className="panel-title">Scan paths</h3>
        <Controls length={length} />
        <ImageChooser />
        <div className="scan-main">
          <ScanCanvas
            order={order}
            size={gridSize}
            direction={direction}
            step={shownStep}
            side={448}
            background={background}
            testId="scan-main"
          />
          <div className="scan-info">
            <h4>
              {SCAN_ORDER_LABELS[order]} · direction {direction}: {DIRECTION_LABELS[direction]}
            </h4>
            <p>{ORDER_NOTES[order]}</p>
            <p>
              {DIRECTION_NOTES[direction % 4]}
              {direction >= 4 && ' Walked backwards: it starts where the forward direction ends.'}
            </p>
            <p className="muted">
              {stageNote(gridSize)} Each of its SS2D blocks scans the grid in 8 directions (or 4 or 2, as the model’s
              config says) and merges the results.
            </p>
            <div className="color-legend">
              <span>first step</span>
              <span className="color-legend-bar" style={{ background: PATH_GRADIENT }} />
              <span>last step</span>
            </div>
            <p className="muted">Ring: where the scan starts. Dot: the current step.</p>
          </div>
        </div>
      </section>
      <section className="panel">
        <h3 className="panel-title">All eight directions of {SCAN_ORDER_LABELS[order]}</h3>
        <div className="scan-multiples four-columns" data-testid="scans-directions">
          {DIRECTION_LABELS.map((label, d) => (
            <ScanCanvas
              key={label}
              order={order}
              size={gridSize}
              direction={d}
              step={shownStep}
              side={212}
              background={background}
              label={`${d}: ${label}`}
              selected={d === direction}
              onClick={() => set({ direction: d })}
            />
          ))}
        </div>
      </section>
      <section className="panel">
        <h3 className="panel-title">
          The five methods, direction {direction} ({DIRECTION_LABELS[direction]})
        </h3>
        <div className="scan-multiples" data-testid="scans-methods">
          {SCAN_ORDERS.map((o) => (
            <ScanCanvas
              key={o}
              order={o}
              size={gridSize}
              direction={direction}
              step={shownStep}
              side={204}
              background={background}
              label={SCAN_ORDER_LABELS[o]}
              selected={o === order}
              onClick={() => set({ order: o })}
            />
          ))}
        </div>
      </section>
      <ModelComparisonPanel imageName={image?.name} />
    </section>
  );
}
