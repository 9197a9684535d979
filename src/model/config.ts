import { type DirectionCount, isScanOrder, type ScanOrder } from './scanOrders.ts';

/**
 * A MambaAD model's configuration: everything that differs between models is data here, not code. It travels in a
 * weights file's safetensors metadata under `mambaad.config` (schema in training/reference/README.md).
 */
export interface ModelConfig {
  format: 'mambaad-studio/1';
  /** The frozen CNN encoder whose layer1..3 features the decoder reconstructs. */
  encoder: 'resnet18' | 'resnet34' | 'wide_resnet50_2';
  /** Channels of the encoder's layer1, layer2, layer3 outputs. */
  encoderChannels: [number, number, number];
  /** Decoder stage widths, bottleneck first: [512, 256, 128, 64] in the paper. */
  dims: [number, number, number, number];
  /** HSS blocks per decoder stage: [3, 4, 6, 3] in the paper. */
  depths: [number, number, number, number];
  dState: number;
  scan: ScanOrder;
  directions: DirectionCount;
  /** Input side in pixels; the scan grids are inputSize/32 · 2^stage. */
  inputSize: number;
}

export const CONFIG_METADATA_KEY = 'mambaad.config';

export const PAPER_CONFIG: ModelConfig = {
  format: 'mambaad-studio/1',
  encoder: 'resnet34',
  encoderChannels: [64, 128, 256],
  dims: [512, 256, 128, 64],
  depths: [3, 4, 6, 3],
  dState: 16,
  scan: 'hilbert',
  directions: 8,
  inputSize: 256,
};

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

const ENCODERS = ['resnet18', 'resnet34', 'wide_resnet50_2'] as const;

function isIntArray(value: unknown, length: number): value is number[] {
  return Array.isArray(value) && value.length === length && value.every((v) => Number.isInteger(v) && v > 0);
}

/** Parses and checks the metadata JSON (snake_case keys, as the Python reference writes them). */
export function parseModelConfig(json: string, what = 'weights file'): ModelConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch {
    throw new ModelConfigError(`${what}: ${CONFIG_METADATA_KEY} is not valid JSON`);
  }
  const problems: string[] = [];
  if (raw.format !== 'mambaad-studio/1')
    problems.push(`format is ${JSON.stringify(raw.format)}, expected "mambaad-studio/1"`);
  const encoder = raw.encoder;
  if (!ENCODERS.includes(encoder as (typeof ENCODERS)[number])) {
    problems.push(`encoder ${JSON.stringify(encoder)} is not one of ${ENCODERS.join(', ')}`);
  }
  if (!isIntArray(raw.encoder_channels, 3)) problems.push('encoder_channels must be 3 positive integers');
  if (!isIntArray(raw.dims, 4)) problems.push('dims must be 4 positive integers');
  if (!isIntArray(raw.depths, 4)) problems.push('depths must be 4 positive integers');
  else if (raw.depths.some((d) => d % 3 !== 0 && d % 2 !== 0)) {
    problems.push(
      `depths ${JSON.stringify(raw.depths)}: each must be a multiple of 2 or 3 (LSS modules of 2 or 3 blocks)`,
    );
  }
  if (raw.d_state !== 16)
    problems.push(`d_state ${JSON.stringify(raw.d_state)} is not supported (the scan kernel keeps 16)`);
  if (typeof raw.scan !== 'string' || !isScanOrder(raw.scan))
    problems.push(`scan ${JSON.stringify(raw.scan)} is unknown`);
  if (raw.directions !== 2 && raw.directions !== 4 && raw.directions !== 8) {
    problems.push(`directions ${JSON.stringify(raw.directions)} must be 2, 4 or 8`);
  }
  const inputSize = raw.input_size;
  if (typeof inputSize !== 'number' || !Number.isInteger(inputSize) || inputSize % 32 !== 0 || inputSize < 64) {
    problems.push(`input_size ${JSON.stringify(inputSize)} must be a multiple of 32, at least 64`);
  } else if (raw.scan === 'hilbert' || raw.scan === 'zorder') {
    const grid = inputSize / 32;
    if ((grid & (grid - 1)) !== 0) problems.push(`input_size ${inputSize}: ${raw.scan} scans need a power-of-two grid`);
  }
  if (problems.length > 0) throw new ModelConfigError(`${what}: invalid model config: ${problems.join('; ')}`);
  return {
    format: 'mambaad-studio/1',
    encoder: encoder as ModelConfig['encoder'],
    encoderChannels: raw.encoder_channels as ModelConfig['encoderChannels'],
    dims: raw.dims as ModelConfig['dims'],
    depths: raw.depths as ModelConfig['depths'],
    dState: 16,
    scan: raw.scan as ScanOrder,
    directions: raw.directions as DirectionCount,
    inputSize: inputSize as number,
  };
}

export function serializeModelConfig(config: ModelConfig): string {
  return JSON.stringify({
    format: config.format,
    encoder: config.encoder,
    encoder_channels: config.encoderChannels,
    dims: config.dims,
    depths: config.depths,
    d_state: config.dState,
    scan: config.scan,
    directions: config.directions,
    input_size: config.inputSize,
  });
}

/** LSS modules of one decoder stage: depth/3 modules of 3 HSS blocks, else depth/2 of 2 (MAMBAAD.md §4). */
export function lssModuleBlocks(depth: number): number[] {
  if (depth % 3 === 0) return new Array(depth / 3).fill(3);
  if (depth % 2 === 0) return new Array(depth / 2).fill(2);
  throw new ModelConfigError(`decoder depth ${depth} is neither a multiple of 3 nor of 2`);
}

/** SS2D sizes for a stage of width C (MAMBAAD.md §6). */
export function ss2dSizes(channels: number, dState: number): { dInner: number; dtRank: number; projWidth: number } {
  const dtRank = Math.ceil(channels / 16);
  return { dInner: 2 * channels, dtRank, projWidth: dtRank + 2 * dState };
}

/** The scan grid side of decoder stage i: 8, 16, 32, 64 at a 256 input. */
export function stageGridSize(config: ModelConfig, stage: number): number {
  return (config.inputSize / 32) * 2 ** stage;
}
