/**
 * Reuses GPU storage buffers by size class. Activations of a forward pass have a handful of distinct sizes that
 * repeat every layer and every batch, so after the first pass almost no buffers are created.
 *
 * Size classes are 2^k, 1.25·2^k, 1.5·2^k and 1.75·2^k bytes: at most 25% slack, few classes.
 * A buffer from the pool holds stale data; zero it (GpuRuntime.zeros) where a kernel accumulates into it.
 */
export const POOLED_USAGE = GPUBufferUsageFlags();

function GPUBufferUsageFlags(): number {
  // GPUBufferUsage is a global in browsers and workers, and in Node once the `webgpu` globals are installed.
  const usage = (globalThis as { GPUBufferUsage?: typeof GPUBufferUsage }).GPUBufferUsage;
  const STORAGE = usage?.STORAGE ?? 0x80;
  const COPY_SRC = usage?.COPY_SRC ?? 0x4;
  const COPY_DST = usage?.COPY_DST ?? 0x8;
  return STORAGE | COPY_SRC | COPY_DST;
}

const MIN_CLASS_BYTES = 256;

export function sizeClass(bytes: number): number {
  if (bytes <= MIN_CLASS_BYTES) return MIN_CLASS_BYTES;
  const power = 2 ** Math.floor(Math.log2(bytes));
  for (const step of [1, 1.25, 1.5, 1.75, 2]) {
    const size = power * step;
    if (size >= bytes) return size;
  }
  return power * 2;
}

export interface BufferPoolStats {
  /** Bytes in buffers that are handed out. */
  liveBytes: number;
  /** Bytes in buffers waiting in the pool. */
  idleBytes: number;
  /** The largest liveBytes + idleBytes seen: the GPU memory this pool has held at its peak. */
  peakBytes: number;
  created: number;
  reused: number;
}

export class BufferPool {
  private readonly idle = new Map<number, GPUBuffer[]>();
  private readonly sizeOf = new WeakMap<GPUBuffer, number>();
  readonly stats: BufferPoolStats = { liveBytes: 0, idleBytes: 0, peakBytes: 0, created: 0, reused: 0 };

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    const reusable = this.idle.get(size)?.pop();
    if (reusable) {
      this.stats.idleBytes -= size;
      this.stats.liveBytes += size;
      this.stats.reused++;
      if (label) reusable.label = label;
      return reusable;
    }
    const buffer = this.device.createBuffer({ size, usage: POOLED_USAGE, label: label ?? `pool/${size}` });
    this.sizeOf.set(buffer, size);
    this.stats.created++;
    this.stats.liveBytes += size;
    this.stats.peakBytes = Math.max(this.stats.peakBytes, this.stats.liveBytes + this.stats.idleBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = this.sizeOf.get(buffer);
    if (size === undefined) throw new Error(`buffer "${buffer.label}" was not acquired from this pool`);
    const list = this.idle.get(size) ?? [];
    if (list.includes(buffer)) throw new Error(`buffer "${buffer.label}" released twice`);
    list.push(buffer);
    this.idle.set(size, list);
    this.stats.liveBytes -= size;
    this.stats.idleBytes += size;
  }

  /** Starts a new peak measurement from what the pool holds now (call after trim() to measure one workload). */
  resetPeak(): void {
    this.stats.peakBytes = this.stats.liveBytes + this.stats.idleBytes;
  }

  /** Frees idle buffers (for example after a large batch, before a training run). */
  trim(): void {
    for (const list of this.idle.values()) for (const buffer of list) buffer.destroy();
    this.idle.clear();
    this.stats.idleBytes = 0;
  }
}
