import { memo, useEffect, useRef, useState } from 'react';
import { type InspectItem, useInspectStore } from '../../store/inspectStore.ts';
import type { ColormapName, ColorRange } from '../common/colormaps.ts';
import { useColorScale } from './colorScale.ts';
import { thumbnailPixels } from './overlay.ts';

const STATE_ORDER = { analyzing: 1, queued: 2, cancelled: 3, failed: 4, done: 0 } as const;

/** Analysed images by descending score, then the ones in progress, then those that failed. */
export function galleryOrder(items: readonly InspectItem[]): InspectItem[] {
  return [...items].sort((a, b) => {
    const byState = STATE_ORDER[a.state] - STATE_ORDER[b.state];
    if (byState !== 0) return byState;
    return (b.result?.score ?? 0) - (a.result?.score ?? 0);
  });
}

/** True once the element has been on screen (thumbnails are drawn only for tiles that are seen). */
function useSeen(ref: React.RefObject<Element | null>): boolean {
  const [seen, setSeen] = useState(false);
  useEffect(() => {
    const element = ref.current;
    if (!element || seen) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) setSeen(true);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref, seen]);
  return seen;
}

const Thumbnail = memo(function Thumbnail(props: {
  item: InspectItem;
  colormap: ColormapName;
  range: ColorRange;
  opacity: number;
}) {
  const ref = useRef<HTMLCanvasElement>(null);
  const seen = useSeen(ref);
  const { result } = props.item;
  useEffect(() => {
    if (!seen || !result || !ref.current) return;
    ref.current.getContext('2d')!.putImageData(
      thumbnailPixels(result, {
        colormap: props.colormap,
        range: props.range,
        opacity: props.opacity,
        threshold: undefined,
      }),
      0,
      0,
    );
  }, [seen, result, props.colormap, props.range, props.opacity]);
  return (
    <canvas
      ref={ref}
      className="tile-image"
      width={result?.size ?? 1}
      height={result?.size ?? 1}
      style={result ? { aspectRatio: `${result.width} / ${result.height}` } : undefined}
    />
  );
});

function verdictClass(score: number, threshold: number | undefined): string {
  if (threshold === undefined) return '';
  return score >= threshold ? ' anomalous' : ' normal';
}

function TileBody({ item, threshold }: { item: InspectItem; threshold: number | undefined }) {
  switch (item.state) {
    case 'done':
      return (
        <span className="tile-caption">
          <span className={`tile-score${verdictClass(item.result!.score, threshold)}`} data-testid="tile-score">
            {item.result!.score.toFixed(3)}
          </span>
          <span className="tile-name">{item.name}</span>
        </span>
      );
    case 'failed':
      return (
        <span className="tile-caption">
          <span className="tile-error" data-testid="tile-error">
            {item.error}
          </span>
          <span className="tile-name">{item.name}</span>
        </span>
      );
    default:
      return (
        <span className="tile-caption">
          <span className="tile-pending">
            {item.state === 'analyzing' ? 'Analysing…' : item.state === 'queued' ? 'Queued' : 'Cancelled'}
          </span>
          <span className="tile-name">{item.name}</span>
        </span>
      );
  }
}

/** The session's images as tiles, highest anomaly score first; each shows its score or why it failed. */
export function Gallery() {
  const items = useInspectStore((s) => s.items);
  const selectedId = useInspectStore((s) => s.selectedId);
  const select = useInspectStore((s) => s.select);
  const display = useInspectStore((s) => s.display);
  const { range, decisionThreshold } = useColorScale();
  const [rangeKey, setRangeKey] = useState(range);
  // Keep one range object per distinct range, so memoised thumbnails redraw only when it really changes.
  if (rangeKey.low !== range.low || rangeKey.high !== range.high) setRangeKey(range);
  return (
    <ul className="gallery" data-testid="inspect-gallery">
      {galleryOrder(items).map((item) => (
        <li key={item.id}>
          <button
            type="button"
            className={`tile ${item.state}`}
            aria-pressed={item.id === selectedId}
            data-testid="inspect-tile"
            data-state={item.state}
            data-name={item.name}
            title={item.error ? `${item.name}: ${item.error}` : item.name}
            onClick={() => select(item.id)}
          >
            {item.result ? (
              <Thumbnail item={item} colormap={display.colormap} range={rangeKey} opacity={display.opacity} />
            ) : (
              <span className={`tile-image placeholder ${item.state}`} aria-hidden="true">
                {item.state === 'failed' ? '!' : item.state === 'analyzing' ? <span className="spinner" /> : ''}
              </span>
            )}
            <TileBody item={item} threshold={decisionThreshold} />
          </button>
        </li>
      ))}
    </ul>
  );
}
