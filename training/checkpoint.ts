import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { parseSafetensors, type SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { CONFIG_METADATA_KEY, serializeModelConfig } from '../src/model/config.ts';
import { AdamW } from './optimizer.ts';
import { loadTrainableMambaAD, type TrainableMambaAD } from './trainer.ts';
import { modelTensors } from './weightsFile.ts';

/**
 * A resumable training checkpoint, one safetensors file:
 * - every tensor of the weights file (modelTensors: parameters, BatchNorm running statistics and batch counts, scan
 *   tables) under the official names, in float32, so the file also loads as a weights file;
 * - AdamW's moments as `optimizer.m.<parameter name>` and `optimizer.v.<parameter name>`;
 * - metadata `mambaad.config` (the model config) and `mambaad.checkpoint` (JSON: CheckpointState, with the loop
 *   position, AdamW's step count and the run's options).
 * Restoring it and continuing gives the same batches, DropPath draws, learning rates and updates as a run that never
 * stopped (the loop derives them from the seed and the step).
 */
export const CHECKPOINT_METADATA_KEY = 'mambaad.checkpoint';
export const CHECKPOINT_FORMAT = 'mambaad-checkpoint/1';
const MOMENT_PREFIXES = { m: 'optimizer.m.', v: 'optimizer.v.' } as const;

/** What a run was started with: enough to continue it without the user choosing anything again. */
export interface TrainingRunOptions {
  epochs: number;
  batch: number;
  seed: number;
  lr: number;
  dropPathRate: number;
  /** The training images' names, in the order the loop indexes them. */
  images: string[];
}

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  /** Loop steps done: the loop resumes with startStep = step. */
  step: number;
  /** AdamW's update count (its bias correction). */
  optimizerStep: number;
  options: TrainingRunOptions;
  /** Host facts (run id, where the images came from, start time, ...), kept as given. */
  record: Record<string, unknown>;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export async function writeCheckpoint(
  runtime: GpuRuntime,
  model: TrainableMambaAD,
  optimizer: AdamW,
  position: { step: number; options: TrainingRunOptions; record?: Record<string, unknown> },
): Promise<Uint8Array> {
  const tensors = await modelTensors(runtime, model, 'F32');
  const moments = optimizer.state();
  for (const [i, p] of model.parameters.entries()) {
    for (const [key, list] of [
      ['m', moments.m],
      ['v', moments.v],
    ] as const) {
      const tensor = list[i];
      if (!tensor) throw new CheckpointError(`checkpoint: AdamW has no ${key} for ${p.name}`);
      tensors[`${MOMENT_PREFIXES[key]}${p.name}`] = {
        dtype: 'F32',
        shape: p.param.shape,
        data: await runtime.read(tensor),
      };
    }
  }
  const state: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    step: position.step,
    optimizerStep: moments.step,
    options: position.options,
    record: position.record ?? {},
  };
  return writeSafetensors(tensors, {
    [CONFIG_METADATA_KEY]: serializeModelConfig(model.config),
    [CHECKPOINT_METADATA_KEY]: JSON.stringify(state),
  });
}

const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;

function parseState(json: string | undefined, what: string): CheckpointState {
  if (json === undefined) {
    throw new CheckpointError(`${what}: not a training checkpoint (no "${CHECKPOINT_METADATA_KEY}" in its metadata)`);
  }
  let raw: Partial<CheckpointState>;
  try {
    raw = JSON.parse(json) as Partial<CheckpointState>;
  } catch {
    throw new CheckpointError(`${what}: ${CHECKPOINT_METADATA_KEY} is not valid JSON`);
  }
  const options = (raw.options ?? {}) as Partial<TrainingRunOptions>;
  const problems: string[] = [];
  if (raw.format !== CHECKPOINT_FORMAT)
    problems.push(`format ${JSON.stringify(raw.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (!isCount(raw.step)) problems.push(`step ${JSON.stringify(raw.step)} is not a count`);
  if (!isCount(raw.optimizerStep)) problems.push(`optimizerStep ${JSON.stringify(raw.optimizerStep)} is not a count`);
  if (!isCount(options.epochs) || options.epochs < 1) problems.push('options.epochs must be a positive integer');
  if (!isCount(options.batch) || options.batch < 2) problems.push('options.batch must be an integer of at least 2');
  if (!Number.isFinite(options.seed)) problems.push('options.seed must be a number');
  if (!(typeof options.lr === 'number' && options.lr > 0)) problems.push('options.lr must be a positive number');
  if (!(typeof options.dropPathRate === 'number' && options.dropPathRate >= 0 && options.dropPathRate < 1)) {
    problems.push('options.dropPathRate must be in [0, 1)');
  }
  if (!Array.isArray(options.images) || !options.images.every((n) => typeof n === 'string')) {
    problems.push('options.images must be a list of image names');
  }
  if (problems.length > 0) throw new CheckpointError(`${what}: invalid checkpoint: ${problems.join('; ')}`);
  return {
    format: CHECKPOINT_FORMAT,
    step: raw.step as number,
    optimizerStep: raw.optimizerStep as number,
    options: options as TrainingRunOptions,
    record: typeof raw.record === 'object' && raw.record !== null ? raw.record : {},
  };
}

export interface ParsedCheckpoint {
  file: SafetensorsFile;
  state: CheckpointState;
}

/** Parses a checkpoint and checks its metadata (no GPU work): the state says what the run was. */
export function readCheckpoint(bytes: Uint8Array, what = 'training checkpoint'): ParsedCheckpoint {
  const file = parseSafetensors(bytes, what);
  return { file, state: parseState(file.metadata[CHECKPOINT_METADATA_KEY], what) };
}

/** The model and optimiser exactly as they were when the checkpoint was written, on `runtime`. */
export function restoreCheckpoint(
  runtime: GpuRuntime,
  checkpoint: ParsedCheckpoint,
  what = 'training checkpoint',
): { model: TrainableMambaAD; optimizer: AdamW } {
  const model = loadTrainableMambaAD(runtime, checkpoint.file, what);
  const moments = (key: 'm' | 'v') =>
    model.parameters.map((p) => {
      const name = `${MOMENT_PREFIXES[key]}${p.name}`;
      if (!checkpoint.file.has(name)) throw new CheckpointError(`${what}: missing optimizer state "${name}"`);
      return checkpoint.file.float32(name);
    });
  const optimizer = new AdamW(runtime, model.parameters);
  optimizer.restore({ step: checkpoint.state.optimizerStep, m: moments('m'), v: moments('v') });
  return { model, optimizer };
}

/** How `requested` differs from the options a checkpoint was written with (empty: the run can resume exactly). */
export function optionsDifferences(stored: TrainingRunOptions, requested: TrainingRunOptions): string[] {
  const differences: string[] = [];
  for (const key of ['epochs', 'batch', 'seed', 'lr', 'dropPathRate'] as const) {
    if (stored[key] !== requested[key])
      differences.push(`${key} ${requested[key]} (the checkpoint has ${stored[key]})`);
  }
  const common = Math.min(stored.images.length, requested.images.length);
  const i = stored.images.slice(0, common).findIndex((name, k) => name !== requested.images[k]);
  if (stored.images.length !== requested.images.length || i >= 0) {
    const at = i >= 0 ? `; the first difference is image ${i + 1}: ${requested.images[i]} vs ${stored.images[i]}` : '';
    differences.push(`images: ${requested.images.length} (the checkpoint has ${stored.images.length})${at}`);
  }
  return differences;
}
