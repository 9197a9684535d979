import type { GpuRuntime } from '../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../gpu/tensor.ts';
import { conv2d } from './ops/conv.ts';
import { binary, unary } from './ops/elementwise.ts';
import { linear } from './ops/matmul.ts';
import { batchNormAffine, type ChannelAffine, channelAffine } from './ops/norm.ts';

/**
 * MFF_OCE in inference mode (MAMBAAD.md §3): multi-scale fusion of the encoder's f1, f2, f3 and the one-class
 * embedding bottleneck (3 timm Bottleneck blocks), channels-last throughout.
 *
 * What is and is not folded: nothing is merged into a convolution weight. Each BatchNorm (running statistics, eps
 * 1e-5) becomes a per-channel affine scale/shift, computed once in float64 when the weights are loaded, and runs as
 * its own kernel with the ReLU that follows it fused. 1x1 stride-1 convolutions run as linears on [B·H·W, C] with
 * their bias; the others (3x3, and the stride-2 1x1 downsample) run as conv2d. Training mode (batch statistics, the
 * running-statistics update, backward) is training/mffOceTraining.ts, on the same layout.
 */

/** The subset of a safetensors file (or checkpoint reader) the loader needs. */
export interface ParameterSource {
  tensor(name: string): { readonly shape: readonly number[] };
  float32(name: string): Float32Array;
}

/** MFF_OCE's structure with one T per conv -> BatchNorm layer (MAMBAAD.md §3); the bottleneck is 3 timm Bottlenecks. */
export interface MffOceLayout<T> {
  conv1: T;
  conv21: T;
  conv2: T;
  conv31: T;
  convf: T;
  bottleneck: BottleneckLayout<T>[];
}

export interface BottleneckLayout<T> {
  conv1: T;
  conv2: T;
  conv3: T;
  downsample?: T;
}

/** One conv -> BatchNorm layer: official names (relative to MFF_OCE), OIHW weight shape, bias, stride. */
export interface ConvBnSpec {
  conv: string;
  bn: string;
  shape: readonly [number, number, number, number];
  bias: boolean;
  stride: 1 | 2;
}

const conv = (name: string, bn: string, shape: ConvBnSpec['shape'], stride: 1 | 2, bias = false): ConvBnSpec => ({
  conv: name,
  bn,
  shape,
  bias,
  stride,
});

export const MFF_OCE_LAYOUT: MffOceLayout<ConvBnSpec> = {
  conv1: conv('conv1', 'bn1', [128, 64, 3, 3], 2),
  conv21: conv('conv21', 'bn21', [128, 128, 1, 1], 1, true),
  conv2: conv('conv2', 'bn2', [256, 128, 3, 3], 2),
  conv31: conv('conv31', 'bn31', [256, 256, 1, 1], 1, true),
  convf: conv('convf', 'bnf', [256, 256, 1, 1], 1, true),
  bottleneck: [0, 1, 2].map((i): BottleneckLayout<ConvBnSpec> => {
    const block = `bn_layer.${i}`;
    const inC = i === 0 ? 256 : 512;
    const stride = i === 0 ? 2 : 1;
    return {
      conv1: conv(`${block}.conv1`, `${block}.bn1`, [128, inC, 1, 1], 1),
      conv2: conv(`${block}.conv2`, `${block}.bn2`, [128, 128, 3, 3], stride),
      conv3: conv(`${block}.conv3`, `${block}.bn3`, [512, 128, 1, 1], 1),
      ...(i === 0 ? { downsample: conv(`${block}.downsample.0`, `${block}.downsample.1`, [512, 256, 1, 1], 2) } : {}),
    };
  }),
};

/** The layout with f applied to every layer. */
export function mapMffOceLayout<T, U>(layout: MffOceLayout<T>, f: (layer: T) => U): MffOceLayout<U> {
  return {
    conv1: f(layout.conv1),
    conv21: f(layout.conv21),
    conv2: f(layout.conv2),
    conv31: f(layout.conv31),
    convf: f(layout.convf),
    bottleneck: layout.bottleneck.map((block) => ({
      conv1: f(block.conv1),
      conv2: f(block.conv2),
      conv3: f(block.conv3),
      ...(block.downsample ? { downsample: f(block.downsample) } : {}),
    })),
  };
}

/** The layers in state-dict order (the official module registration order). */
export function mffOceLayers<T>(layout: MffOceLayout<T>): T[] {
  return [
    layout.conv1,
    layout.conv2,
    layout.conv21,
    layout.conv31,
    layout.convf,
    ...layout.bottleneck.flatMap((block) => [
      block.conv1,
      block.conv2,
      block.conv3,
      ...(block.downsample ? [block.downsample] : []),
    ]),
  ];
}

/** How a layer's convolution runs: 1x1 stride-1 ones as a linear on [B·H·W, C] with the weight as [out, in]. */
export interface ConvGeometry {
  stride: 1 | 2;
  padding: number;
  asLinear: boolean;
  /** [out, in] when asLinear, else OIHW. */
  weightShape: readonly number[];
}

export function convGeometry(spec: ConvBnSpec): ConvGeometry {
  const [out, inC, k] = spec.shape;
  const asLinear = k === 1 && spec.stride === 1;
  return { stride: spec.stride, padding: (k - 1) / 2, asLinear, weightShape: asLinear ? [out, inC] : spec.shape };
}

/** Reads `${prefix}${spec.conv}.weight` after checking its shape. */
export function readConvWeight(source: ParameterSource, prefix: string, spec: ConvBnSpec): Float32Array {
  const name = `${prefix}${spec.conv}.weight`;
  const actual = source.tensor(name).shape;
  if (actual.length !== spec.shape.length || actual.some((d, i) => d !== spec.shape[i])) {
    throw new Error(`MFF_OCE: ${name} is ${shapeToString(actual)}, expected ${shapeToString(spec.shape)}`);
  }
  return source.float32(name);
}

interface ConvBn extends ConvGeometry {
  weight: Tensor;
  bias?: Tensor;
  bn: ChannelAffine;
}

export type MffOceWeights = MffOceLayout<ConvBn>;
type Bottleneck = BottleneckLayout<ConvBn>;

/** MFF_OCE's BatchNorm eps and running-statistics momentum (PyTorch's defaults). */
export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

function loadConvBn(runtime: GpuRuntime, source: ParameterSource, prefix: string, spec: ConvBnSpec): ConvBn {
  const name = (n: string) => `${prefix}${n}`;
  const geometry = convGeometry(spec);
  const layer: ConvBn = {
    ...geometry,
    weight: runtime.upload(geometry.weightShape, readConvWeight(source, prefix, spec), name(spec.conv)),
    bn: batchNormAffine(runtime, {
      weight: source.float32(name(`${spec.bn}.weight`)),
      bias: source.float32(name(`${spec.bn}.bias`)),
      runningMean: source.float32(name(`${spec.bn}.running_mean`)),
      runningVar: source.float32(name(`${spec.bn}.running_var`)),
      eps: BN_EPS,
    }),
  };
  if (spec.bias)
    layer.bias = runtime.upload([spec.shape[0]], source.float32(name(`${spec.conv}.bias`)), name(`${spec.conv}.bias`));
  return layer;
}

/**
 * Uploads MFF_OCE's parameters (official state-dict names under `prefix`, e.g. 'param.' in the goldens) and turns
 * each BatchNorm's running statistics into a per-channel affine.
 */
export function loadMffOceWeights(runtime: GpuRuntime, source: ParameterSource, prefix = ''): MffOceWeights {
  return mapMffOceLayout(MFF_OCE_LAYOUT, (spec) => loadConvBn(runtime, source, prefix, spec));
}

/** conv -> BatchNorm (-> ReLU). */
function convBn(runtime: GpuRuntime, x: Tensor, layer: ConvBn, relu: boolean): Tensor {
  const convolved = layer.asLinear
    ? linear(runtime, x, layer.weight, layer.bias)
    : conv2d(runtime, x, layer.weight, {
        stride: layer.stride,
        padding: layer.padding,
        ...(layer.bias ? { bias: layer.bias } : {}),
      });
  const out = channelAffine(runtime, convolved, layer.bn, { relu });
  convolved.dispose();
  return out;
}

/** timm Bottleneck: relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + shortcut(x)). */
function bottleneckForward(runtime: GpuRuntime, x: Tensor, block: Bottleneck): Tensor {
  const a = convBn(runtime, x, block.conv1, true);
  const b = convBn(runtime, a, block.conv2, true);
  a.dispose();
  const c = convBn(runtime, b, block.conv3, false);
  b.dispose();
  const shortcut = block.downsample ? convBn(runtime, x, block.downsample, false) : x;
  const sum = binary(runtime, 'add', c, shortcut);
  c.dispose();
  if (shortcut !== x) shortcut.dispose();
  const out = unary(runtime, 'relu', sum);
  sum.dispose();
  return out;
}

function checkImage(what: string, name: string, t: Tensor, channels: number): [number, number, number] {
  const [b, h, w, c] = t.shape;
  if (t.shape.length !== 4 || c !== channels || b === undefined || h === undefined || w === undefined) {
    throw new Error(`${what}: ${name} must be NHWC [B, H, W, ${channels}], got ${shapeToString(t.shape)}`);
  }
  return [b, h, w];
}

/** Checks that f1, f2, f3 are NHWC encoder features of one batch at strides 4, 8, 16. */
export function checkMffOceInputs(what: string, f1: Tensor, f2: Tensor, f3: Tensor): void {
  const [b1, h1, w1] = checkImage(what, 'f1', f1, 64);
  const [b2, h2, w2] = checkImage(what, 'f2', f2, 128);
  const [b3, h3, w3] = checkImage(what, 'f3', f3, 256);
  if (b1 !== b2 || b1 !== b3 || h1 !== 4 * h3 || w1 !== 4 * w3 || h2 !== 2 * h3 || w2 !== 2 * w3) {
    throw new Error(
      `${what}: f1 ${shapeToString(f1.shape)}, f2 ${shapeToString(f2.shape)}, f3 ${shapeToString(f3.shape)} are not one image at strides 4, 8, 16`,
    );
  }
}

/**
 * f1 [B, 4h, 4w, 64], f2 [B, 2h, 2w, 128], f3 [B, h, w, 256] (channels-last encoder features) -> z [B, h/2, w/2, 512].
 * The inputs are left as they are; the caller owns the result.
 */
export function mffOceForward(runtime: GpuRuntime, weights: MffOceWeights, f1: Tensor, f2: Tensor, f3: Tensor): Tensor {
  checkMffOceInputs('mffOceForward', f1, f2, f3);
  const fpn0 = convBn(runtime, f1, weights.conv1, true);
  const lateral2 = convBn(runtime, f2, weights.conv21, true);
  const fpn1 = binary(runtime, 'add', lateral2, fpn0);
  lateral2.dispose();
  fpn0.dispose();
  const down = convBn(runtime, fpn1, weights.conv2, true);
  fpn1.dispose();
  const lateral3 = convBn(runtime, f3, weights.conv31, true);
  const fused = binary(runtime, 'add', down, lateral3);
  down.dispose();
  lateral3.dispose();
  let s = convBn(runtime, fused, weights.convf, true);
  fused.dispose();
  for (const block of weights.bottleneck) {
    const next = bottleneckForward(runtime, s, block);
    s.dispose();
    s = next;
  }
  return s;
}
