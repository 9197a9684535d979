import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, shapeToString, type Tensor } from '../../gpu/tensor.ts';

/** kernels/norm.wgsl: LayerNorm (plain and SS2D's gated one), InstanceNorm2d and BatchNorm inference, channels-last. */
const family = 'norm';
const AFFINE_WORKGROUP_SIZE = 256;
/** instance_norm covers this many channels per workgroup. */
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

function rowParams(rows: number, channels: number, eps: number, gatePixelStride = 0, gateChannelOffset = 0) {
  const params = new Uint32Array(5);
  params.set([rows, channels]);
  new Float32Array(params.buffer, 8, 1)[0] = eps;
  params.set([gatePixelStride, gateChannelOffset], 3);
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
  const gateChannels = gate.shape.at(-1) ?? 0;
  const offset = options.gateChannelOffset;
  const leadingMatch =
    gate.shape.length === y.shape.length && gate.shape.slice(0, -1).every((d, i) => d === y.shape[i]);
  const windowFits =
    offset === undefined
      ? gateChannels === channels
      : Number.isInteger(offset) && offset >= 0 && offset + channels <= gateChannels;
  if (!leadingMatch || !windowFits) {
    throw new Error(
      `gatedLayerNorm: gate ${shapeToString(gate.shape)} has no ${channels}-channel window at offset ${offset ?? 0} for y ${shapeToString(y.shape)}`,
    );
  }
  const threads = threadsPerRow(runtime, channels, options.threadsPerRow);
  const out = runtime.empty(y.shape, 'gatedLayerNorm');
  const params = rowParams(rows, channels, options.eps, gateChannels, offset ?? 0);
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
