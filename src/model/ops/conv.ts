import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, shapeToString, type Tensor } from '../../gpu/tensor.ts';

/**
 * kernels/conv.wgsl: convolutions on channels-last activations [B, H, W, C] with PyTorch's OIHW weights.
 * 1x1 stride-1 convolutions are linears over [B·H·W, C] (ops/matmul.ts); these cover the rest.
 */
const family = 'conv';
/** conv2d computes 64 positions x 64 output channels per workgroup. */
const TILE = 64;
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

/**
 * A dense (groups = 1) convolution: x [B, H, W, Cin] NHWC, weight [Cout, Cin, k, k] (OIHW) -> [B, Ho, Wo, Cout] with
 * Ho = floor((H + 2·padding - k) / stride) + 1.
 */
export function conv2d(runtime: GpuRuntime, x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  const [batch, inH, inW, inC] = imageDims('conv2d', x);
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  if (stride !== 1 && stride !== 2) throw new Error(`conv2d: stride must be 1 or 2, got ${stride}`);
  if (!Number.isInteger(padding) || padding < 0) throw new Error(`conv2d: invalid padding ${padding}`);
  const [outC, weightInC, kh, kw] = weight.shape;
  if (weight.shape.length !== 4 || weightInC !== inC || kh !== kw || outC === undefined || kh === undefined) {
    throw new Error(
      `conv2d: weight must be OIHW [Cout, ${inC}, k, k] for input ${shapeToString(x.shape)}, got ${shapeToString(weight.shape)}`,
    );
  }
  if (options.bias) assertShape('conv2d bias', options.bias.shape, [outC]);
  const outH = Math.floor((inH + 2 * padding - kh) / stride) + 1;
  const outW = Math.floor((inW + 2 * padding - kh) / stride) + 1;
  if (outH < 1 || outW < 1) {
    throw new Error(`conv2d: a ${kh}x${kh} kernel with padding ${padding} does not fit a ${inH}x${inW} input`);
  }
  const out = runtime.empty([batch, outH, outW, outC], 'conv2d');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'conv2d',
      constants: { HAS_BIAS: options.bias !== undefined, RELU: options.relu ?? false },
    },
    params: Uint32Array.of(batch, inH, inW, inC, outH, outW, outC, kh, stride, padding),
    buffers: [x, weight, options.bias ?? runtime.placeholder, out],
    workgroups: [Math.ceil(outC / TILE), Math.ceil((batch * outH * outW) / TILE)],
  });
  return out;
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
  const [batch, h, w, inC] = imageDims('depthwiseConv2d', x);
  const [channels, one, kh, kw] = weight.shape;
  if (weight.shape.length !== 4 || one !== 1 || kh !== kw || channels === undefined || kh === undefined) {
    throw new Error(`depthwiseConv2d: weight must be [C, 1, k, k], got ${shapeToString(weight.shape)}`);
  }
  if (kh % 2 !== 1) throw new Error(`depthwiseConv2d: the kernel size must be odd (padding k/2), got ${kh}`);
  const offset = options.channelOffset;
  if (offset === undefined ? inC !== channels : !Number.isInteger(offset) || offset < 0 || offset + channels > inC) {
    throw new Error(
      `depthwiseConv2d: ${channels} channels from offset ${offset ?? 0} do not match input ${shapeToString(x.shape)}`,
    );
  }
  if (options.bias) assertShape('depthwiseConv2d bias', options.bias.shape, [channels]);
  const out = runtime.empty([batch, h, w, channels], 'depthwiseConv2d');
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
    params: Uint32Array.of(out.size, h, w, channels, kh, inC, offset ?? 0),
    buffers: [x, weight, options.bias ?? runtime.placeholder, out],
    workgroups: runtime.workgroupsFor(out.size, DEPTHWISE_WORKGROUP_SIZE),
  });
  return out;
}
