/**
 * Drawing an anomaly map over its image: the map coloured, scaled to the image (half-pixel centres, the geometry of
 * the resize that made the model input), blended with the chosen opacity, and the threshold's contours.
 */
import type { InspectResult } from '../../store/inspectStore.ts';
import { type ColormapName, type ColorRange, colorize } from '../common/colormaps.ts';
import { contourSegments } from '../common/contours.ts';

export interface OverlayStyle {
  colormap: ColormapName;
  range: ColorRange;
  opacity: number;
  /** Draw the outline where the map crosses this value; undefined: no contours. */
  threshold: number | undefined;
}

/**
 * The coloured map at its own resolution; the viewer's canvas scales it to the image with bilinear smoothing
 * (half-pixel centres, like the resize that made the model input). The map is Gaussian-blurred, so interpolating
 * colours instead of values is invisible, and the UI thread colours 65k pixels instead of the image's millions.
 */
export function overlayCanvas(result: InspectResult, colormap: ColormapName, range: ColorRange): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = result.size;
  canvas.height = result.size;
  canvas
    .getContext('2d')!
    .putImageData(new ImageData(colorize(result.map, colormap, range), result.size, result.size), 0, 0);
  return canvas;
}

/** The threshold's contours in the original image's pixel coordinates. */
export function contourPath(result: InspectResult, threshold: number): Path2D {
  const segments = contourSegments(result.map, result.size, result.size, threshold);
  const sx = result.width / result.size;
  const sy = result.height / result.size;
  const path = new Path2D();
  for (let i = 0; i < segments.length; i += 4) {
    path.moveTo((segments[i]! + 0.5) * sx, (segments[i + 1]! + 0.5) * sy);
    path.lineTo((segments[i + 2]! + 0.5) * sx, (segments[i + 3]! + 0.5) * sy);
  }
  return path;
}

/** Draws the image, its overlay and contours into a context whose transform maps image pixels to the target. */
export function drawComposite(
  context: CanvasRenderingContext2D,
  image: CanvasImageSource,
  result: InspectResult,
  overlay: { canvas: HTMLCanvasElement; opacity: number; contours?: Path2D } | undefined,
  pixelsPerImagePixel: number,
): void {
  context.drawImage(image, 0, 0, result.width, result.height);
  if (!overlay) return;
  const smoothing = context.imageSmoothingEnabled;
  // The map is smooth whatever the zoom; only the image shows its pixels as squares.
  context.imageSmoothingEnabled = true;
  context.globalAlpha = overlay.opacity;
  context.drawImage(overlay.canvas, 0, 0, result.width, result.height);
  context.globalAlpha = 1;
  context.imageSmoothingEnabled = smoothing;
  if (overlay.contours) {
    // A dark halo under a light line stays visible on any colour.
    context.lineJoin = 'round';
    context.strokeStyle = 'rgba(0, 0, 0, 0.75)';
    context.lineWidth = 3.5 / pixelsPerImagePixel;
    context.stroke(overlay.contours);
    context.strokeStyle = '#ffffff';
    context.lineWidth = 1.5 / pixelsPerImagePixel;
    context.stroke(overlay.contours);
  }
}

/** A size x size thumbnail: the model input with the coloured map blended over it. */
export function thumbnailPixels(result: InspectResult, style: OverlayStyle): ImageData {
  const { size, modelInput } = result;
  const pixels = colorize(result.map, style.colormap, style.range);
  const alpha = style.opacity;
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) {
      pixels[4 * i + c] = modelInput[3 * i + c]! * (1 - alpha) + pixels[4 * i + c]! * alpha;
    }
  }
  return new ImageData(pixels, size, size);
}

/** The original image at full size with the overlay and contours, as a PNG file. */
export async function overlayPng(image: CanvasImageSource, result: InspectResult, style: OverlayStyle): Promise<Blob> {
  const canvas = document.createElement('canvas');
  canvas.width = result.width;
  canvas.height = result.height;
  const context = canvas.getContext('2d')!;
  const contours = style.threshold === undefined ? undefined : contourPath(result, style.threshold);
  const overlay = { canvas: overlayCanvas(result, style.colormap, style.range), opacity: style.opacity, contours };
  // Lines about 2 px wide on a 1000 px image, proportionally wider on larger ones.
  drawComposite(context, image, result, overlay, Math.min(1, 1000 / Math.max(result.width, result.height)));
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the PNG could not be encoded'))), 'image/png'),
  );
}
