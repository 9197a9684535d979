import { lssModuleBlocks, type ModelConfig, ss2dSizes, stageGridSize } from './config.ts';
import { scanPermutation } from './scanOrders.ts';

/**
 * Every tensor of a MambaAD weights file (official names) with its shape and its initial value (MAMBAAD.md §8), so
 * a model can be trained from scratch in the browser. The PyTorch reference draws from another generator, so values
 * differ; training parity starts from the reference's exported weights instead (§8, last note).
 */
export interface ParameterSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** False for buffers: BatchNorm running statistics, num_batches_tracked, the scan index tables. */
  readonly trainable: boolean;
  readonly dtype: 'F32' | 'I64';
  init(random: () => number): Float32Array | BigInt64Array;
}

const SSM_STATES = 16;

function size(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** A standard normal sample (Box-Muller). */
function gaussian(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

const fill = (shape: readonly number[], value: (i: number) => number) =>
  Float32Array.from({ length: size(shape) }, (_, i) => value(i));
const normal = (std: number) => (shape: readonly number[], random: () => number) =>
  fill(shape, () => std * gaussian(random));
const uniform = (bound: number) => (shape: readonly number[], random: () => number) =>
  fill(shape, () => (random() * 2 - 1) * bound);
const constant = (value: number) => (shape: readonly number[]) => fill(shape, () => value);

function parameter(
  name: string,
  shape: readonly number[],
  init: (shape: readonly number[], random: () => number) => Float32Array,
): ParameterSpec {
  return { name, shape, trainable: true, dtype: 'F32', init: (random) => init(shape, random) };
}

function buffer(name: string, shape: readonly number[], value: (i: number) => number): ParameterSpec {
  return { name, shape, trainable: false, dtype: 'F32', init: () => fill(shape, value) };
}

function batchNorm(name: string, channels: number): ParameterSpec[] {
  return [
    parameter(`${name}.weight`, [channels], constant(1)),
    parameter(`${name}.bias`, [channels], constant(0)),
    buffer(`${name}.running_mean`, [channels], () => 0),
    buffer(`${name}.running_var`, [channels], () => 1),
    {
      name: `${name}.num_batches_tracked`,
      shape: [],
      trainable: false,
      dtype: 'I64',
      init: () => new BigInt64Array(1),
    },
  ];
}

/** MFF_OCE's convs: kaiming_normal(fan_out, relu); their biases keep PyTorch's U(±1/√fan_in). */
function mffConv(name: string, out: number, inC: number, k: number, bias: boolean): ParameterSpec[] {
  const specs = [parameter(`${name}.weight`, [out, inC, k, k], normal(Math.sqrt(2 / (out * k * k))))];
  if (bias) specs.push(parameter(`${name}.bias`, [out], uniform(1 / Math.sqrt(inC * k * k))));
  return specs;
}

export function mffOceParameters(
  prefix: string,
  encoderChannels: readonly number[],
  outChannels: number,
): ParameterSpec[] {
  const [c1, c2, c3] = encoderChannels as [number, number, number];
  const planes = outChannels / 4;
  const specs = [
    ...mffConv(`${prefix}conv1`, c2, c1, 3, false),
    ...batchNorm(`${prefix}bn1`, c2),
    ...mffConv(`${prefix}conv2`, c3, c2, 3, false),
    ...batchNorm(`${prefix}bn2`, c3),
    ...mffConv(`${prefix}conv21`, c2, c2, 1, true),
    ...batchNorm(`${prefix}bn21`, c2),
    ...mffConv(`${prefix}conv31`, c3, c3, 1, true),
    ...batchNorm(`${prefix}bn31`, c3),
    ...mffConv(`${prefix}convf`, c3, c3, 1, true),
    ...batchNorm(`${prefix}bnf`, c3),
  ];
  for (let i = 0; i < 3; i++) {
    const block = `${prefix}bn_layer.${i}.`;
    const inC = i === 0 ? c3 : outChannels;
    specs.push(
      ...mffConv(`${block}conv1`, planes, inC, 1, false),
      ...batchNorm(`${block}bn1`, planes),
      ...mffConv(`${block}conv2`, planes, planes, 3, false),
      ...batchNorm(`${block}bn2`, planes),
      ...mffConv(`${block}conv3`, outChannels, planes, 1, false),
      ...batchNorm(`${block}bn3`, outChannels),
    );
    if (i === 0) {
      specs.push(
        ...mffConv(`${block}downsample.0`, outChannels, inC, 1, false),
        ...batchNorm(`${block}downsample.1`, outChannels),
      );
    }
  }
  return specs;
}

/** LSS-module convs (and SS2D's depthwise conv): N(0, √(2/fan_out)), fan_out = k·k·out/groups; biases 0. */
function lssConv(
  name: string,
  out: number,
  inPerGroup: number,
  k: number,
  groups: number,
  bias: boolean,
): ParameterSpec[] {
  const specs = [parameter(`${name}.weight`, [out, inPerGroup, k, k], normal(Math.sqrt(2 / ((k * k * out) / groups))))];
  if (bias) specs.push(parameter(`${name}.bias`, [out], constant(0)));
  return specs;
}

/** nn.Linear under MambaUPNet's init: trunc_normal(std 0.02) (timm truncates at ±2, i.e. 100σ: never in practice). */
const linearInit = normal(0.02);

function ss2dParameters(prefix: string, channels: number, grid: number, directions: number, scan: ModelConfig['scan']) {
  const { dInner: D, dtRank: R, projWidth } = ss2dSizes(channels, SSM_STATES);
  const K = directions;
  const perm = scanPermutation(scan, grid);
  const inverse = new Uint32Array(perm.length);
  perm.forEach((p, t) => {
    inverse[p] = t;
  });
  const index = (name: string, values: Uint32Array): ParameterSpec => ({
    name,
    shape: [1, 1, values.length],
    trainable: false,
    dtype: 'I64',
    init: () => BigInt64Array.from(values, (v) => BigInt(v)),
  });
  const softplusInverse = (dt: number) => dt + Math.log(-Math.expm1(-dt));
  return [
    parameter(`${prefix}x_proj_weight`, [K, projWidth, D], uniform(1 / Math.sqrt(D))),
    parameter(`${prefix}dt_projs_weight`, [K, D, R], uniform(R ** -0.5)),
    parameter(`${prefix}dt_projs_bias`, [K, D], (shape, random) =>
      fill(shape, () => {
        const dt = Math.exp(Math.log(1e-3) + random() * (Math.log(1e-1) - Math.log(1e-3)));
        return softplusInverse(Math.max(dt, 1e-4));
      }),
    ),
    parameter(`${prefix}A_logs`, [K * D, SSM_STATES], (shape) => fill(shape, (i) => Math.log((i % SSM_STATES) + 1))),
    parameter(`${prefix}Ds`, [K * D], constant(1)),
    parameter(`${prefix}in_proj.weight`, [2 * D, channels], linearInit),
    ...lssConv(`${prefix}conv2d`, D, 1, 3, D, true),
    parameter(`${prefix}out_norm.weight`, [D], constant(1)),
    parameter(`${prefix}out_norm.bias`, [D], constant(0)),
    parameter(`${prefix}out_proj.weight`, [channels, D], linearInit),
    index(`${prefix}scans.index_flat`, perm),
    index(`${prefix}scans.index_flat_inv`, inverse),
  ];
}

export function decoderParameters(
  prefix: string,
  dims: readonly number[],
  depths: readonly number[],
  grid: number,
  scan: ModelConfig['scan'],
  directions: number,
): ParameterSpec[] {
  const specs: ParameterSpec[] = [];
  dims.forEach((C, i) => {
    const stage = `${prefix}layers_up.${i}.`;
    const size = grid * 2 ** i;
    lssModuleBlocks(depths[i]!).forEach((blocks, j) => {
      const module = `${stage}blocks.${j}.`;
      for (let m = 0; m < blocks; m++) {
        const block = `${module}smm_blocks.${m}.`;
        specs.push(
          parameter(`${block}ln_1.weight`, [C], constant(1)),
          parameter(`${block}ln_1.bias`, [C], constant(0)),
          ...ss2dParameters(`${block}self_attention.`, C, size, directions, scan),
        );
      }
      specs.push(
        ...lssConv(`${module}conv1b7.0`, C, C, 1, 1, true),
        ...lssConv(`${module}conv1a7.0`, C, C, 1, 1, true),
        ...lssConv(`${module}conv1b5.0`, C, C, 1, 1, true),
        ...lssConv(`${module}conv1a5.0`, C, C, 1, 1, true),
        ...lssConv(`${module}conv55.0`, C, 1, 5, C, false),
        ...lssConv(`${module}conv77.0`, C, 1, 7, C, false),
        ...lssConv(`${module}finalconv11`, C, 3 * C, 1, 1, true),
      );
    });
    if (i > 0) {
      specs.push(
        parameter(`${stage}upsample.expand.weight`, [4 * C, 2 * C], linearInit),
        parameter(`${stage}upsample.norm.weight`, [C], constant(1)),
        parameter(`${stage}upsample.norm.bias`, [C], constant(0)),
      );
    }
  });
  return specs;
}

/** Every tensor of a weights file for `config`: `mff_oce.*` then `net_s.*`. */
export function modelParameters(config: ModelConfig): ParameterSpec[] {
  return [
    ...mffOceParameters('mff_oce.', config.encoderChannels, config.dims[0]),
    ...decoderParameters(
      'net_s.',
      config.dims,
      config.depths,
      stageGridSize(config, 0),
      config.scan,
      config.directions,
    ),
  ];
}
