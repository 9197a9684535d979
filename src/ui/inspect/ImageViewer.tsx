import { useEffect, useMemo, useRef, useState } from 'react';
import { type InspectItem, type InspectResult, useInspectStore } from '../../store/inspectStore.ts';
import { useColorScale } from './colorScale.ts';
import { contourPath, drawComposite, overlayCanvas } from './overlay.ts';

/** Image pixels to pane pixels: screen = image · scale + offset (CSS pixels). */
interface View {
  scale: number;
  x: number;
  y: number;
}

interface Size {
  width: number;
  height: number;
}

const MAX_SCALE = 64;
/** Larger images are shown downscaled by the browser's decoder (the overlay is computed at 1024 px anyway). */
const MAX_DISPLAY_PIXELS = 16_000_000;

function fitView(pane: Size, image: Size): View {
  const scale = Math.min(pane.width / image.width, pane.height / image.height) * 0.96;
  return { scale, x: (pane.width - image.width * scale) / 2, y: (pane.height - image.height * scale) / 2 };
}

/** The model input (size x size RGB) as an image, for files the browser's own decoder refuses. */
function modelInputImage(result: InspectResult): Promise<ImageBitmap> {
  const rgba = new Uint8ClampedArray(result.size * result.size * 4);
  for (let i = 0; i < result.size * result.size; i++) {
    rgba.set(result.modelInput.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = 255;
  }
  return createImageBitmap(new ImageData(rgba, result.size, result.size));
}

/** The original image, decoded off the UI thread by the browser (createImageBitmap). */
function useOriginalImage(item: InspectItem, result: InspectResult): ImageBitmap | undefined {
  const [image, setImage] = useState<ImageBitmap>();
  useEffect(() => {
    let live = true;
    let bitmap: ImageBitmap | undefined;
    const pixels = result.width * result.height;
    const shrink = pixels > MAX_DISPLAY_PIXELS ? Math.sqrt(MAX_DISPLAY_PIXELS / pixels) : 1;
    const options: ImageBitmapOptions =
      shrink < 1
        ? {
            resizeWidth: Math.round(result.width * shrink),
            resizeHeight: Math.round(result.height * shrink),
            resizeQuality: 'high',
          }
        : {};
    setImage(undefined);
    createImageBitmap(item.source, options)
      .catch(() => modelInputImage(result))
      .then((decoded) => {
        bitmap = decoded;
        if (live) setImage(decoded);
        else decoded.close();
      });
    return () => {
      live = false;
      bitmap?.close();
    };
  }, [item.source, result]);
  return image;
}

function Pane(props: {
  label: string;
  image: ImageBitmap | undefined;
  result: InspectResult;
  overlay?: { canvas: HTMLCanvasElement; opacity: number; contours?: Path2D };
  view: View | undefined;
  onSize?(size: Size): void;
  onZoom(factor: number, x: number, y: number): void;
  onPan(dx: number, dy: number): void;
  onHover(point: { x: number; y: number } | undefined): void;
  onFit(): void;
}) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const [size, setSize] = useState<Size>();
  const { onSize, onZoom } = props;

  useEffect(() => {
    const canvas = canvasRef.current!;
    const observer = new ResizeObserver(([entry]) => {
      if (!entry) return;
      const next = { width: entry.contentRect.width, height: entry.contentRect.height };
      setSize(next);
      onSize?.(next);
    });
    observer.observe(canvas);
    // Wheel zoom must cancel page scrolling, which React's passive wheel listener cannot.
    const wheel = (event: WheelEvent) => {
      event.preventDefault();
      const box = canvas.getBoundingClientRect();
      onZoom(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
    };
    canvas.addEventListener('wheel', wheel, { passive: false });
    return () => {
      observer.disconnect();
      canvas.removeEventListener('wheel', wheel);
    };
  }, [onSize, onZoom]);

  useEffect(() => {
    const canvas = canvasRef.current;
    if (!canvas || !size || !props.view) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(size.width * ratio);
    canvas.height = Math.round(size.height * ratio);
    const context = canvas.getContext('2d')!;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (!props.image) return;
    const { scale, x, y } = props.view;
    context.setTransform(ratio * scale, 0, 0, ratio * scale, ratio * x, ratio * y);
    // Past 4x, show pixels as squares: that is what zooming in is for.
    context.imageSmoothingEnabled = scale < 4;
    drawComposite(context, props.image, props.result, props.overlay, scale);
  }, [size, props.view, props.image, props.result, props.overlay]);

  const toImage = (event: React.PointerEvent) => {
    if (!props.view) return undefined;
    const box = event.currentTarget.getBoundingClientRect();
    const x = (event.clientX - box.left - props.view.x) / props.view.scale;
    const y = (event.clientY - box.top - props.view.y) / props.view.scale;
    return x >= 0 && y >= 0 && x < props.result.width && y < props.result.height ? { x, y } : undefined;
  };

  return (
    <div className="viewer-pane">
      <span className="viewer-pane-label">{props.label}</span>
      <canvas
        ref={canvasRef}
        className="viewer-canvas"
        onPointerDown={(event) => event.currentTarget.setPointerCapture(event.pointerId)}
        onPointerMove={(event) => {
          if (event.buttons & 1) props.onPan(event.movementX, event.movementY);
          else props.onHover(toImage(event));
        }}
        onPointerLeave={() => props.onHover(undefined)}
        onDoubleClick={props.onFit}
      />
    </div>
  );
}

/** The selected image with its anomaly map: zoom (wheel, buttons), pan (drag), overlay or side by side. */
export function ImageViewer({ item, result }: { item: InspectItem; result: InspectResult }) {
  const display = useInspectStore((s) => s.display);
  const { range, threshold } = useColorScale();
  const image = useOriginalImage(item, result);
  const overlayImage = useMemo(
    () => overlayCanvas(result, display.colormap, { low: range.low, high: range.high }),
    [result, display.colormap, range.low, range.high],
  );
  const contours = useMemo(
    () => (display.contours ? contourPath(result, threshold) : undefined),
    [result, display.contours, threshold],
  );
  const overlay = useMemo(
    () => ({ canvas: overlayImage, opacity: display.opacity, contours }),
    [overlayImage, display.opacity, contours],
  );
  const [paneSize, setPaneSize] = useState<Size>();
  const [userView, setUserView] = useState<View>();
  const [hover, setHover] = useState<{ x: number; y: number }>();

  // A new image or layout starts fitted to the pane.
  // biome-ignore lint/correctness/useExhaustiveDependencies: the reset is what the dependencies trigger
  useEffect(() => setUserView(undefined), [item.id, display.layout]);
  const view = userView ?? (paneSize ? fitView(paneSize, result) : undefined);

  const onSize = useMemo(() => (size: Size) => setPaneSize(size), []);
  const viewRef = useRef(view);
  viewRef.current = view;
  const onZoom = useMemo(
    () => (factor: number, x: number, y: number) => {
      const current = viewRef.current;
      if (!current) return;
      const scale = Math.min(MAX_SCALE, Math.max(0.02, current.scale * factor));
      const k = scale / current.scale;
      setUserView({ scale, x: x - (x - current.x) * k, y: y - (y - current.y) * k });
    },
    [],
  );
  const onPan = (dx: number, dy: number) => {
    if (view) setUserView({ ...view, x: view.x + dx, y: view.y + dy });
  };
  const zoomCentre = (factor: number) => {
    if (paneSize) onZoom(factor, paneSize.width / 2, paneSize.height / 2);
  };
  const actualSize = () => {
    if (!paneSize) return;
    setUserView({ scale: 1, x: (paneSize.width - result.width) / 2, y: (paneSize.height - result.height) / 2 });
  };

  const hoverValue = hover
    ? result.map[
        Math.min(result.size - 1, Math.floor((hover.y * result.size) / result.height)) * result.size +
          Math.min(result.size - 1, Math.floor((hover.x * result.size) / result.width))
      ]
    : undefined;
  const paneProps = {
    image,
    result,
    view,
    onZoom,
    onPan,
    onHover: setHover,
    onFit: () => setUserView(undefined),
  };
  const ready = image !== undefined && view !== undefined;
  return (
    <div
      className="viewer"
      data-testid="inspect-viewer"
      data-image={item.name}
      data-ready={ready ? 'true' : 'false'}
      data-layout={display.layout}
    >
      <div className="viewer-panes">
        {display.layout === 'side-by-side' && <Pane label="Original" {...paneProps} />}
        <Pane label="Anomaly map" overlay={overlay} onSize={onSize} {...paneProps} />
      </div>
      <div className="viewer-toolbar">
        <button type="button" className="button small" onClick={() => zoomCentre(1.25)} aria-label="Zoom in">
          +
        </button>
        <button type="button" className="button small" onClick={() => zoomCentre(0.8)} aria-label="Zoom out">
          −
        </button>
        <button type="button" className="button small" onClick={() => setUserView(undefined)}>
          Fit
        </button>
        <button type="button" className="button small" onClick={actualSize}>
          1:1
        </button>
        <span className="viewer-zoom">{view ? `${Math.round(view.scale * 100)}%` : ''}</span>
        <span className="viewer-readout">
          {hover && hoverValue !== undefined
            ? `x ${Math.floor(hover.x)}, y ${Math.floor(hover.y)} · anomaly ${hoverValue.toFixed(4)}`
            : 'Wheel to zoom, drag to pan, double-click to fit'}
        </span>
      </div>
    </div>
  );
}
