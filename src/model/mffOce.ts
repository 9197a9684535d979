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
 * their bias; the others (3x3, and the stride-2 1x1 downsample) run as conv2d. Train mode (batch statistics and the
 * running-statistics update) is not implemented here.
 */

/** The subset of a safetensors file (or checkpoint reader) the loader needs. */
export interface ParameterSource {
  tensor(name: string): { readonly shape: readonly number[] };
  float32(name: string): Float32Array;
}

interface ConvBn {
  /** OIHW; 1x1 stride-1 layers hold it as a linear's [out, in]. */
  weight: Tensor;
  bias?: Tensor;
  stride: 1 | 2;
  padding: number;
  asLinear: boolean;
  bn: ChannelAffine;
}

interface Bottleneck {
  conv1: ConvBn;
  conv2: ConvBn;
  conv3: ConvBn;
  downsample?: ConvBn;
}

export interface MffOceWeights {
  conv1: ConvBn;
  conv21: ConvBn;
  conv2: ConvBn;
  conv31: ConvBn;
  convf: ConvBn;
  bottleneck: Bottleneck[];
}

const BN_EPS = 1e-5;

interface ConvSpec {
  conv: string;
  bn: string;
  shape: readonly number[];
  bias: boolean;
  stride: 1 | 2;
}

function loadConvBn(runtime: GpuRuntime, source: ParameterSource, prefix: string, spec: ConvSpec): ConvBn {
  const name = (n: string) => `${prefix}${n}`;
  const actual = source.tensor(name(`${spec.conv}.weight`)).shape;
  if (actual.length !== spec.shape.length || actual.some((d, i) => d !== spec.shape[i])) {
    throw new Error(
      `MFF_OCE: ${name(`${spec.conv}.weight`)} is ${shapeToString(actual)}, expected ${shapeToString(spec.shape)}`,
    );
  }
  const [out, inC, k] = spec.shape as [number, number, number];
  const asLinear = k === 1 && spec.stride === 1;
  const weightShape = asLinear ? [out, inC] : spec.shape;
  const layer: ConvBn = {
    weight: runtime.upload(weightShape, source.float32(name(`${spec.conv}.weight`)), name(spec.conv)),
    stride: spec.stride,
    padding: (k - 1) / 2,
    asLinear,
    bn: batchNormAffine(runtime, {
      weight: source.float32(name(`${spec.bn}.weight`)),
      bias: source.float32(name(`${spec.bn}.bias`)),
      runningMean: source.float32(name(`${spec.bn}.running_mean`)),
      runningVar: source.float32(name(`${spec.bn}.running_var`)),
      eps: BN_EPS,
    }),
  };
  if (spec.bias)
    layer.bias = runtime.upload([out], source.float32(name(`${spec.conv}.bias`)), name(`${spec.conv}.bias`));
  return layer;
}

/**
 * Uploads MFF_OCE's parameters (official state-dict names under `prefix`, e.g. 'param.' in the goldens) and turns
 * each BatchNorm's running statistics into a per-channel affine.
 */
export function loadMffOceWeights(runtime: GpuRuntime, source: ParameterSource, prefix = ''): MffOceWeights {
  const load = (spec: ConvSpec) => loadConvBn(runtime, source, prefix, spec);
  const bottleneck = [0, 1, 2].map((i): Bottleneck => {
    const block = `bn_layer.${i}`;
    const inC = i === 0 ? 256 : 512;
    const stride = i === 0 ? 2 : 1;
    const layers: Bottleneck = {
      conv1: load({ conv: `${block}.conv1`, bn: `${block}.bn1`, shape: [128, inC, 1, 1], bias: false, stride: 1 }),
      conv2: load({ conv: `${block}.conv2`, bn: `${block}.bn2`, shape: [128, 128, 3, 3], bias: false, stride }),
      conv3: load({ conv: `${block}.conv3`, bn: `${block}.bn3`, shape: [512, 128, 1, 1], bias: false, stride: 1 }),
    };
    if (i === 0) {
      layers.downsample = load({
        conv: `${block}.downsample.0`,
        bn: `${block}.downsample.1`,
        shape: [512, 256, 1, 1],
        bias: false,
        stride: 2,
      });
    }
    return layers;
  });
  return {
    conv1: load({ conv: 'conv1', bn: 'bn1', shape: [128, 64, 3, 3], bias: false, stride: 2 }),
    conv21: load({ conv: 'conv21', bn: 'bn21', shape: [128, 128, 1, 1], bias: true, stride: 1 }),
    conv2: load({ conv: 'conv2', bn: 'bn2', shape: [256, 128, 3, 3], bias: false, stride: 2 }),
    conv31: load({ conv: 'conv31', bn: 'bn31', shape: [256, 256, 1, 1], bias: true, stride: 1 }),
    convf: load({ conv: 'convf', bn: 'bnf', shape: [256, 256, 1, 1], bias: true, stride: 1 }),
    bottleneck,
  };
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

function checkImage(what: string, t: Tensor, channels: number): [number, number, number] {
  const [b, h, w, c] = t.shape;
  if (t.shape.length !== 4 || c !== channels || b === undefined || h === undefined || w === undefined) {
    throw new Error(`mffOceForward: ${what} must be NHWC [B, H, W, ${channels}], got ${shapeToString(t.shape)}`);
  }
  return [b, h, w];
}

/**
 * f1 [B, 4h, 4w, 64], f2 [B, 2h, 2w, 128], f3 [B, h, w, 256] (channels-last encoder features) -> z [B, h/2, w/2, 512].
 * The inputs are left as they are; the caller owns the result.
 */
export function mffOceForward(runtime: GpuRuntime, weights: MffOceWeights, f1: Tensor, f2: Tensor, f3: Tensor): Tensor {
  const [b1, h1, w1] = checkImage('f1', f1, 64);
  const [b2, h2, w2] = checkImage('f2', f2, 128);
  const [b3, h3, w3] = checkImage('f3', f3, 256);
  if (b1 !== b2 || b1 !== b3 || h1 !== 4 * h3 || w1 !== 4 * w3 || h2 !== 2 * h3 || w2 !== 2 * w3) {
    throw new Error(
      `mffOceForward: f1 ${shapeToString(f1.shape)}, f2 ${shapeToString(f2.shape)}, f3 ${shapeToString(f3.shape)} are not one image at strides 4, 8, 16`,
    );
  }
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
