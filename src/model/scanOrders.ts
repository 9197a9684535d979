/**
 * Hybrid scanning (MAMBAAD.md §7): the five scan orders of the official HSCANS/SCANS module and the composite
 * direction tables that the selective scan kernel walks. A permutation `perm` has `perm[t]` = the raster index
 * (row·S + col) visited at step t; "encode" in the official code is the gather `seq[t] = x[perm[t]]`.
 */

export const SCAN_ORDERS = ['sweep', 'scan', 'zorder', 'zigzag', 'hilbert'] as const;
export type ScanOrder = (typeof SCAN_ORDERS)[number];

/** Number of scan directions an SS2D may use (`num_direction` in the official code). */
export type DirectionCount = 2 | 4 | 8;

export function isScanOrder(name: string): name is ScanOrder {
  return (SCAN_ORDERS as readonly string[]).includes(name);
}

function log2OfPowerOfTwo(what: string, size: number): number {
  if (!Number.isInteger(size) || size < 1 || (size & (size - 1)) !== 0 || size > 1 << 15) {
    throw new Error(`${what}: grid size must be a power of two up to 32768, got ${size}`);
  }
  return Math.log2(size);
}

/**
 * Skilling's transpose-to-axes Hilbert decode for 2 dimensions, bit-identical to numpy-hilbert-curve 1.0.1's
 * `decode(h, 2, bits)`: returns [x, y] where the official code uses x as the column and y as the row.
 */
export function hilbertDecode2D(h: number, bits: number): [x: number, y: number] {
  const coords = [0, 0];
  // h holds 2·bits bits, most significant level first, each level as (dim 0, dim 1).
  for (let level = 0; level < bits; level++) {
    for (let dim = 0; dim < 2; dim++) {
      const bitPosition = (bits - 1 - level) * 2 + (1 - dim);
      if ((h >>> bitPosition) & 1) coords[dim]! |= 1 << (bits - 1 - level);
    }
  }
  // Gray decode.
  let t = coords[1]! >> 1;
  coords[1]! ^= coords[0]!;
  coords[0]! ^= t;
  // Undo the excess work of the encoder.
  for (let q = 2; q !== 1 << bits; q <<= 1) {
    const p = q - 1;
    for (const i of [1, 0]) {
      if (coords[i]! & q) {
        coords[0]! ^= p;
      } else {
        t = (coords[0]! ^ coords[i]!) & p;
        coords[0]! ^= t;
        coords[i]! ^= t;
      }
    }
  }
  return [coords[0]!, coords[1]!];
}

/** Keeps the bits of z at positions offset, offset+2, offset+4, … and packs them together. */
function compactEveryOtherBit(z: number, offset: number): number {
  let out = 0;
  for (let bit = 0; offset + 2 * bit < 31; bit++) out |= ((z >> (offset + 2 * bit)) & 1) << bit;
  return out;
}

/** The official scan permutation of one order on an S×S grid (S a power of two), as HSCANS builds `index_flat`. */
export function scanPermutation(order: ScanOrder, size: number): Uint32Array {
  const bits = log2OfPowerOfTwo(`scan order ${order}`, size);
  const length = size * size;
  const perm = new Uint32Array(length);
  switch (order) {
    case 'sweep':
      for (let t = 0; t < length; t++) perm[t] = t;
      break;
    case 'scan':
      // Boustrophedon: odd rows run right to left.
      for (let row = 0; row < size; row++) {
        for (let col = 0; col < size; col++) {
          perm[row * size + col] = row * size + (row % 2 === 1 ? size - 1 - col : col);
        }
      }
      break;
    case 'zorder':
      // pyzorder's rc(z) returns (even bits, odd bits) and the code writes c·S + r: the odd bits are the row.
      for (let z = 0; z < length; z++) perm[z] = compactEveryOtherBit(z, 1) * size + compactEveryOtherBit(z, 0);
      break;
    case 'zigzag': {
      let t = 0;
      for (let diagonal = 0; diagonal < 2 * size - 1; diagonal++) {
        const lo = Math.max(0, diagonal - size + 1);
        const hi = Math.min(diagonal, size - 1);
        for (let j = lo; j <= hi; j++) {
          // Even diagonals go up and to the right, odd ones down and to the left.
          const [row, col] = diagonal % 2 === 0 ? [diagonal - j, j] : [j, diagonal - j];
          perm[t++] = row * size + col;
        }
      }
      break;
    }
    case 'hilbert':
      for (let h = 0; h < length; h++) {
        const [x, y] = hilbertDecode2D(h, bits);
        perm[h] = x + y * size;
      }
      break;
    default: {
      const unknown: never = order;
      throw new Error(`unknown scan order ${String(unknown)}`);
    }
  }
  return perm;
}

/**
 * The 8 composite gathers of §7.2 from one scan permutation: G_k[t] is the raster index of the original image read
 * at step t of direction k. Directions 0..3 apply the same curve to the identity, transpose, rot90-CCW and horizontal
 * flip views; 4..7 are 0..3 reversed in time.
 */
export function eightDirectionGathers(perm: Uint32Array, size: number): Uint32Array[] {
  const length = size * size;
  checkPermutation(perm, length);
  const gathers = Array.from({ length: 8 }, () => new Uint32Array(length));
  for (let t = 0; t < length; t++) {
    const i = Math.floor(perm[t]! / size);
    const j = perm[t]! % size;
    const views = [i * size + j, j * size + i, j * size + (size - 1 - i), i * size + (size - 1 - j)];
    for (let g = 0; g < 4; g++) {
      gathers[g]![t] = views[g]!;
      gathers[g + 4]![length - 1 - t] = views[g]!;
    }
  }
  return gathers;
}

/**
 * Which of the 8 directions of §7.2 the module's direction k uses. The official forward_core stacks the first K/2
 * geometric views (identity; + transpose for K ≥ 4; + rot90 and flip for K = 8) and appends them reversed in time, so
 * module direction k is view k mod K/2, reversed when k ≥ K/2.
 */
export function directionsUsed(directions: DirectionCount): number[] {
  checkDirectionCount(directions);
  const half = directions / 2;
  return Array.from({ length: directions }, (_, k) => (k % half) + (k >= half ? 4 : 0));
}

/**
 * The order in which PyTorch sums the decoded directions: view g forward, then view g reversed, for g = 0..K/2-1
 * (K = 8: 0,4,1,5,2,6,3,7; K = 4: 0,2,1,3; K = 2: 0,1).
 */
export function mergeOrder(directions: DirectionCount): number[] {
  checkDirectionCount(directions);
  const half = directions / 2;
  return Array.from({ length: directions }, (_, i) => Math.floor(i / 2) + (i % 2) * half);
}

/**
 * The [K, L] direction table for the scan kernel: row k holds the raster positions that module direction k visits,
 * step by step. `perm` is a scan permutation (from scanPermutation, or a checkpoint's `scans.index_flat`).
 */
export function directionTable(perm: Uint32Array, size: number, directions: DirectionCount): Uint32Array {
  const gathers = eightDirectionGathers(perm, size);
  const length = size * size;
  const table = new Uint32Array(directions * length);
  for (const [k, direction] of directionsUsed(directions).entries()) table.set(gathers[direction]!, k * length);
  return table;
}

function checkDirectionCount(directions: number): void {
  if (directions !== 2 && directions !== 4 && directions !== 8) {
    throw new Error(`number of scan directions must be 2, 4 or 8, got ${directions}`);
  }
}

/** Throws unless perm is a permutation of 0..length-1 (a checkpoint's index table could be anything). */
export function checkPermutation(perm: ArrayLike<number>, length: number): void {
  if (perm.length !== length) throw new Error(`scan permutation has ${perm.length} entries, expected ${length}`);
  const seen = new Uint8Array(length);
  for (let t = 0; t < length; t++) {
    const p = perm[t]!;
    if (!Number.isInteger(p) || p < 0 || p >= length || seen[p]) {
      throw new Error(`scan permutation is not a permutation of 0..${length - 1}: entry ${t} is ${p}`);
    }
    seen[p] = 1;
  }
}
