import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { type SafetensorsFile, type TensorToWrite, writeSafetensors } from '../src/io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, serializeModelConfig } from '../src/model/config.ts';
import { modelParameters, type ParameterSpec } from '../src/model/initialization.ts';
import { batchNormStates, type TrainableMambaAD } from './trainer.ts';

/** Metadata key of the training record (data, epochs, losses, timings) written beside the config. */
export const TRAINING_RECORD_KEY = 'mambaad.training';

/**
 * A fresh weights file for `config` with the spec's initialisation (MAMBAAD.md §8), to train from scratch. `random`
 * is a seeded generator so a run can be repeated.
 */
export function initialWeightsFile(config: ModelConfig, random: () => number): SafetensorsFile {
  return inventoryWeightsFile(config, (spec) => spec.init(random));
}

/**
 * A weights file with the right tensors for `config` but zero-valued floats (index tables are real): for work that
 * needs the model's shapes, not its values, such as planning memory (training/memory.ts). Much faster to make.
 */
export function zeroWeightsFile(config: ModelConfig): SafetensorsFile {
  return inventoryWeightsFile(config, (spec) =>
    spec.dtype === 'I64' ? spec.init(() => 0) : new Float32Array(spec.shape.reduce((n, d) => n * d, 1)),
  );
}

function inventoryWeightsFile(
  config: ModelConfig,
  values: (spec: ParameterSpec) => Float32Array | BigInt64Array,
): SafetensorsFile {
  const tensors = new Map(modelParameters(config).map((spec) => [spec.name, { spec, data: values(spec) }]));
  const get = (name: string) => {
    const entry = tensors.get(name);
    if (!entry) throw new Error(`initial weights: no tensor "${name}"`);
    return entry;
  };
  return {
    metadata: { [CONFIG_METADATA_KEY]: serializeModelConfig(config) },
    names: [...tensors.keys()],
    has: (name) => tensors.has(name),
    tensor: (name) => {
      const { spec, data } = get(name);
      return { name, dtype: spec.dtype, shape: spec.shape, data };
    },
    float32: (name) => {
      const { data } = get(name);
      return data instanceof Float32Array ? data : Float32Array.from(data, Number);
    },
  };
}

/**
 * Every tensor of the model: the trainable parameters as they are now, MFF_OCE's running statistics, and the scan
 * index tables, under the official names and shapes. Driven by the parameter inventory, so a tensor the model lacks
 * is an error here, not a broken file later.
 */
export async function modelTensors(
  runtime: GpuRuntime,
  model: TrainableMambaAD,
  dtype: 'F32' | 'F16' = 'F32',
): Promise<Record<string, TensorToWrite>> {
  const parameters = new Map(model.parameters.map((p) => [p.name, p.param]));
  const batchNorms = batchNormStates(model);
  const out: Record<string, TensorToWrite> = {};
  for (const spec of modelParameters(model.config)) {
    if (spec.dtype === 'I64') {
      // Scan index tables are fixed by the config; num_batches_tracked comes from the BatchNorm state.
      const bn = spec.name.match(/^mff_oce\.(.+)\.num_batches_tracked$/);
      const state = bn ? batchNorms.get(bn[1]!) : undefined;
      const data = state ? BigInt64Array.of(BigInt(state.numBatchesTracked)) : (spec.init(() => 0) as BigInt64Array);
      out[spec.name] = { dtype: 'I64', shape: spec.shape, data };
      continue;
    }
    const running = spec.name.match(/^mff_oce\.(.+)\.(running_mean|running_var)$/);
    const tensor = running
      ? batchNorms.get(running[1]!)?.[running[2] === 'running_mean' ? 'runningMean' : 'runningVar']
      : parameters.get(spec.name);
    if (!tensor) throw new Error(`export: the model has no tensor for "${spec.name}"`);
    const values = await runtime.read(tensor);
    if (values.length !== spec.shape.reduce((n, d) => n * d, 1)) {
      throw new Error(`export: "${spec.name}" holds ${values.length} values, expected [${spec.shape.join(', ')}]`);
    }
    out[spec.name] = { dtype, shape: spec.shape, data: values };
  }
  return out;
}

/** The model as a weights file (modelTensors), with the config and `record` in the metadata. */
export async function exportWeightsFile(
  runtime: GpuRuntime,
  model: TrainableMambaAD,
  record: Record<string, unknown>,
  dtype: 'F32' | 'F16' = 'F32',
): Promise<Uint8Array> {
  return writeSafetensors(await modelTensors(runtime, model, dtype), {
    [CONFIG_METADATA_KEY]: serializeModelConfig(model.config),
    [TRAINING_RECORD_KEY]: JSON.stringify(record),
  });
}
