/** A float32 tensor in a GPU buffer. Row-major (the last axis is contiguous); the shape is metadata only. */
export class Tensor {
  readonly size: number;
  private disposed = false;

  constructor(
    readonly shape: readonly number[],
    readonly buffer: GPUBuffer,
    private readonly onDispose: (buffer: GPUBuffer) => void,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`invalid tensor shape [${shape.join(', ')}]`);
    }
    this.size = shape.reduce((n, d) => n * d, 1);
  }

  get byteLength(): number {
    return this.size * 4;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Returns the buffer to the pool. Work already recorded that reads this tensor still sees its contents. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.onDispose(this.buffer);
  }
}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function assertShape(what: string, actual: readonly number[], expected: readonly number[]): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Error(`${what}: expected shape ${shapeToString(expected)}, got ${shapeToString(actual)}`);
  }
}
