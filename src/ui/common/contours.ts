/**
 * Iso-lines of a map at a level (marching squares with linear interpolation), e.g. the outline of what an anomaly map
 * marks as defective at the chosen threshold. Outside the map counts as below the level, so regions touching the
 * border are closed there.
 */

/** Which cell edges a segment joins: 0 top, 1 right, 2 bottom, 3 left. */
type Edge = 0 | 1 | 2 | 3;

// Case index: bit 8 top-left, 4 top-right, 2 bottom-right, 1 bottom-left corner at or above the level.
// Saddles (5 and 10) are resolved by the cell's centre value (the first pair when the centre is above the level).
const SEGMENTS: Record<number, readonly [Edge, Edge][]> = {
  1: [[3, 2]],
  2: [[2, 1]],
  3: [[3, 1]],
  4: [[0, 1]],
  6: [[0, 2]],
  7: [[3, 0]],
  8: [[3, 0]],
  9: [[0, 2]],
  11: [[0, 1]],
  12: [[3, 1]],
  13: [[2, 1]],
  14: [[3, 2]],
};
const SADDLES: Record<number, readonly [readonly [Edge, Edge][], readonly [Edge, Edge][]]> = {
  5: [
    [
      [0, 3],
      [2, 1],
    ],
    [
      [3, 2],
      [0, 1],
    ],
  ],
  10: [
    [
      [0, 1],
      [3, 2],
    ],
    [
      [3, 0],
      [2, 1],
    ],
  ],
};

/** Grows as segments are found; one typed buffer instead of millions of small arrays (this runs on the UI thread). */
class SegmentBuffer {
  private data = new Float32Array(4096);
  length = 0;

  push(x: number, y: number): void {
    if (this.length + 2 > this.data.length) {
      const grown = new Float32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = x;
    this.data[this.length++] = y;
  }

  result(): Float32Array {
    return this.data.slice(0, this.length);
  }
}

/**
 * Segments where `map` (row-major, width x height) crosses `level`, as x0, y0, x1, y1 quadruples in pixel-centre
 * coordinates: pixel (i, j) is at (j, i); the border segments lie half a pixel outside.
 */
export function contourSegments(map: ArrayLike<number>, width: number, height: number, level: number): Float32Array {
  const out = new SegmentBuffer();
  // NaN stands for "outside the map": below the level, and crossed halfway.
  const at = (x: number, y: number): number =>
    x < 0 || y < 0 || x >= width || y >= height ? Number.NaN : map[y * width + x]!;
  const crossing = (a: number, b: number): number => {
    if (Number.isNaN(a) || Number.isNaN(b) || a === b) return 0.5;
    const t = (level - a) / (b - a);
    return Math.min(1, Math.max(0, t));
  };
  for (let y = -1; y < height; y++) {
    for (let x = -1; x < width; x++) {
      const tl = at(x, y);
      const tr = at(x + 1, y);
      const br = at(x + 1, y + 1);
      const bl = at(x, y + 1);
      const index = (tl >= level ? 8 : 0) | (tr >= level ? 4 : 0) | (br >= level ? 2 : 0) | (bl >= level ? 1 : 0);
      if (index === 0 || index === 15) continue;
      let pairs = SEGMENTS[index];
      if (!pairs) {
        const inside = (v: number) => (Number.isNaN(v) ? 0 : v);
        const centre = (inside(tl) + inside(tr) + inside(br) + inside(bl)) / 4;
        pairs = SADDLES[index]![centre >= level ? 0 : 1];
      }
      for (const pair of pairs) {
        for (const edge of pair) {
          if (edge === 0) out.push(x + crossing(tl, tr), y);
          else if (edge === 1) out.push(x + 1, y + crossing(tr, br));
          else if (edge === 2) out.push(x + crossing(bl, br), y + 1);
          else out.push(x, y + crossing(tl, bl));
        }
      }
    }
  }
  return out.result();
}
