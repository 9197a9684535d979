import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, shapeToString, type Tensor } from '../../gpu/tensor.ts';
import { binary } from './elementwise.ts';
import {
  chunkPartials,
  columnSum,
  REDUCTION_CHUNK_ROWS,
  reductionChunks,
  splitPositions,
  sumChunks,
} from './reduce.ts';

/**
 * kernels/conv.wgsl: convolutions on channels-last activations [B, H, W, C] with PyTorch's OIHW weights, and their
 * backward passes. 1x1 stride-1 convolutions are linears over [B·H·W, C] (ops/matmul.ts, linearBackward); these cover
 * the rest. A backward takes dy, the gradient of what the forward returned; a fused activation is undone first
 * (ReLU from the forward's output, SiLU from a recomputed pre-activation), so the forward keeps nothing extra.
 */
const family = 'conv';
/** conv2d computes 64 positions x 64 output channels per workgroup, reducing input channels in slices of 16. */
const TILE = 64;
const TILE_K = 16;
/** depthwise_backward_weight covers this many channels per workgroup. */
const DEPTHWISE_WEIGHT_CHANNELS = 16;
const DEPTHWISE_WORKGROUP_SIZE = 256;

function imageDims(what: string, x: Tensor): [number, number, number, number] {
  if (x.shape.length !== 4) throw new Error(`${what}: input must be NHWC [B, H, W, C], got ${shapeToString(x.shape)}`);
  return x.shape as [number, number, number, number];
}

export interface Conv2dOptions {
  /** [out channels]. */
  bias?: Tensor;
  stride?: 1 | 2;
  /** Zero padding on every side. */
  padding?: number;
  /** Apply ReLU to the output (fused). */
  relu?: boolean;
}

interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  k: number;
  stride: 1 | 2;
  padding: number;
}

/** Checks x [B, H, W, Cin] against an OIHW weight and works out the output size. */
function convGeometry(what: string, x: Tensor, weight: Tensor, stride: number, padding: number): ConvGeometry {
  const [batch, inH, inW, inC] = imageDims(what, x);
  if (stride !== 1 && stride !== 2) throw new Error(`${what}: stride must be 1 or 2, got ${stride}`);
  if (!Number.isInteger(padding) || padding < 0) throw new Error(`${what}: invalid padding ${padding}`);
  const [outC, weightInC, kh, kw] = weight.shape;
  if (weight.shape.length !== 4 || weightInC !== inC || kh !== kw || outC === undefined || kh === undefined) {
    throw new Error(
      `${what}: weight must be OIHW [Cout, ${inC}, k, k] for input ${shapeToString(x.shape)}, got ${shapeToString(weight.shape)}`,
    );
  }
  const outH = Math.floor((inH + 2 * padding - kh) / stride) + 1;
  const outW = Math.floor((inW + 2 * padding - kh) / stride) + 1;
  if (outH < 1 || outW < 1) {
    throw new Error(`${what}: a ${kh}x${kh} kernel with padding ${padding} does not fit a ${inH}x${inW} input`);
  }
  return { batch, inH, inW, inC, outH, outW, outC, k: kh, stride, padding };
}

function geometryParams(g: ConvGeometry, ...extra: number[]): Uint32Array {
  return Uint32Array.of(g.batch, g.inH, g.inW, g.inC, g.outH, g.outW, g.outC, g.k, g.stride, g.padding, ...extra);
}

/**
 * A dense (groups = 1) convolution: x [B, H, W, Cin] NHWC, weight [Cout, Cin, k, k] (OIHW) -> [B, Ho, Wo, Cout] with
 * Ho = floor((H + 2·padding - k) / stride) + 1.
 */
export function conv2d(runtime: GpuRuntime, x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  const g = convGeometry('conv2d', x, weight, options.stride ?? 1, options.padding ?? 0);
  if (options.bias) assertShape('conv2d bias', options.bias.shape, [g.outC]);
  const out = runtime.empty([g.batch, g.outH, g.outW, g.outC], 'conv2d');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'conv2d',
      constants: { HAS_BIAS: options.bias !== undefined, RELU: options.relu ?? false },
    },
    params: geometryParams(g),
    buffers: [x, weight, options.bias ?? runtime.placeholder, out],
    workgroups: [Math.ceil(g.outC / TILE), Math.ceil((g.batch * g.outH * g.outW) / TILE)],
  });
  return out;
}

export interface Conv2dBackwardOptions {
  /** As in the forward. */
  stride?: 1 | 2;
  padding?: number;
  /** The layer has a bias: return its gradient, the sum of dy over every output position. */
  hasBias?: boolean;
  /**
   * The forward's output when it fused ReLU (conv2d with relu: true). dy is the gradient of that output and is zeroed
   * where it is 0 (where the pre-activation was not positive). Without it dy is the gradient of the convolution.
   */
  reluOutput?: Tensor;
  /** false when x needs no gradient (a frozen encoder's feature): dx is skipped. Default true. */
  inputGradient?: boolean;
}

export interface ConvGradients {
  /** Like x; absent with inputGradient: false. */
  dx?: Tensor;
  /** Like the weight. */
  dWeight: Tensor;
  /** [Cout]; present when asked for. */
  dBias?: Tensor;
}

/**
 * The backward of conv2d(x, weight) for dy [B, Ho, Wo, Cout]: dx by a transposed implicit GEMM, dW by an implicit GEMM
 * over the output positions (split over them when the weight has few tiles, the parts added by a column sum), dBias
 * as a column sum of dy.
 */
export function conv2dBackward(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  options: Conv2dBackwardOptions = {},
): ConvGradients {
  const g = convGeometry('conv2dBackward', x, weight, options.stride ?? 1, options.padding ?? 0);
  const outShape = [g.batch, g.outH, g.outW, g.outC];
  assertShape('conv2dBackward dy', dy.shape, outShape);
  let upstream = dy;
  if (options.reluOutput) {
    assertShape('conv2dBackward reluOutput', options.reluOutput.shape, outShape);
    upstream = binary(runtime, 'relu_backward', dy, options.reluOutput);
  }
  const taps = g.k * g.k;
  const positions = g.batch * g.outH * g.outW;
  const tiles = Math.ceil(g.outC / TILE) * Math.ceil(g.inC / TILE) * taps;
  const { splits, perSplit } = splitPositions(positions, tiles, weight.size, TILE_K);
  if (splits * taps > runtime.maxWorkgroupsPerDimension) throw new Error('conv2dBackward: too many positions');
  const partials = chunkPartials(runtime, splits, weight.shape, 'conv2d dWeight');
  runtime.dispatch({
    kernel: { family, entryPoint: 'conv2d_backward_weight' },
    params: geometryParams(g, perSplit),
    buffers: [x, upstream, partials],
    workgroups: [Math.ceil(g.inC / TILE), Math.ceil(g.outC / TILE), splits * taps],
  });
  const gradients: ConvGradients = { dWeight: sumChunks(runtime, partials, splits, weight.shape) };
  if (options.hasBias) gradients.dBias = columnSum(runtime, upstream, g.outC);
  if (options.inputGradient ?? true) {
    const dx = runtime.empty(x.shape, 'conv2d dx');
    runtime.dispatch({
      kernel: { family, entryPoint: 'conv2d_backward_input' },
      params: geometryParams(g, 0),
      buffers: [upstream, weight, dx],
      workgroups: [Math.ceil(g.inC / TILE), Math.ceil((g.batch * g.inH * g.inW) / TILE)],
    });
    gradients.dx = dx;
  }
  if (upstream !== dy) upstream.dispose();
  return gradients;
}

export interface DepthwiseConv2dOptions {
  /** [C]. */
  bias?: Tensor;
  /** Apply SiLU to the output (fused; SS2D's conv branch). */
  silu?: boolean;
  /**
   * Read channels [channelOffset, channelOffset + C) of a wider input, C = weight.shape[0] (SS2D convolves the first
   * half of in_proj's output in place). Without it the input must have exactly C channels.
   */
  channelOffset?: number;
}

interface DepthwiseGeometry {
  /** [B, H, W, C]. */
  outShape: [number, number, number, number];
  /** x's channel count (C, or more with a channel window). */
  inC: number;
  k: number;
}

/** Checks a depthwise convolution's input, weight and channel window. */
function depthwiseGeometry(x: Tensor, weight: Tensor, offset: number | undefined): DepthwiseGeometry {
  const [batch, h, w, inC] = imageDims('depthwiseConv2d', x);
  const [channels, one, kh, kw] = weight.shape;
  if (weight.shape.length !== 4 || one !== 1 || kh !== kw || channels === undefined || kh === undefined) {
    throw new Error(`depthwiseConv2d: weight must be [C, 1, k, k], got ${shapeToString(weight.shape)}`);
  }
  if (kh % 2 !== 1) throw new Error(`depthwiseConv2d: the kernel size must be odd (padding k/2), got ${kh}`);
  if (offset === undefined ? inC !== channels : !Number.isInteger(offset) || offset < 0 || offset + channels > inC) {
    throw new Error(
      `depthwiseConv2d: ${channels} channels from offset ${offset ?? 0} do not match input ${shapeToString(x.shape)}`,
    );
  }
  return { outShape: [batch, h, w, channels], inC, k: kh };
}

/**
 * A depthwise convolution (groups = channels), stride 1, zero padding k/2 (odd k): x [B, H, W, ≥C] NHWC, weight
 * [C, 1, k, k] -> [B, H, W, C].
 */
export function depthwiseConv2d(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  options: DepthwiseConv2dOptions = {},
): Tensor {
  const offset = options.channelOffset;
  const { outShape, inC, k } = depthwiseGeometry(x, weight, offset);
  const [, h, w, channels] = outShape;
  if (options.bias) assertShape('depthwiseConv2d bias', options.bias.shape, [channels]);
  const out = runtime.empty(outShape, 'depthwiseConv2d');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'depthwise_conv2d',
      constants: {
        HAS_BIAS: options.bias !== undefined,
        SILU: options.silu ?? false,
        WORKGROUP_SIZE: DEPTHWISE_WORKGROUP_SIZE,
      },
    },
    params: Uint32Array.of(out.size, h, w, channels, k, inC, offset ?? 0),
    buffers: [x, weight, options.bias ?? runtime.placeholder, out],
    workgroups: runtime.workgroupsFor(out.size, DEPTHWISE_WORKGROUP_SIZE),
  });
  return out;
}

export interface DepthwiseConv2dBackwardOptions {
  /**
   * The layer's bias: its gradient is returned, and with silu it is part of the recomputed pre-activation.
   */
  bias?: Tensor;
  /**
   * The forward fused SiLU: dy is the gradient of its output. The pre-activation is recomputed (one more depthwise
   * pass, cheaper than keeping it) for SiLU's derivative.
   */
  silu?: boolean;
  /** As in the forward: x is the wider tensor whose channels [channelOffset, channelOffset + C) were convolved. */
  channelOffset?: number;
  /**
   * Write dx into this tensor (x's shape) at the convolved channel window, leaving its other channels as they are:
   * SS2D assembles the gradient of in_proj's output in place. Without it dx is a new [B, H, W, C].
   */
  inputGradientInto?: Tensor;
  /** false when x needs no gradient: dx is skipped. Default true. */
  inputGradient?: boolean;
}

/**
 * The backward of depthwiseConv2d(x, weight) for dy [B, H, W, C]: dx one thread per element, dW as per-channel
 * per-tap reductions over the positions (chunked, the chunks added by a column sum), dBias as a column sum.
 */
export function depthwiseConv2dBackward(
  runtime: GpuRuntime,
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  options: DepthwiseConv2dBackwardOptions = {},
): ConvGradients {
  const { bias, channelOffset } = options;
  const { outShape, inC, k } = depthwiseGeometry(x, weight, channelOffset);
  const [batch, h, w, channels] = outShape;
  assertShape('depthwiseConv2dBackward dy', dy.shape, outShape);
  if (bias) assertShape('depthwiseConv2dBackward bias', bias.shape, [channels]);
  let upstream = dy;
  if (options.silu) {
    const pre = depthwiseConv2d(runtime, x, weight, {
      ...(bias ? { bias } : {}),
      ...(channelOffset !== undefined ? { channelOffset } : {}),
    });
    upstream = binary(runtime, 'silu_backward', dy, pre);
    pre.dispose();
  }
  const positions = batch * h * w;
  const chunks = reductionChunks(positions);
  if (chunks > runtime.maxWorkgroupsPerDimension) throw new Error('depthwiseConv2dBackward: too many positions');
  const partials = chunkPartials(runtime, chunks, weight.shape, 'depthwise dWeight');
  const params = (pixelStride: number, offset: number) =>
    Uint32Array.of(positions, h, w, channels, k, pixelStride, offset, REDUCTION_CHUNK_ROWS);
  runtime.dispatch({
    kernel: { family, entryPoint: 'depthwise_backward_weight' },
    params: params(inC, channelOffset ?? 0),
    buffers: [x, upstream, partials],
    workgroups: [Math.ceil(channels / DEPTHWISE_WEIGHT_CHANNELS), k * k, chunks],
  });
  const gradients: ConvGradients = { dWeight: sumChunks(runtime, partials, chunks, weight.shape) };
  if (bias) gradients.dBias = columnSum(runtime, upstream, channels);
  if (options.inputGradient ?? true) {
    const into = options.inputGradientInto;
    if (into) assertShape('depthwiseConv2dBackward inputGradientInto', into.shape, x.shape);
    const dx = into ?? runtime.empty(outShape, 'depthwise dx');
    runtime.dispatch({
      kernel: {
        family,
        entryPoint: 'depthwise_backward_input',
        constants: { WORKGROUP_SIZE: DEPTHWISE_WORKGROUP_SIZE },
      },
      params: into ? params(inC, channelOffset ?? 0) : params(channels, 0),
      buffers: [upstream, weight, dx],
      workgroups: runtime.workgroupsFor(positions * channels, DEPTHWISE_WORKGROUP_SIZE),
    });
    gradients.dx = dx;
  }
  if (upstream !== dy) upstream.dispose();
  return gradients;
}
