import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { directionsUsed, directionTable, SCAN_ORDERS, scanPermutation } from '../../model/scanOrders.ts';
import { pathPoints, scanPathCells } from './scanPath.ts';

/** The cell (row, column) under a drawn point on a square of `side` pixels. */
function cellUnder(points: Float32Array, t: number, size: number, side: number): [row: number, column: number] {
  const cell = side / size;
  return [Math.floor(points[2 * t + 1]! / cell), Math.floor(points[2 * t]! / cell)];
}

describe('scan paths as drawn', () => {
  it('visit, direction by direction, the cells of the kernel’s direction table (8 and 4 directions)', () => {
    for (const size of [4, 8]) {
      const side = 200;
      for (const order of SCAN_ORDERS) {
        const length = size * size;
        for (const directions of [8, 4] as const) {
          const table = directionTable(scanPermutation(order, size), size, directions);
          directionsUsed(directions).forEach((direction, k) => {
            const points = pathPoints(scanPathCells(order, size, direction), size, side);
            const drawn = Array.from({ length }, (_, t) => cellUnder(points, t, size, side));
            const expected = Array.from(table.subarray(k * length, (k + 1) * length), (index) => [
              Math.floor(index / size),
              index % size,
            ]);
            expect(drawn, `${order} ${size}x${size} direction ${direction}`).toEqual(expected);
          });
        }
      }
    }
  });

  it('draws the Hilbert directions of the official test vectors', () => {
    const official = JSON.parse(
      readFileSync(new URL('../../../../shared/spec/hilbert_8dir_gather.json', import.meta.url), 'utf8'),
    ) as Record<string, number[][]>;
    for (let direction = 0; direction < 8; direction++) {
      const points = pathPoints(scanPathCells('hilbert', 8, direction), 8, 80);
      const drawn = Array.from({ length: 64 }, (_, t) => {
        const [row, column] = cellUnder(points, t, 8, 80);
        return row * 8 + column;
      });
      expect(drawn, `direction ${direction}`).toEqual(official['8']![direction]);
    }
  });

  it('puts rows down and columns across the canvas (hand-checked 4x4 paths)', () => {
    const centres = (order: (typeof SCAN_ORDERS)[number], direction: number) =>
      Array.from(pathPoints(scanPathCells(order, 4, direction), 4, 40));
    // Sweep: left to right along the top row first.
    expect(centres('sweep', 0).slice(0, 8)).toEqual([5, 5, 15, 5, 25, 5, 35, 5]);
    // Transposed: down the first column first.
    expect(centres('sweep', 1).slice(0, 8)).toEqual([5, 5, 5, 15, 5, 25, 5, 35]);
    // Reversed: from the bottom-right corner, right to left.
    expect(centres('sweep', 4).slice(0, 4)).toEqual([35, 35, 25, 35]);
    // Boustrophedon: the second row runs right to left.
    expect(centres('scan', 0).slice(8, 12)).toEqual([35, 15, 25, 15]);
    // Mirrored: the curve seen in a horizontal flip starts at the top-right corner.
    expect(centres('sweep', 3).slice(0, 4)).toEqual([35, 5, 25, 5]);
  });

  it('refuses a direction outside 0..7', () => {
    expect(() => scanPathCells('sweep', 8, 8)).toThrow(/0\.\.7/);
  });
});
