import { useEffect, useMemo, useRef } from 'react';
import type { ScanOrder } from '../../model/scanOrders.ts';
import { colormapTable } from '../common/colormaps.ts';
import { pathPoints, scanPathCells } from './scanPath.ts';

/** The path is stroked in this many colour bands (start to end), one canvas path each. */
const COLOR_BANDS = 48;

const bandColors = (() => {
  const table = colormapTable('turbo');
  return Array.from({ length: COLOR_BANDS }, (_, band) => {
    // Skip turbo's darkest blues: they vanish on the dark background.
    const i = Math.round(30 + (band / (COLOR_BANDS - 1)) * 205);
    return `rgb(${table[3 * i]}, ${table[3 * i + 1]}, ${table[3 * i + 2]})`;
  });
})();

/** A CSS gradient of the path's colours from the first step to the last, for the legend. */
export const PATH_GRADIENT = `linear-gradient(to right, ${bandColors.filter((_, i) => i % 8 === 0 || i === COLOR_BANDS - 1).join(', ')})`;

function drawScan(
  context: CanvasRenderingContext2D,
  points: Float32Array,
  size: number,
  side: number,
  step: number,
  background: CanvasImageSource | undefined,
): void {
  const cell = side / size;
  context.clearRect(0, 0, side, side);
  if (background) {
    context.drawImage(background, 0, 0, side, side);
    // Darken the image a little so that the path stays the brightest thing on it.
    context.fillStyle = 'rgba(10, 12, 16, 0.45)';
    context.fillRect(0, 0, side, side);
  } else {
    context.fillStyle = '#0f1318';
    context.fillRect(0, 0, side, side);
  }
  if (cell >= 4) {
    context.strokeStyle = background ? 'rgba(255, 255, 255, 0.22)' : 'rgba(255, 255, 255, 0.09)';
    context.lineWidth = 1;
    context.beginPath();
    for (let i = 0; i <= size; i++) {
      const at = Math.round(i * cell) + 0.5;
      context.moveTo(at, 0);
      context.lineTo(at, side);
      context.moveTo(0, at);
      context.lineTo(side, at);
    }
    context.stroke();
  }
  const length = points.length / 2;
  const visited = Math.max(0, Math.min(length, Math.floor(step)));
  context.lineWidth = Math.max(1, Math.min(3.5, cell * 0.22));
  context.lineJoin = 'round';
  context.lineCap = 'round';
  const perBand = Math.max(1, Math.ceil(length / COLOR_BANDS));
  for (let first = 0; first < visited - 1; first += perBand) {
    const last = Math.min(visited - 1, first + perBand);
    context.strokeStyle = bandColors[Math.min(COLOR_BANDS - 1, Math.floor((first / length) * COLOR_BANDS))]!;
    context.beginPath();
    context.moveTo(points[2 * first]!, points[2 * first + 1]!);
    for (let t = first + 1; t <= last; t++) context.lineTo(points[2 * t]!, points[2 * t + 1]!);
    context.stroke();
  }
  const marker = Math.max(2.5, Math.min(7, cell * 0.32));
  if (length > 0) {
    // The start: a hollow ring; the current step: a filled dot.
    context.strokeStyle = '#ffffff';
    context.lineWidth = 1.5;
    context.beginPath();
    context.arc(points[0]!, points[1]!, marker, 0, 2 * Math.PI);
    context.stroke();
  }
  if (visited > 0) {
    const head = visited - 1;
    context.fillStyle = '#ffffff';
    context.strokeStyle = '#0f1318';
    context.lineWidth = 1.5;
    context.beginPath();
    context.arc(points[2 * head]!, points[2 * head + 1]!, marker, 0, 2 * Math.PI);
    context.fill();
    context.stroke();
  }
}

/**
 * One scan direction drawn over the feature grid: the cells in visiting order as a line coloured from the first
 * step to the last (the first `step` steps), the start as a ring, the current cell as a dot, over an optional image.
 */
export function ScanCanvas(props: {
  order: ScanOrder;
  size: number;
  direction: number;
  step: number;
  side: number;
  background?: CanvasImageSource;
  label?: string;
  testId?: string;
  onClick?(): void;
  selected?: boolean;
}) {
  const { order, size, direction, step, side, background } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const points = useMemo(
    () => pathPoints(scanPathCells(order, size, direction), size, side),
    [order, size, direction, side],
  );
  useEffect(() => {
    const element = canvas.current;
    const context = element?.getContext('2d');
    if (!element || !context) return;
    const ratio = window.devicePixelRatio || 1;
    const pixels = Math.round(side * ratio);
    if (element.width !== pixels) {
      element.width = pixels;
      element.height = pixels;
    }
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    drawScan(context, points, size, side, step, background);
  }, [points, size, side, step, background]);
  const figure = (
    <figure className={`scan-figure${props.selected ? ' selected' : ''}`}>
      <canvas
        ref={canvas}
        style={{ width: side, height: side }}
        data-testid={props.testId}
        data-order={order}
        data-direction={direction}
        data-size={size}
        data-step={Math.floor(step)}
        aria-label={`${order} scan, direction ${direction}, ${size}×${size} grid, step ${Math.floor(step)}`}
        role="img"
      />
      {props.label && <figcaption>{props.label}</figcaption>}
    </figure>
  );
  return props.onClick ? (
    <button type="button" className="scan-figure-button" onClick={props.onClick} aria-pressed={props.selected}>
      {figure}
    </button>
  ) : (
    figure
  );
}
