import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, shapeToString, type Tensor } from '../../gpu/tensor.ts';
import { chunkPartials, REDUCTION_CHUNK_ROWS, reductionChunks, sumChunks } from './reduce.ts';

/**
 * kernels/norm.wgsl: LayerNorm (plain and SS2D's gated one), InstanceNorm2d and BatchNorm, channels-last; inference,
 * and for training their backward passes and BatchNorm with batch statistics.
 */
const family = 'norm';
const AFFINE_WORKGROUP_SIZE = 256;
/** instance_norm and the per-channel reductions of training cover this many channels per workgroup. */
const INSTANCE_CHANNELS = 16;

/** layer_norm's workgroup: rows share its 256 threads, threadsPerRow each. */
const ROW_WORKGROUP_SIZE = 256;

/** Options of both LayerNorms. */
export interface LayerNormOptions {
  eps: number;
  /**
   * Threads that cooperate on one row: a power of two from 1 to 256. By default 1 on a software adapter, where any
   * workgroup barrier makes the kernel 15-40x slower (SwiftShader, measured), else about C/4 (at least 4) with
   * workgroup tree reductions. Tests set it to cover both.
   */
  threadsPerRow?: number;
}

function threadsPerRow(runtime: GpuRuntime, channels: number, requested: number | undefined): number {
  if (requested !== undefined) {
    if (!Number.isInteger(Math.log2(requested)) || requested < 1 || requested > ROW_WORKGROUP_SIZE) {
      throw new Error(
        `layerNorm: threadsPerRow must be a power of two from 1 to ${ROW_WORKGROUP_SIZE}, got ${requested}`,
      );
    }
    return requested;
  }
  if (runtime.isSoftwareAdapter) return 1;
  let threads = 4;
  while (threads < ROW_WORKGROUP_SIZE && threads * 4 < channels) threads *= 2;
  return threads;
}

/** A gate's channel window: rows pixelStride apart, channels from channelOffset. */
interface ChannelWindow {
  pixelStride: number;
  channelOffset: number;
}

const NO_WINDOW: ChannelWindow = { pixelStride: 0, channelOffset: 0 };

function rowParams(rows: number, channels: number, eps: number, gate = NO_WINDOW, gateGradient = NO_WINDOW) {
  const params = new Uint32Array(7);
  params.set([rows, channels]);
  new Float32Array(params.buffer, 8, 1)[0] = eps;
  params.set([gate.pixelStride, gate.channelOffset, gateGradient.pixelStride, gateGradient.channelOffset], 3);
  return params;
}

/** kernels/norm.wgsl's ChannelParams: per-channel reductions over rows in chunks of REDUCTION_CHUNK_ROWS. */
function channelParams(rows: number, channels: number, eps = 0, momentum = 0): Uint32Array {
  const params = new Uint32Array(5);
  params.set([rows, channels, REDUCTION_CHUNK_ROWS]);
  new Float32Array(params.buffer, 12, 2).set([eps, momentum]);
  return params;
}

function checkEps(what: string, eps: number): void {
  if (!(eps > 0)) throw new Error(`${what}: eps must be positive, got ${eps}`);
}

function lastAxis(what: string, x: Tensor): { rows: number; channels: number } {
  const channels = x.shape.at(-1);
  if (channels === undefined || channels === 0)
    throw new Error(`${what}: input has no channels: ${shapeToString(x.shape)}`);
  return { rows: x.size / channels, channels };
}

function dispatchRows(
  runtime: GpuRuntime,
  entryPoint: string,
  params: Uint32Array,
  buffers: Tensor[],
  rows: number,
  threads: number,
): void {
  runtime.dispatch({
    kernel: { family, entryPoint, constants: { THREADS_PER_ROW: threads } },
    params,
    buffers,
    workgroups: runtime.workgroupsFor(Math.ceil(rows / (ROW_WORKGROUP_SIZE / threads)), 1),
  });
}

/** PyTorch's LayerNorm over the last axis of x [..., C] with affine weight and bias [C] (biased variance). */
export function layerNorm(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  options: LayerNormOptions,
): Tensor {
  const { rows, channels } = lastAxis('layerNorm', x);
  assertShape('layerNorm weight', weight.shape, [channels]);
  assertShape('layerNorm bias', bias.shape, [channels]);
  checkEps('layerNorm', options.eps);
  const threads = threadsPerRow(runtime, channels, options.threadsPerRow);
  const out = runtime.empty(x.shape, 'layerNorm');
  dispatchRows(runtime, 'layer_norm', rowParams(rows, channels, options.eps), [x, weight, bias, out], rows, threads);
  return out;
}

export interface GatedLayerNormOptions extends LayerNormOptions {
  /**
   * z is channels [gateChannelOffset, gateChannelOffset + D) of `gate` [..., ≥D] (SS2D's gate is the second half of
   * in_proj's output, read in place). Without it `gate` must be [..., D].
   */
  gateChannelOffset?: number;
}

/** Checks that `gate` [..., ≥D] has y's leading dimensions and a D-channel window at `offset` (exactly D without). */
function gateWindow(
  what: string,
  name: string,
  y: Tensor,
  gate: Tensor,
  channels: number,
  offset: number | undefined,
): ChannelWindow {
  const gateChannels = gate.shape.at(-1) ?? 0;
  const leadingMatch =
    gate.shape.length === y.shape.length && gate.shape.slice(0, -1).every((d, i) => d === y.shape[i]);
  const windowFits =
    offset === undefined
      ? gateChannels === channels
      : Number.isInteger(offset) && offset >= 0 && offset + channels <= gateChannels;
  if (!leadingMatch || !windowFits) {
    throw new Error(
      `${what}: ${name} ${shapeToString(gate.shape)} has no ${channels}-channel window at offset ${offset ?? 0} for y ${shapeToString(y.shape)}`,
    );
  }
  return { pixelStride: gateChannels, channelOffset: offset ?? 0 };
}

/** SS2D's output norm: LayerNorm_D(y) · SiLU(z) for y [..., D] and z the gate's channel window. */
export function gatedLayerNorm(
  runtime: GpuRuntime,
  y: Tensor,
  gate: Tensor,
  weight: Tensor,
  bias: Tensor,
  options: GatedLayerNormOptions,
): Tensor {
  const { rows, channels } = lastAxis('gatedLayerNorm', y);
  assertShape('gatedLayerNorm weight', weight.shape, [channels]);
  assertShape('gatedLayerNorm bias', bias.shape, [channels]);
  checkEps('gatedLayerNorm', options.eps);
  const window = gateWindow('gatedLayerNorm', 'gate', y, gate, channels, options.gateChannelOffset);
  const threads = threadsPerRow(runtime, channels, options.threadsPerRow);
  const out = runtime.empty(y.shape, 'gatedLayerNorm');
  const params = rowParams(rows, channels, options.eps, window);
  dispatchRows(runtime, 'layer_norm_gated', params, [y, weight, bias, gate, out], rows, threads);
  return out;
}

export interface InstanceNormOptions {
  /** Apply SiLU to the output (fused; LSS's Conv -> InstanceNorm -> SiLU blocks). */
  silu?: boolean;
  /** PyTorch's default, which MambaAD keeps. */
  eps?: number;
}

/**
 * InstanceNorm2d without affine parameters or running statistics on x [B, H, W, C]: each (sample, channel) is
 * normalised over its H·W values with the biased variance, in training and inference alike.
 */
export function instanceNorm(runtime: GpuRuntime, x: Tensor, options: InstanceNormOptions = {}): Tensor {
  if (x.shape.length !== 4)
    throw new Error(`instanceNorm: input must be NHWC [B, H, W, C], got ${shapeToString(x.shape)}`);
  const [batch, h, w, channels] = x.shape as [number, number, number, number];
  const eps = options.eps ?? 1e-5;
  checkEps('instanceNorm', eps);
  const params = new Uint32Array(3);
  params.set([h * w, channels]);
  new Float32Array(params.buffer, 8, 1)[0] = eps;
  const out = runtime.empty(x.shape, 'instanceNorm');
  runtime.dispatch({
    kernel: { family, entryPoint: 'instance_norm', constants: { SILU: options.silu ?? false } },
    params,
    buffers: [x, out],
    workgroups: [Math.ceil(channels / INSTANCE_CHANNELS), batch],
  });
  return out;
}

/** A BatchNorm2d layer's parameters and running statistics, as in a state dict. */
export interface BatchNormParameters {
  weight: Float32Array;
  bias: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
  eps: number;
}

/** Per-channel out = x · scale + shift on the GPU. */
export interface ChannelAffine {
  scale: Tensor;
  shift: Tensor;
}

/**
 * BatchNorm with running statistics as a per-channel affine map: scale = weight / sqrt(var + eps),
 * shift = bias - mean · scale, computed in float64 and rounded once (PyTorch's CPU inference path uses the same form).
 */
export function batchNormAffine(runtime: GpuRuntime, bn: BatchNormParameters): ChannelAffine {
  const channels = bn.weight.length;
  for (const [name, values] of Object.entries({
    bias: bn.bias,
    runningMean: bn.runningMean,
    runningVar: bn.runningVar,
  })) {
    if (values.length !== channels) {
      throw new Error(`batchNormAffine: ${name} has ${values.length} values for ${channels} channels`);
    }
  }
  checkEps('batchNormAffine', bn.eps);
  const scale = new Float32Array(channels);
  const shift = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const variance = bn.runningVar[c]!;
    if (!(variance >= 0)) throw new Error(`batchNormAffine: running variance of channel ${c} is ${variance}`);
    const s = bn.weight[c]! / Math.sqrt(variance + bn.eps);
    scale[c] = s;
    shift[c] = bn.bias[c]! - bn.runningMean[c]! * s;
  }
  return { scale: runtime.upload([channels], scale, 'bn scale'), shift: runtime.upload([channels], shift, 'bn shift') };
}

export interface ChannelAffineOptions {
  /** Apply ReLU to the output (fused). */
  relu?: boolean;
}

/** out = x · scale[c] + shift[c] over the last axis of x [..., C] (BatchNorm inference), optionally ReLU'd. */
export function channelAffine(
  runtime: GpuRuntime,
  x: Tensor,
  affine: ChannelAffine,
  options: ChannelAffineOptions = {},
): Tensor {
  const { channels } = lastAxis('channelAffine', x);
  assertShape('channelAffine scale', affine.scale.shape, [channels]);
  assertShape('channelAffine shift', affine.shift.shape, [channels]);
  const out = runtime.empty(x.shape, 'channelAffine');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'channel_affine',
      constants: { WORKGROUP_SIZE: AFFINE_WORKGROUP_SIZE, RELU: options.relu ?? false },
    },
    params: Uint32Array.of(x.size, channels),
    buffers: [x, affine.scale, affine.shift, out],
    workgroups: runtime.workgroupsFor(x.size, AFFINE_WORKGROUP_SIZE),
  });
  return out;
}

// ---- training ----

export interface NormGradients {
  /** Like x. */
  dx: Tensor;
  /** [C]. */
  dWeight: Tensor;
  /** [C]. */
  dBias: Tensor;
}

/**
 * Sums per channel over the rows of [rows, C] in chunks: `entryPoint` writes two partial sums per chunk, which are
 * added into the two results [C].
 */
function channelReduction(
  runtime: GpuRuntime,
  entryPoint: string,
  constants: Readonly<Record<string, boolean>>,
  params: Uint32Array,
  inputs: Tensor[],
  rows: number,
  channels: number,
): [Tensor, Tensor] {
  const chunks = reductionChunks(rows);
  if (chunks > runtime.maxWorkgroupsPerDimension) throw new Error(`${entryPoint}: ${rows} rows are too many`);
  const first = chunkPartials(runtime, chunks, [channels], `${entryPoint} partials`);
  const second = chunkPartials(runtime, chunks, [channels], `${entryPoint} partials`);
  runtime.dispatch({
    kernel: { family, entryPoint, constants },
    params,
    buffers: [...inputs, first, second],
    workgroups: [Math.ceil(channels / INSTANCE_CHANNELS), chunks],
  });
  return [sumChunks(runtime, first, chunks, [channels]), sumChunks(runtime, second, chunks, [channels])];
}

/**
 * The backward of layerNorm(x, weight, bias) for dy: dx per row (statistics recomputed), dWeight = Σ_rows dy · x̂ and
 * dBias = Σ_rows dy as chunked column reductions.
 */
export function layerNormBackward(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  options: LayerNormOptions,
): NormGradients {
  const { rows, channels } = lastAxis('layerNormBackward', x);
  assertShape('layerNormBackward weight', weight.shape, [channels]);
  assertShape('layerNormBackward dy', dy.shape, x.shape);
  checkEps('layerNormBackward', options.eps);
  const threads = threadsPerRow(runtime, channels, options.threadsPerRow);
  const dx = runtime.empty(x.shape, 'layerNorm dx');
  const rowStats = runtime.empty([rows, 2], 'layerNorm row statistics');
  const params = rowParams(rows, channels, options.eps);
  dispatchRows(runtime, 'layer_norm_backward', params, [x, weight, dy, dx, rowStats], rows, threads);
  const [dWeight, dBias] = channelReduction(
    runtime,
    'layer_norm_backward_params',
    {},
    channelParams(rows, channels),
    [x, rowStats, dy],
    rows,
    channels,
  );
  rowStats.dispose();
  return { dx, dWeight, dBias };
}

export interface GatedLayerNormBackwardOptions extends GatedLayerNormOptions {
  /**
   * Write dz into this tensor (the gate's shape) at the gate's channel window, leaving its other channels as they
   * are: SS2D assembles the gradient of in_proj's output in place. Without it dz is a new [..., D].
   */
  gateGradientInto?: Tensor;
}

export interface GatedLayerNormGradients extends NormGradients {
  /** dz: a new [..., D], or gateGradientInto. */
  dGate: Tensor;
}

/**
 * The backward of gatedLayerNorm(y, gate, weight, bias) for dy: one pass gives d(LayerNorm(y)) = dy · SiLU(z) and
 * dz = dy · LayerNorm(y) · SiLU'(z); the first then goes through layerNormBackward.
 */
export function gatedLayerNormBackward(
  runtime: GpuRuntime,
  y: Tensor,
  gate: Tensor,
  weight: Tensor,
  bias: Tensor,
  dy: Tensor,
  options: GatedLayerNormBackwardOptions,
): GatedLayerNormGradients {
  const { rows, channels } = lastAxis('gatedLayerNormBackward', y);
  assertShape('gatedLayerNormBackward weight', weight.shape, [channels]);
  assertShape('gatedLayerNormBackward bias', bias.shape, [channels]);
  assertShape('gatedLayerNormBackward dy', dy.shape, y.shape);
  checkEps('gatedLayerNormBackward', options.eps);
  const offset = options.gateChannelOffset;
  const window = gateWindow('gatedLayerNormBackward', 'gate', y, gate, channels, offset);
  const into = options.gateGradientInto;
  if (into) assertShape('gatedLayerNormBackward gateGradientInto', into.shape, gate.shape);
  const dGate = into ?? runtime.empty(y.shape, 'gatedLayerNorm dz');
  const gradientWindow = into ? window : { pixelStride: channels, channelOffset: 0 };
  const threads = threadsPerRow(runtime, channels, options.threadsPerRow);
  const normedGradient = runtime.empty(y.shape, 'gatedLayerNorm d(normed)');
  dispatchRows(
    runtime,
    'layer_norm_gated_backward',
    rowParams(rows, channels, options.eps, window, gradientWindow),
    [y, weight, bias, gate, dy, normedGradient, dGate],
    rows,
    threads,
  );
  const gradients = layerNormBackward(runtime, y, weight, normedGradient, {
    eps: options.eps,
    threadsPerRow: threads,
  });
  normedGradient.dispose();
  return { ...gradients, dGate };
}

/** The backward of instanceNorm(x) (with its fused SiLU when options.silu) for dy: dx, statistics recomputed. */
export function instanceNormBackward(
  runtime: GpuRuntime,
  x: Tensor,
  dy: Tensor,
  options: InstanceNormOptions = {},
): Tensor {
  if (x.shape.length !== 4)
    throw new Error(`instanceNormBackward: input must be NHWC [B, H, W, C], got ${shapeToString(x.shape)}`);
  assertShape('instanceNormBackward dy', dy.shape, x.shape);
  const [batch, h, w, channels] = x.shape as [number, number, number, number];
  const eps = options.eps ?? 1e-5;
  checkEps('instanceNormBackward', eps);
  const params = new Uint32Array(3);
  params.set([h * w, channels]);
  new Float32Array(params.buffer, 8, 1)[0] = eps;
  const dx = runtime.empty(x.shape, 'instanceNorm dx');
  runtime.dispatch({
    kernel: { family, entryPoint: 'instance_norm_backward', constants: { SILU: options.silu ?? false } },
    params,
    buffers: [x, dy, dx],
    workgroups: [Math.ceil(channels / INSTANCE_CHANNELS), batch],
  });
  return dx;
}

/** A BatchNorm2d layer in training: its parameters and running statistics on the GPU. */
export interface BatchNormTrainState {
  weight: Tensor;
  bias: Tensor;
  /** Updated in place by every batchNormTrain. */
  runningMean: Tensor;
  runningVar: Tensor;
  /** PyTorch's num_batches_tracked: batchNormTrain adds one. */
  numBatchesTracked: number;
  eps: number;
  /** The running statistics' update rate (PyTorch's default and MambaAD's: 0.1). */
  momentum: number;
}

export interface BatchNormTrainOptions {
  /** Apply ReLU to the output (fused). */
  relu?: boolean;
}

export interface BatchNormTrainResult {
  out: Tensor;
  /** [2, C]: the batch mean and the biased variance the output was normalised with; the backward takes it. */
  statistics: Tensor;
}

function checkBatchNormState(what: string, x: Tensor, state: BatchNormTrainState): { rows: number; channels: number } {
  const { rows, channels } = lastAxis(what, x);
  for (const [name, t] of Object.entries({ weight: state.weight, bias: state.bias })) {
    assertShape(`${what} ${name}`, t.shape, [channels]);
  }
  checkEps(what, state.eps);
  return { rows, channels };
}

function batchNormParams(count: number, channels: number, eps: number): Uint32Array {
  const params = Uint32Array.of(count, channels, 0);
  new Float32Array(params.buffer, 8, 1)[0] = eps;
  return params;
}

/**
 * BatchNorm2d in training mode on x [..., C] (NHWC: statistics per channel over B·H·W): normalises with the batch mean
 * and biased variance, updates the running statistics as PyTorch does (running = (1 - momentum) · running +
 * momentum · batch, the variance unbiased) and counts the batch in numBatchesTracked.
 */
export function batchNormTrain(
  runtime: GpuRuntime,
  x: Tensor,
  state: BatchNormTrainState,
  options: BatchNormTrainOptions = {},
): BatchNormTrainResult {
  const { rows, channels } = checkBatchNormState('batchNormTrain', x, state);
  assertShape('batchNormTrain runningMean', state.runningMean.shape, [channels]);
  assertShape('batchNormTrain runningVar', state.runningVar.shape, [channels]);
  if (rows < 2) {
    throw new Error(
      `batchNormTrain: expected more than 1 value per channel when training, got ${shapeToString(x.shape)}`,
    );
  }
  if (!(state.momentum >= 0 && state.momentum <= 1)) {
    throw new Error(`batchNormTrain: momentum must be in [0, 1], got ${state.momentum}`);
  }
  const chunks = reductionChunks(rows);
  if (chunks > runtime.maxWorkgroupsPerDimension) throw new Error(`batchNormTrain: ${rows} rows are too many`);
  const params = channelParams(rows, channels, state.eps, state.momentum);
  const partialMean = runtime.empty([chunks, channels], 'bn partial mean');
  const partialM2 = runtime.empty([chunks, channels], 'bn partial M2');
  runtime.dispatch({
    kernel: { family, entryPoint: 'batch_norm_statistics' },
    params,
    buffers: [x, partialMean, partialM2],
    workgroups: [Math.ceil(channels / INSTANCE_CHANNELS), chunks],
  });
  const statistics = runtime.empty([2, channels], 'bn batch statistics');
  runtime.dispatch({
    kernel: { family, entryPoint: 'batch_norm_finalize', constants: { WORKGROUP_SIZE: AFFINE_WORKGROUP_SIZE } },
    params,
    buffers: [partialMean, partialM2, statistics, state.runningMean, state.runningVar],
    workgroups: runtime.workgroupsFor(channels, AFFINE_WORKGROUP_SIZE),
  });
  partialMean.dispose();
  partialM2.dispose();
  state.numBatchesTracked += 1;
  const out = runtime.empty(x.shape, 'batchNormTrain');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'batch_norm_train',
      constants: { WORKGROUP_SIZE: AFFINE_WORKGROUP_SIZE, RELU: options.relu ?? false },
    },
    params: batchNormParams(x.size, channels, state.eps),
    buffers: [x, statistics, state.weight, state.bias, out],
    workgroups: runtime.workgroupsFor(x.size, AFFINE_WORKGROUP_SIZE),
  });
  return { out, statistics };
}

/**
 * The backward of batchNormTrain for dy, the gradient of its output (ReLU included with relu: the mask is recomputed
 * from x, the statistics and the parameters, as the forward computed it): dgamma = Σ g · x̂, dbeta = Σ g, and
 * dx = gamma · invstd · (g - dbeta / n - x̂ · dgamma / n), n = B·H·W.
 */
export function batchNormTrainBackward(
  runtime: GpuRuntime,
  x: Tensor,
  statistics: Tensor,
  state: BatchNormTrainState,
  dy: Tensor,
  options: BatchNormTrainOptions = {},
): NormGradients {
  const { rows, channels } = checkBatchNormState('batchNormTrainBackward', x, state);
  assertShape('batchNormTrainBackward statistics', statistics.shape, [2, channels]);
  assertShape('batchNormTrainBackward dy', dy.shape, x.shape);
  const relu = options.relu ?? false;
  const inputs = [x, statistics, state.weight, state.bias, dy];
  const [dWeight, dBias] = channelReduction(
    runtime,
    'batch_norm_backward_reduce',
    { RELU: relu },
    channelParams(rows, channels, state.eps),
    inputs,
    rows,
    channels,
  );
  const dx = runtime.empty(x.shape, 'batchNorm dx');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'batch_norm_backward_input',
      constants: { WORKGROUP_SIZE: AFFINE_WORKGROUP_SIZE, RELU: relu },
    },
    params: batchNormParams(x.size, channels, state.eps),
    buffers: [...inputs, dWeight, dBias, dx],
    workgroups: runtime.workgroupsFor(x.size, AFFINE_WORKGROUP_SIZE),
  });
  return { dx, dWeight, dBias };
}
