import type { GpuRuntime } from '../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../gpu/tensor.ts';

/** The subset of a safetensors file (or any checkpoint reader) that weight loaders need. */
export interface ParameterSource {
  has(name: string): boolean;
  tensor(name: string): { readonly shape: readonly number[] };
  float32(name: string): Float32Array;
}

export class WeightsError extends Error {
  override name = 'WeightsError';
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  // A scalar may be stored as [] or [1].
  const na = a.length === 1 && a[0] === 1 ? [] : a;
  const nb = b.length === 1 && b[0] === 1 ? [] : b;
  return na.length === nb.length && na.every((d, i) => d === nb[i]);
}

/**
 * Reads and uploads named parameters, checking each one's presence, shape and finiteness. Every problem is collected
 * and finish() reports them all in one message (and frees what was uploaded), so a mismatched file is described at
 * once instead of one error per attempt.
 */
export class ParameterReader {
  private readonly problems: string[] = [];
  private readonly uploaded: Tensor[] = [];
  readonly used = new Set<string>();

  constructor(
    readonly runtime: GpuRuntime,
    private readonly source: ParameterSource,
    private readonly what: string,
  ) {}

  has(name: string): boolean {
    return this.source.has(name);
  }

  /** Records a problem found by a loader's own check (e.g. a scan order that disagrees with the config). */
  report(problem: string): void {
    this.problems.push(problem);
  }

  /** Uploads `name`, optionally under another shape of the same size (e.g. a 1x1 conv's OIHW weight as a linear's). */
  upload(name: string, shape: readonly number[], uploadShape: readonly number[] = shape): Tensor {
    const tensor = this.runtime.upload(uploadShape, this.read(name, shape), name);
    this.uploaded.push(tensor);
    return tensor;
  }

  /** Uploads values derived from parameters (e.g. a BatchNorm's scale and shift). */
  uploadDerived(label: string, shape: readonly number[], values: Float32Array): Tensor {
    const tensor = this.runtime.upload(shape, values, label);
    this.uploaded.push(tensor);
    return tensor;
  }

  /** The values of `name`, or an empty array (and a recorded problem) when it is missing or misshapen. */
  read(name: string, shape: readonly number[]): Float32Array {
    this.used.add(name);
    if (!this.source.has(name)) {
      this.problems.push(`missing "${name}" ${shapeToString(shape)}`);
      return new Float32Array(shape.reduce((n, d) => n * d, 1));
    }
    const actual = this.source.tensor(name).shape;
    if (!sameShape(actual, shape)) {
      this.problems.push(`"${name}" is ${shapeToString(actual)}, expected ${shapeToString(shape)}`);
      return new Float32Array(shape.reduce((n, d) => n * d, 1));
    }
    const values = this.source.float32(name);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        this.problems.push(`"${name}" holds a non-finite value at index ${i}`);
        break;
      }
    }
    return values;
  }

  /** Throws one WeightsError naming every problem seen, after freeing the uploads. */
  finish(): void {
    if (this.problems.length === 0) return;
    for (const tensor of this.uploaded) tensor.dispose();
    const shown = this.problems.slice(0, 12).join('; ');
    const more = this.problems.length > 12 ? `; and ${this.problems.length - 12} more` : '';
    throw new WeightsError(`${this.what}: ${shown}${more}`);
  }
}
