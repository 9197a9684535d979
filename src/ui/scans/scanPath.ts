/**
 * What the Scans screen draws: the cells of a scan grid in the order one direction of one scan method visits them
 * (src/model/scanOrders.ts, the tables the selective-scan kernel walks), and where those cells sit on a canvas.
 */
import { eightDirectionGathers, type ScanOrder, scanPermutation } from '../../model/scanOrders.ts';

/** The eight directions of MAMBAAD.md §7.2, in the order of eightDirectionGathers. */
export const DIRECTION_LABELS = [
  'as the curve',
  'transposed',
  'rotated 90°',
  'mirrored',
  'reversed',
  'transposed, reversed',
  'rotated 90°, reversed',
  'mirrored, reversed',
] as const;

export const SCAN_ORDER_LABELS: Record<ScanOrder, string> = {
  sweep: 'Sweep',
  scan: 'Scan (boustrophedon)',
  zorder: 'Z-order',
  zigzag: 'Zigzag',
  hilbert: 'Hilbert',
};

/** Scan grid sides the screen offers: the decoder's stage grids at a 256-pixel input (powers of two, as Hilbert and Z-order need). */
export const GRID_SIZES = [8, 16, 32, 64] as const;

const cache = new Map<string, Uint32Array[]>();

/** Raster indices (row·size + column) of the cells that direction `direction` of `order` visits, step by step. */
export function scanPathCells(order: ScanOrder, size: number, direction: number): Uint32Array {
  const key = `${order}/${size}`;
  let gathers = cache.get(key);
  if (!gathers) {
    gathers = eightDirectionGathers(scanPermutation(order, size), size);
    cache.set(key, gathers);
  }
  const cells = gathers[direction];
  if (!cells) throw new RangeError(`scan direction must be 0..7, got ${direction}`);
  return cells;
}

/**
 * Canvas coordinates of each step's cell centre on a square of `side` pixels: x from the column, y from the row
 * (row 0 at the top, as images are stored). Interleaved x, y.
 */
export function pathPoints(cells: Uint32Array, size: number, side: number): Float32Array {
  const cell = side / size;
  const points = new Float32Array(cells.length * 2);
  for (let t = 0; t < cells.length; t++) {
    const index = cells[t]!;
    points[2 * t] = ((index % size) + 0.5) * cell;
    points[2 * t + 1] = (Math.floor(index / size) + 0.5) * cell;
  }
  return points;
}
