import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import type { SafetensorsFile } from '../src/io/safetensors.ts';
import type { ScanSettings } from '../src/model/decoder.ts';
import { ParameterReader } from '../src/model/parameters.ts';
import { isScanOrder } from '../src/model/scanOrders.ts';
import { maxAbsoluteError, maxRelativeError } from '../src/testing/reference.ts';
import type { Gradients } from './decoderTraining.ts';

/** A golden's `case` metadata (spec/golden/README.md): the module and its settings. */
export interface GoldenCase {
  module?: string;
  d_model?: number;
  hidden_dim?: number;
  size?: number;
  dim?: number;
  depth?: number;
  scan_type?: string;
  num_direction?: number;
  dims_decoder?: number[];
  depths_decoder?: number[];
}

export function goldenCase(golden: SafetensorsFile): GoldenCase {
  return JSON.parse(golden.metadata.case ?? '{}') as GoldenCase;
}

/** A golden case's setting, or an error naming what the metadata lacks. */
export function caseValue<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`golden metadata has no ${what}`);
  return value;
}

export function goldenScan(c: GoldenCase): ScanSettings {
  const order = c.scan_type ?? '';
  const directions = c.num_direction;
  if (!isScanOrder(order) || (directions !== 2 && directions !== 4 && directions !== 8)) {
    throw new Error(`golden metadata names an unknown scan: ${order} x${directions}`);
  }
  return { order, directions };
}

/** Loads weights from the golden's param.* tensors with `build`, failing on any missing or misshapen one. */
export function loadGoldenWeights<T>(
  runtime: GpuRuntime,
  golden: SafetensorsFile,
  name: string,
  build: (reader: ParameterReader) => T,
): T {
  const reader = new ParameterReader(runtime, golden, name);
  const weights = build(reader);
  reader.finish();
  return weights;
}

/**
 * The biases of the 1x1 convs right in front of an InstanceNorm (the LSS branches' conv1b*, conv1a*) have a true
 * gradient of 0: the norm subtracts the per-channel mean, bias included. The goldens hold ~1e-5 of rounding noise
 * there, so a relative error against them means nothing; they are measured against the scale of the same conv's
 * weight gradient instead (max abs error / max |d weight|).
 */
const NORMED_BIAS = /conv1[ab][57]\.0\.bias$/;

export interface GradientComparison {
  /** Error per gradient, keyed 'grad.input' and 'grad.param.<name>' (max abs error / max abs golden value). */
  errors: Record<string, number>;
  /** Golden parameter gradients with no computed counterpart, and computed ones the golden lacks. */
  missing: string[];
  unexpected: string[];
}

/**
 * Compares dx with the golden's single grad.input.* and every grad.param.* with the computed gradient of that name
 * (relative to the golden's module), then frees dx and the gradients.
 */
export async function compareGradients(
  runtime: GpuRuntime,
  golden: SafetensorsFile,
  dx: Tensor,
  grads: Gradients,
): Promise<GradientComparison> {
  const inputNames = golden.names.filter((n) => n.startsWith('grad.input.'));
  if (inputNames.length !== 1) throw new Error(`the golden has ${inputNames.length} input gradients, expected 1`);
  const errors: Record<string, number> = {
    'grad.input': maxRelativeError(await runtime.read(dx), golden.float32(inputNames[0] ?? '')),
  };
  dx.dispose();
  const expected = golden.names.filter((n) => n.startsWith('grad.param.')).map((n) => n.slice('grad.param.'.length));
  const missing = expected.filter((name) => !grads.has(name));
  const unexpected = [...grads.keys()].filter((name) => !expected.includes(name));
  for (const [name, grad] of grads) {
    if (!expected.includes(name)) continue;
    const values = await runtime.read(grad);
    const reference = golden.float32(`grad.param.${name}`);
    if (NORMED_BIAS.test(name)) {
      const weight = golden.float32(`grad.param.${name.replace(/bias$/, 'weight')}`);
      const scale = weight.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      errors[`grad.param.${name} (abs / max |d weight|)`] = maxAbsoluteError(values, reference) / scale;
    } else {
      errors[`grad.param.${name}`] = maxRelativeError(values, reference);
    }
  }
  for (const grad of grads.values()) grad.dispose();
  return { errors, missing, unexpected };
}
