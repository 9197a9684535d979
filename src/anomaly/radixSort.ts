/**
 * Ascending LSD radix sort of float32 values (three 11-bit digits of an order-preserving uint32 key), optionally
 * carrying a uint32 payload along. Linear time and no per-element objects, so it sorts tens of millions of map
 * values in a browser tab. Values must not be NaN (the metrics reject NaN before anything is stored); -0 sorts just
 * before +0, which compare equal, so ties stay contiguous.
 */

const DIGIT_BITS = 11;
const DIGIT_COUNT = 3;
const BUCKETS = 1 << DIGIT_BITS;

/** Reusable work buffers, grown on demand, so that sorting many chunks allocates them once. */
export class RadixScratch {
  private keys = new Uint32Array(0);
  private payload = new Uint32Array(0);
  readonly counts = new Uint32Array(DIGIT_COUNT * BUCKETS);

  keyBuffer(length: number): Uint32Array {
    if (this.keys.length < length) this.keys = new Uint32Array(length);
    return this.keys;
  }

  payloadBuffer(length: number): Uint32Array {
    if (this.payload.length < length) this.payload = new Uint32Array(length);
    return this.payload;
  }

  get bytes(): number {
    return this.keys.byteLength + this.payload.byteLength + this.counts.byteLength;
  }
}

/** Sorts `values` ascending in place; `payload[i]` travels with `values[i]` when given. */
export function radixSortFloat32(values: Float32Array, scratch: RadixScratch, payload?: Uint32Array): void {
  const n = values.length;
  if (payload && payload.length !== n) {
    throw new RangeError(`radixSortFloat32: payload has ${payload.length} elements for ${n} values`);
  }
  if (n < 2) return;
  const keys = new Uint32Array(values.buffer, values.byteOffset, n);
  const counts = scratch.counts;
  counts.fill(0);
  // Flip negatives entirely and set the sign bit of positives: unsigned key order is then float order.
  for (let i = 0; i < n; i++) {
    const bits = keys[i]!;
    const key = bits & 0x80000000 ? ~bits : bits | 0x80000000;
    keys[i] = key;
    counts[key & 0x7ff]! += 1;
    counts[BUCKETS + ((key >>> 11) & 0x7ff)]! += 1;
    counts[2 * BUCKETS + (key >>> 22)]! += 1;
  }
  let source = keys;
  let target = scratch.keyBuffer(n);
  let sourcePayload = payload;
  let targetPayload = payload ? scratch.payloadBuffer(n) : undefined;
  for (let digit = 0; digit < DIGIT_COUNT; digit++) {
    const base = digit * BUCKETS;
    const shift = digit * DIGIT_BITS;
    // A digit that all keys share leaves the order unchanged.
    let trivial = false;
    let offset = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const count = counts[base + b]!;
      if (count === n) trivial = true;
      counts[base + b] = offset;
      offset += count;
    }
    if (trivial) continue;
    if (sourcePayload && targetPayload) {
      for (let i = 0; i < n; i++) {
        const key = source[i]!;
        const slot = base + ((key >>> shift) & 0x7ff);
        const position = counts[slot]!;
        counts[slot] = position + 1;
        target[position] = key;
        targetPayload[position] = sourcePayload[i]!;
      }
      [sourcePayload, targetPayload] = [targetPayload, sourcePayload];
    } else {
      for (let i = 0; i < n; i++) {
        const key = source[i]!;
        const slot = base + ((key >>> shift) & 0x7ff);
        const position = counts[slot]!;
        counts[slot] = position + 1;
        target[position] = key;
      }
    }
    [source, target] = [target, source];
  }
  if (source !== keys) keys.set(source.subarray(0, n));
  if (payload && sourcePayload && sourcePayload !== payload) payload.set(sourcePayload.subarray(0, n));
  for (let i = 0; i < n; i++) {
    const key = keys[i]!;
    keys[i] = key & 0x80000000 ? key ^ 0x80000000 : ~key;
  }
}
