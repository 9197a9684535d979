import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import {
  BN_EPS,
  BN_MOMENTUM,
  type BottleneckLayout,
  type ConvBnSpec,
  type ConvGeometry,
  checkMffOceInputs,
  convGeometry,
  MFF_OCE_LAYOUT,
  type MffOceLayout,
  mapMffOceLayout,
  mffOceLayers,
  type ParameterSource,
  readConvWeight,
} from '../src/model/mffOce.ts';
import { conv2d, conv2dBackward } from '../src/model/ops/conv.ts';
import { binary, unary } from '../src/model/ops/elementwise.ts';
import { linear, linearBackward } from '../src/model/ops/matmul.ts';
import { type BatchNormTrainState, batchNormTrain, batchNormTrainBackward } from '../src/model/ops/norm.ts';
import type { TrainableParameter } from './optimizer.ts';

/**
 * MFF_OCE in training mode (MAMBAAD.md §3, §10 item 8): every BatchNorm normalises with the batch statistics and
 * updates its running statistics in place; the forward keeps what the backward needs, and the backward returns the
 * gradient of every parameter. The encoder is frozen, so no gradient flows into f1, f2, f3.
 */

/** A conv -> BatchNorm layer with its parameters as trainable tensors. */
export interface TrainingConvBn extends ConvGeometry {
  spec: ConvBnSpec;
  /** [out, in] for 1x1 stride-1 layers (the same values as OIHW [out, in, 1, 1]), else OIHW. */
  weight: Tensor;
  bias?: Tensor;
  bn: BatchNormTrainState;
}

export type MffOceTrainingWeights = MffOceLayout<TrainingConvBn>;

function loadTrainingConvBn(
  runtime: GpuRuntime,
  source: ParameterSource,
  prefix: string,
  spec: ConvBnSpec,
): TrainingConvBn {
  const geometry = convGeometry(spec);
  const channels = spec.shape[0];
  const upload = (name: string) => {
    const values = source.float32(`${prefix}${name}`);
    if (values.length !== channels) {
      throw new Error(`MFF_OCE: ${prefix}${name} has ${values.length} values, expected ${channels}`);
    }
    return runtime.upload([channels], values, name);
  };
  const numBatchesTracked = source.float32(`${prefix}${spec.bn}.num_batches_tracked`)[0];
  if (numBatchesTracked === undefined || !Number.isInteger(numBatchesTracked) || numBatchesTracked < 0) {
    throw new Error(`MFF_OCE: ${prefix}${spec.bn}.num_batches_tracked is ${numBatchesTracked}, expected a count`);
  }
  return {
    ...geometry,
    spec,
    weight: runtime.upload(geometry.weightShape, readConvWeight(source, prefix, spec), `${spec.conv}.weight`),
    ...(spec.bias ? { bias: upload(`${spec.conv}.bias`) } : {}),
    bn: {
      weight: upload(`${spec.bn}.weight`),
      bias: upload(`${spec.bn}.bias`),
      runningMean: upload(`${spec.bn}.running_mean`),
      runningVar: upload(`${spec.bn}.running_var`),
      numBatchesTracked,
      eps: BN_EPS,
      momentum: BN_MOMENTUM,
    },
  };
}

/** Uploads MFF_OCE's parameters and running statistics (official names under `prefix`) for training. */
export function loadMffOceTrainingWeights(
  runtime: GpuRuntime,
  source: ParameterSource,
  prefix = '',
): MffOceTrainingWeights {
  return mapMffOceLayout(MFF_OCE_LAYOUT, (spec) => loadTrainingConvBn(runtime, source, prefix, spec));
}

/** Every trainable tensor under its official name relative to MFF_OCE ('conv1.weight', 'bn1.weight', ...). */
export function mffOceTrainableParameters(weights: MffOceTrainingWeights): TrainableParameter[] {
  return mffOceLayers(weights).flatMap((layer) => [
    { name: `${layer.spec.conv}.weight`, param: layer.weight },
    ...(layer.bias ? [{ name: `${layer.spec.conv}.bias`, param: layer.bias }] : []),
    { name: `${layer.spec.bn}.weight`, param: layer.bn.weight },
    { name: `${layer.spec.bn}.bias`, param: layer.bn.bias },
  ]);
}

/** The BatchNorms by official name ('bn1', 'bn_layer.0.downsample.1', ...): running statistics and batch count. */
export function mffOceBatchNorms(weights: MffOceTrainingWeights): Map<string, BatchNormTrainState> {
  return new Map(mffOceLayers(weights).map((layer) => [layer.spec.bn, layer.bn]));
}

/** What one layer's backward needs: its input, the convolution's output (the BN input) and the batch statistics. */
interface SavedConvBn {
  layer: TrainingConvBn;
  input: Tensor;
  convolved: Tensor;
  statistics: Tensor;
  relu: boolean;
}

interface SavedBottleneck {
  layers: BottleneckLayout<SavedConvBn>;
  /** The block's output relu(bn3(...) + shortcut): its zeros mask the backward of that ReLU. */
  out: Tensor;
}

/** The activations of one training forward; mffOceTrainingBackward consumes (disposes) them. */
export interface MffOceTape {
  conv1: SavedConvBn;
  conv21: SavedConvBn;
  conv2: SavedConvBn;
  conv31: SavedConvBn;
  convf: SavedConvBn;
  bottleneck: SavedBottleneck[];
  /** Tensors the tape owns (intermediate activations), disposed with it; the inputs f1..f3 are the caller's. */
  owned: Tensor[];
}

export interface MffOceTrainingForward {
  /** z [B, h/2, w/2, 512]; the caller owns it. */
  z: Tensor;
  tape: MffOceTape;
}

function convBnTrain(
  runtime: GpuRuntime,
  x: Tensor,
  layer: TrainingConvBn,
  relu: boolean,
  owned: Tensor[],
): { out: Tensor; saved: SavedConvBn } {
  const convolved = layer.asLinear
    ? linear(runtime, x, layer.weight, layer.bias)
    : conv2d(runtime, x, layer.weight, {
        stride: layer.stride,
        padding: layer.padding,
        ...(layer.bias ? { bias: layer.bias } : {}),
      });
  const { out, statistics } = batchNormTrain(runtime, convolved, layer.bn, { relu });
  owned.push(convolved, statistics);
  return { out, saved: { layer, input: x, convolved, statistics, relu } };
}

/**
 * The training forward on NHWC f1 [B, 4h, 4w, 64], f2 [B, 2h, 2w, 128], f3 [B, h, w, 256]: z and the tape for the
 * backward. Updates every BatchNorm's running statistics and batch count (PyTorch's train-mode forward).
 */
export function mffOceTrainingForward(
  runtime: GpuRuntime,
  weights: MffOceTrainingWeights,
  f1: Tensor,
  f2: Tensor,
  f3: Tensor,
): MffOceTrainingForward {
  checkMffOceInputs('mffOceTrainingForward', f1, f2, f3);
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  const conv1 = convBnTrain(runtime, f1, weights.conv1, true, owned);
  const conv21 = convBnTrain(runtime, f2, weights.conv21, true, owned);
  const fpn1 = keep(binary(runtime, 'add', conv21.out, conv1.out));
  const conv2 = convBnTrain(runtime, fpn1, weights.conv2, true, owned);
  const conv31 = convBnTrain(runtime, f3, weights.conv31, true, owned);
  const fused = keep(binary(runtime, 'add', conv2.out, conv31.out));
  for (const branch of [conv1, conv21, conv2, conv31]) branch.out.dispose();
  const convf = convBnTrain(runtime, fused, weights.convf, true, owned);
  let s = convf.out;
  owned.push(s);
  const bottleneck = weights.bottleneck.map((block, i): SavedBottleneck => {
    const a = convBnTrain(runtime, s, block.conv1, true, owned);
    owned.push(a.out);
    const b = convBnTrain(runtime, a.out, block.conv2, true, owned);
    owned.push(b.out);
    const c = convBnTrain(runtime, b.out, block.conv3, false, owned);
    const downsample = block.downsample ? convBnTrain(runtime, s, block.downsample, false, owned) : undefined;
    const sum = binary(runtime, 'add', c.out, downsample?.out ?? s);
    c.out.dispose();
    downsample?.out.dispose();
    const out = unary(runtime, 'relu', sum);
    sum.dispose();
    // The last block's output is z, which the caller owns.
    if (i < weights.bottleneck.length - 1) owned.push(out);
    s = out;
    return {
      layers: {
        conv1: a.saved,
        conv2: b.saved,
        conv3: c.saved,
        ...(downsample ? { downsample: downsample.saved } : {}),
      },
      out,
    };
  });
  return {
    z: s,
    tape: {
      conv1: conv1.saved,
      conv21: conv21.saved,
      conv2: conv2.saved,
      conv31: conv31.saved,
      convf: convf.saved,
      bottleneck,
      owned,
    },
  };
}

interface ConvBnBackwardOptions {
  /** false for a frozen input (an encoder feature): no dx. */
  inputGradient: boolean;
  /** Add dx into this tensor (the input's shape) instead of returning a new one. */
  accumulateInto?: Tensor;
}

/** Backward of one conv -> BN (-> ReLU) layer for dy: its gradients go into `grads`; returns dx when asked. */
function convBnBackward(
  runtime: GpuRuntime,
  saved: SavedConvBn,
  dy: Tensor,
  grads: Map<string, Tensor>,
  options: ConvBnBackwardOptions,
): Tensor | undefined {
  const { layer, input, convolved, statistics, relu } = saved;
  const bn = batchNormTrainBackward(runtime, convolved, statistics, layer.bn, dy, { relu });
  grads.set(`${layer.spec.bn}.weight`, bn.dWeight);
  grads.set(`${layer.spec.bn}.bias`, bn.dBias);
  const hasBias = layer.bias !== undefined;
  let dx: Tensor | undefined;
  if (layer.asLinear) {
    const g = linearBackward(runtime, input, layer.weight, bn.dx, {
      hasBias,
      inputGradient: options.inputGradient,
      ...(options.accumulateInto ? { accumulateInputGradientInto: options.accumulateInto } : {}),
    });
    grads.set(`${layer.spec.conv}.weight`, g.dWeight);
    if (g.dBias) grads.set(`${layer.spec.conv}.bias`, g.dBias);
    dx = g.dx;
  } else {
    const g = conv2dBackward(runtime, input, layer.weight, bn.dx, {
      stride: layer.stride,
      padding: layer.padding,
      hasBias,
      inputGradient: options.inputGradient,
    });
    grads.set(`${layer.spec.conv}.weight`, g.dWeight);
    if (g.dBias) grads.set(`${layer.spec.conv}.bias`, g.dBias);
    dx = g.dx;
    if (dx && options.accumulateInto) {
      const sum = binary(runtime, 'add', options.accumulateInto, dx);
      dx.dispose();
      dx = sum;
    }
  }
  bn.dx.dispose();
  return dx;
}

function requireGradient(dx: Tensor | undefined, what: string): Tensor {
  if (!dx) throw new Error(`mffOceTrainingBackward: no input gradient from ${what}`);
  return dx;
}

/**
 * The backward of mffOceTrainingForward for dz (z's shape): the gradient of every parameter by official name (as in
 * mffOceTrainableParameters; 1x1 stride-1 conv weights as [out, in]). Consumes the tape; dz stays the caller's. Run it
 * before the optimiser changes the parameters (BN's backward reads its weight and bias).
 */
export function mffOceTrainingBackward(runtime: GpuRuntime, tape: MffOceTape, dz: Tensor): Map<string, Tensor> {
  const grads = new Map<string, Tensor>();
  let ds = dz;
  for (let i = tape.bottleneck.length - 1; i >= 0; i--) {
    const { layers, out } = tape.bottleneck[i] as SavedBottleneck;
    const dsum = binary(runtime, 'relu_backward', ds, out);
    if (ds !== dz) ds.dispose();
    const db = requireGradient(convBnBackward(runtime, layers.conv3, dsum, grads, { inputGradient: true }), 'conv3');
    const da = requireGradient(convBnBackward(runtime, layers.conv2, db, grads, { inputGradient: true }), 'conv2');
    db.dispose();
    // The block input's gradient: the shortcut's plus the main branch's, accumulated into the first.
    let shortcut = dsum;
    if (layers.downsample) {
      const dShortcut = convBnBackward(runtime, layers.downsample, dsum, grads, { inputGradient: true });
      shortcut = requireGradient(dShortcut, 'downsample');
      dsum.dispose();
    }
    ds = requireGradient(
      convBnBackward(runtime, layers.conv1, da, grads, { inputGradient: true, accumulateInto: shortcut }),
      'conv1',
    );
    if (ds !== shortcut) shortcut.dispose();
    da.dispose();
  }
  const dFused = requireGradient(convBnBackward(runtime, tape.convf, ds, grads, { inputGradient: true }), 'convf');
  if (ds !== dz) ds.dispose();
  convBnBackward(runtime, tape.conv31, dFused, grads, { inputGradient: false });
  const dFpn1 = requireGradient(convBnBackward(runtime, tape.conv2, dFused, grads, { inputGradient: true }), 'conv2');
  dFused.dispose();
  convBnBackward(runtime, tape.conv21, dFpn1, grads, { inputGradient: false });
  convBnBackward(runtime, tape.conv1, dFpn1, grads, { inputGradient: false });
  dFpn1.dispose();
  for (const t of tape.owned) t.dispose();
  return grads;
}
