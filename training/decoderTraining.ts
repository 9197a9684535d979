import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { shapeToString, type Tensor } from '../src/gpu/tensor.ts';
import { lssModuleBlocks } from '../src/model/config.ts';
import {
  type ConvBranchActivations,
  convBranchKeeping,
  type DecoderWeights,
  type HssWeights,
  LAYER_NORM_EPS,
  type LssWeights,
  type PatchExpandWeights,
  type PointwiseConv,
  patchExpandForwardKeeping,
  type Ss2dActivations,
  type Ss2dWeights,
  ss2dForwardKeeping,
} from '../src/model/decoder.ts';
import { depthwiseConv2dBackward } from '../src/model/ops/conv.ts';
import { binary } from '../src/model/ops/elementwise.ts';
import { concatChannels, patchExpandShuffleBackward, splitChannels } from '../src/model/ops/layout.ts';
import { linear, linearBackward, matmulStrided } from '../src/model/ops/matmul.ts';
import { gatedLayerNormBackward, instanceNormBackward, layerNorm, layerNormBackward } from '../src/model/ops/norm.ts';
import { SSM_STATES, STATE_INTERVAL_UNIT, selectiveScanBackward } from '../src/model/ops/scan.ts';

/**
 * The MambaAD decoder in training mode (MAMBAAD.md §4-§7, §6.1, §10): forwards that keep what the backward needs (a
 * "trace"), and backwards that return the input gradient and one gradient per parameter, keyed by the official
 * state-dict name relative to the module's prefix (e.g. 'self_attention.x_proj_weight', 'conv55.0.weight'). Each
 * gradient holds the parameter's values in row-major order; its tensor shape may be a flattening of the official one
 * (x_proj_weight [K·(R+2N), D] for [K, R+2N, D], a 1x1 conv's [out, in] for [out, in, 1, 1]).
 *
 * A backward consumes its trace: it frees the saved tensors as soon as they are dead, so it runs once per forward.
 * Inputs passed to a forward stay the caller's and must stay alive until the backward has been recorded.
 */

/** Gradients keyed by official parameter names (relative to the module's prefix). */
export type Gradients = Map<string, Tensor>;

export interface BackwardResult {
  /** The gradient of the module's input. */
  dx: Tensor;
  grads: Gradients;
}

/** A value the ops return whenever they were asked for it (an input gradient, a bias gradient, an indexed element). */
function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`decoder training: ${what} is missing`);
  return value;
}

function addPrefixed(target: Gradients, prefix: string, source: Gradients): void {
  for (const [name, grad] of source) target.set(`${prefix}${name}`, grad);
}

/**
 * Steps between the scan states the forward keeps: about √L (the backward recomputes each interval from its state),
 * in multiples of STATE_INTERVAL_UNIT.
 */
export function scanStateInterval(length: number): number {
  return STATE_INTERVAL_UNIT * Math.max(1, Math.round(Math.sqrt(length) / STATE_INTERVAL_UNIT));
}

// ---------------------------------------------------------------- DropPath

/**
 * Per-sample DropPath scales for one HSS block (timm DropPath, scale_by_keep): each sample's SS2D output is multiplied
 * by 0 (dropped, probability `rate`) or 1/keep. Undefined for rate 0: the identity.
 */
export function drawDropPathScales(rate: number, batch: number, random: () => number): Float32Array | undefined {
  if (!(rate >= 0 && rate < 1)) throw new Error(`DropPath: the drop rate must be in [0, 1), got ${rate}`);
  if (rate === 0) return undefined;
  const keep = 1 - rate;
  return Float32Array.from({ length: batch }, () => (random() < keep ? 1 / keep : 0));
}

/**
 * The decoder's stochastic depth (MAMBAAD.md §4): dpr = reverse(linspace(0, maxRate, Σ depths)); LSS module j of
 * stage i takes the j-th value of stage i's slice, shared by its HSS blocks. Returns [stage][module].
 */
export function stochasticDepthRates(depths: readonly number[], maxRate = 0.2): number[][] {
  const total = depths.reduce((n, d) => n + d, 0);
  const dpr = Array.from({ length: total }, (_, i) => (total === 1 ? 0 : (maxRate * i) / (total - 1))).reverse();
  let start = 0;
  return depths.map((depth) => {
    const rates = lssModuleBlocks(depth).map((_, j) => dpr[start + j] ?? 0);
    start += depth;
    return rates;
  });
}

/**
 * Per-sample DropPath scales for an HSS block, looked up by the block's state-dict prefix relative to the module
 * being run (e.g. 'layers_up.1.blocks.0.smm_blocks.1.' for the decoder); undefined means no DropPath.
 */
export type DropPathScales = (blockPrefix: string) => Float32Array | undefined;

/**
 * The decoder's DropPath for one training step: every HSS block draws its own per-sample mask from `random` at the
 * rate of its LSS module (stochasticDepthRates), in the order the forward asks.
 */
export function decoderDropPath(
  depths: readonly number[],
  batch: number,
  random: () => number,
  maxRate = 0.2,
): DropPathScales {
  const rates = stochasticDepthRates(depths, maxRate);
  return (prefix) => {
    const match = /^layers_up\.(\d+)\.blocks\.(\d+)\.smm_blocks\.\d+\.$/.exec(prefix);
    const rate = match ? rates[Number(match[1])]?.[Number(match[2])] : undefined;
    if (rate === undefined) throw new Error(`DropPath: "${prefix}" is not an HSS block of this decoder`);
    return drawDropPathScales(rate, batch, random);
  };
}

/**
 * into[b] (+)= scales[b] · x[b] for every sample b: a strided GEMM with k = n = 1 and the per-sample scale as the
 * batch's 1x1 B matrix (the element-wise kernels take no per-sample factor).
 */
function scaleSamples(runtime: GpuRuntime, x: Tensor, scales: Tensor, into: Tensor, accumulate: boolean): void {
  const batch = x.shape[0] ?? 0;
  const perSample = x.size / batch;
  matmulStrided(runtime, {
    a: x,
    b: scales,
    c: into,
    m: perSample,
    n: 1,
    k: 1,
    lda: 1,
    ldb: 1,
    ldc: 1,
    batch,
    batchStrideA: perSample,
    batchStrideB: 1,
    batchStrideC: perSample,
    accumulate,
  });
}

// ---------------------------------------------------------------- SS2D

export interface Ss2dTrace {
  /** The forward's input (the caller's). */
  x: Tensor;
  activations: Ss2dActivations;
}

/** SS2D (decoder.ts ss2dForward) keeping its activations; with `residual` the output is added into it. */
export function ss2dTrainForward(
  runtime: GpuRuntime,
  w: Ss2dWeights,
  x: Tensor,
  residual?: Tensor,
): { out: Tensor; trace: Ss2dTrace } {
  const { out, activations } = ss2dForwardKeeping(runtime, w, x, scanStateInterval(w.table.length), residual);
  return { out, trace: { x, activations } };
}

/**
 * The backward of SS2D for dOut (the gradient of its output): out_proj, the gated LayerNorm (its gate gradient written
 * into d(in_proj output) in place), the selective scan of every direction (dy = the merged gradient), dt_proj, x_proj,
 * the depthwise conv + SiLU (written into the other half of d(in_proj output)) and in_proj.
 */
export function ss2dBackward(runtime: GpuRuntime, w: Ss2dWeights, trace: Ss2dTrace, dOut: Tensor): BackwardResult {
  const { x, activations: a } = trace;
  const D = w.dInner;
  const K = w.table.directions;
  const R = w.dtRank;
  const blockWidth = R + 2 * SSM_STATES;
  const rows = x.size / w.channels;

  const outProj = linearBackward(runtime, a.gated, w.outProj, dOut);
  a.gated.dispose();
  const dGated = present(outProj.dx, 'out_proj input gradient');
  const dxz = runtime.empty(a.xz.shape, 'SS2D d(in_proj output)');
  const norm = gatedLayerNormBackward(runtime, a.merged, a.xz, w.outNormWeight, w.outNormBias, dGated, {
    eps: LAYER_NORM_EPS,
    gateChannelOffset: D,
    gateGradientInto: dxz,
  });
  dGated.dispose();
  a.merged.dispose();

  const scanInputs = {
    u: a.u,
    deltaRaw: a.deltaRaw,
    proj: a.proj,
    dtRank: R,
    table: w.table,
    channelParams: w.scanParams,
  };
  const scan = selectiveScanBackward(runtime, scanInputs, norm.dx, a.saved);
  norm.dx.dispose();
  a.saved.states.dispose();
  a.deltaRaw.dispose();
  // delta_raw[k] = proj[:, k, 0:R] · dt_projs_weight[k]ᵀ: its gradient fills dProj's dt columns and gives dt_projs.
  matmulStrided(runtime, {
    a: scan.dDeltaRaw,
    b: w.dtProj,
    c: scan.dProj,
    m: rows,
    n: R,
    k: D,
    lda: D,
    ldb: R,
    ldc: K * blockWidth,
    batch: K,
    batchStrideA: rows * D,
    batchStrideB: D * R,
    batchStrideC: blockWidth,
  });
  const dDtProj = runtime.empty([K, D, R], 'SS2D d dt_projs_weight');
  matmulStrided(runtime, {
    a: scan.dDeltaRaw,
    b: a.proj,
    c: dDtProj,
    m: D,
    n: R,
    k: rows,
    lda: D,
    ldb: K * blockWidth,
    ldc: R,
    batch: K,
    batchStrideA: rows * D,
    batchStrideB: blockWidth,
    batchStrideC: D * R,
    transposeA: true,
  });
  scan.dDeltaRaw.dispose();
  a.proj.dispose();
  // proj = u · x_projᵀ: its input gradient joins the scan's own du before the convolution's backward.
  const xProj = linearBackward(runtime, a.u, w.xProj, scan.dProj, { accumulateInputGradientInto: scan.du });
  scan.dProj.dispose();
  a.u.dispose();
  const conv = depthwiseConv2dBackward(runtime, a.xz, w.convWeight, scan.du, {
    bias: w.convBias,
    silu: true,
    channelOffset: 0,
    inputGradientInto: dxz,
  });
  scan.du.dispose();
  a.xz.dispose();
  const inProj = linearBackward(runtime, x, w.inProj, dxz);
  dxz.dispose();

  const grads: Gradients = new Map([
    ['in_proj.weight', inProj.dWeight],
    ['conv2d.weight', conv.dWeight],
    ['conv2d.bias', present(conv.dBias, 'conv2d bias gradient')],
    ['x_proj_weight', xProj.dWeight],
    ['dt_projs_weight', dDtProj],
    ['dt_projs_bias', scan.dDeltaBias],
    ['A_logs', scan.dA],
    ['Ds', scan.dDskip],
    ['out_norm.weight', norm.dWeight],
    ['out_norm.bias', norm.dBias],
    ['out_proj.weight', outProj.dWeight],
  ]);
  return { dx: present(inProj.dx, 'in_proj input gradient'), grads };
}

// ---------------------------------------------------------------- HSS block

export interface HssTrace {
  x: Tensor;
  /** LayerNorm(x), SS2D's input. */
  normed: Tensor;
  ss2d: Ss2dTrace;
  /** [B] DropPath scales, when DropPath was active. */
  dropScales?: Tensor;
}

export interface HssTrainOptions {
  /** Per-sample DropPath scales (0 or 1/keep, drawDropPathScales); absent: no DropPath (eval, or rate 0). */
  dropPathScales?: Float32Array | undefined;
}

/** HSS(x) = x + DropPath(SS2D(LayerNorm(x))) in training mode. Returns a new tensor. */
export function hssTrainForward(
  runtime: GpuRuntime,
  w: HssWeights,
  x: Tensor,
  options: HssTrainOptions = {},
): { out: Tensor; trace: HssTrace } {
  const scales = options.dropPathScales;
  const batch = x.shape[0] ?? 0;
  if (scales && (scales.length !== batch || !scales.every((s) => Number.isFinite(s) && s >= 0))) {
    throw new Error(
      `HSS DropPath: ${scales.length} scales for input ${shapeToString(x.shape)}; they must be one finite ` +
        'non-negative value per sample',
    );
  }
  const normed = layerNorm(runtime, x, w.lnWeight, w.lnBias, { eps: LAYER_NORM_EPS });
  const out = runtime.empty(x.shape, 'HSS out');
  runtime.copy(x, out);
  if (!scales) {
    const { trace } = ss2dTrainForward(runtime, w.ss2d, normed, out);
    return { out, trace: { x, normed, ss2d: trace } };
  }
  const dropScales = runtime.upload([batch], scales, 'DropPath scales');
  const ss2d = ss2dTrainForward(runtime, w.ss2d, normed);
  scaleSamples(runtime, ss2d.out, dropScales, out, true);
  ss2d.out.dispose();
  return { out, trace: { x, normed, ss2d: ss2d.trace, dropScales } };
}

export function hssBackward(runtime: GpuRuntime, w: HssWeights, trace: HssTrace, dOut: Tensor): BackwardResult {
  let dSs2d = dOut;
  if (trace.dropScales) {
    dSs2d = runtime.empty(dOut.shape, 'HSS d DropPath');
    scaleSamples(runtime, dOut, trace.dropScales, dSs2d, false);
    trace.dropScales.dispose();
  }
  const ss2d = ss2dBackward(runtime, w.ss2d, trace.ss2d, dSs2d);
  if (dSs2d !== dOut) dSs2d.dispose();
  const norm = layerNormBackward(runtime, trace.x, w.lnWeight, ss2d.dx, { eps: LAYER_NORM_EPS });
  ss2d.dx.dispose();
  trace.normed.dispose();
  const dx = binary(runtime, 'add', norm.dx, dOut); // the residual
  norm.dx.dispose();
  const grads: Gradients = new Map([
    ['ln_1.weight', norm.dWeight],
    ['ln_1.bias', norm.dBias],
  ]);
  addPrefixed(grads, 'self_attention.', ss2d.grads);
  return { dx, grads };
}

// ---------------------------------------------------------------- LSS module

export interface LssTrace {
  x: Tensor;
  /** Block m's input is x for m = 0, else block m-1's output (owned by this trace). */
  blocks: HssTrace[];
  branch5: ConvBranchActivations;
  branch7: ConvBranchActivations;
  /** finalconv11's input: [HSS output, branch5, branch7]. */
  concat: Tensor;
}

export interface LssTrainOptions {
  /** DropPath scales by block prefix ('smm_blocks.<m>.'). */
  dropPath?: DropPathScales;
}

/** LSS(X) = Conv1x1([HSS…HSS(X), branch5(X), branch7(X)]) + X in training mode. Returns a new tensor. */
export function lssTrainForward(
  runtime: GpuRuntime,
  w: LssWeights,
  x: Tensor,
  options: LssTrainOptions = {},
): { out: Tensor; trace: LssTrace } {
  const blocks: HssTrace[] = [];
  let s = x;
  for (const [m, block] of w.blocks.entries()) {
    const step = hssTrainForward(runtime, block, s, { dropPathScales: options.dropPath?.(`smm_blocks.${m}.`) });
    blocks.push(step.trace);
    s = step.out;
  }
  const branch5 = convBranchKeeping(runtime, w.conv1b5, w.conv55, w.conv1a5, x);
  const branch7 = convBranchKeeping(runtime, w.conv1b7, w.conv77, w.conv1a7, x);
  const concat = concatChannels(runtime, [s, branch5.out, branch7.out]);
  // The last block's output is read again only through the concatenation.
  if (s !== x) s.dispose();
  branch5.out.dispose();
  branch7.out.dispose();
  const out = runtime.empty(x.shape, 'LSS out');
  runtime.copy(x, out);
  linear(runtime, concat, w.finalConv.weight, w.finalConv.bias, { accumulateInto: out });
  return { out, trace: { x, blocks, branch5: branch5.activations, branch7: branch7.activations, concat } };
}

/**
 * The backward of one conv branch for dOut, the gradient of its output; its input gradient is added into dx. The
 * biases of its 1x1 convs feed an InstanceNorm, so their true gradients are 0 (what comes back is rounding noise).
 */
function convBranchBackward(
  runtime: GpuRuntime,
  names: { before: string; depthwise: string; after: string },
  before: PointwiseConv,
  depthwise: Tensor,
  after: PointwiseConv,
  x: Tensor,
  a: ConvBranchActivations,
  dOut: Tensor,
  dx: Tensor,
  grads: Gradients,
): void {
  const dAfterConv = instanceNormBackward(runtime, a.afterConv, dOut, { silu: true });
  a.afterConv.dispose();
  const afterGrads = linearBackward(runtime, a.afterIn, after.weight, dAfterConv, { hasBias: true });
  dAfterConv.dispose();
  a.afterIn.dispose();
  const dDepthwiseOut = instanceNormBackward(runtime, a.depthwiseOut, present(afterGrads.dx, 'dx'), {
    silu: true,
  });
  afterGrads.dx?.dispose();
  a.depthwiseOut.dispose();
  const depthwiseGrads = depthwiseConv2dBackward(runtime, a.depthwiseIn, depthwise, dDepthwiseOut);
  dDepthwiseOut.dispose();
  a.depthwiseIn.dispose();
  const dBeforeConv = instanceNormBackward(runtime, a.beforeConv, present(depthwiseGrads.dx, 'dx'), {
    silu: true,
  });
  depthwiseGrads.dx?.dispose();
  a.beforeConv.dispose();
  const beforeGrads = linearBackward(runtime, x, before.weight, dBeforeConv, {
    hasBias: true,
    accumulateInputGradientInto: dx,
  });
  dBeforeConv.dispose();
  grads.set(`${names.before}.weight`, beforeGrads.dWeight);
  grads.set(`${names.before}.bias`, present(beforeGrads.dBias, 'bias gradient'));
  grads.set(`${names.depthwise}.weight`, depthwiseGrads.dWeight);
  grads.set(`${names.after}.weight`, afterGrads.dWeight);
  grads.set(`${names.after}.bias`, present(afterGrads.dBias, 'bias gradient'));
}

export function lssBackward(runtime: GpuRuntime, w: LssWeights, trace: LssTrace, dOut: Tensor): BackwardResult {
  const C = trace.x.shape.at(-1) ?? 0;
  const final = linearBackward(runtime, trace.concat, w.finalConv.weight, dOut, { hasBias: true });
  trace.concat.dispose();
  const [dBlocks, d5, d7] = splitChannels(runtime, present(final.dx, 'finalconv11 input gradient'), [C, C, C]) as [
    Tensor,
    Tensor,
    Tensor,
  ];
  final.dx?.dispose();
  const grads: Gradients = new Map();
  let dS = dBlocks;
  for (let m = w.blocks.length - 1; m >= 0; m--) {
    const blockTrace = present(trace.blocks[m], `block ${m} trace`);
    const block = hssBackward(runtime, present(w.blocks[m], `block ${m}`), blockTrace, dS);
    dS.dispose();
    if (blockTrace.x !== trace.x) blockTrace.x.dispose(); // the previous block's output
    addPrefixed(grads, `smm_blocks.${m}.`, block.grads);
    dS = block.dx;
  }
  const dx = binary(runtime, 'add', dS, dOut); // the residual
  dS.dispose();
  const x = trace.x;
  const names5 = { before: 'conv1b5.0', depthwise: 'conv55.0', after: 'conv1a5.0' };
  convBranchBackward(runtime, names5, w.conv1b5, w.conv55, w.conv1a5, x, trace.branch5, d5, dx, grads);
  d5.dispose();
  const names7 = { before: 'conv1b7.0', depthwise: 'conv77.0', after: 'conv1a7.0' };
  convBranchBackward(runtime, names7, w.conv1b7, w.conv77, w.conv1a7, x, trace.branch7, d7, dx, grads);
  d7.dispose();
  grads.set('finalconv11.weight', final.dWeight);
  grads.set('finalconv11.bias', present(final.dBias, 'finalconv11 bias gradient'));
  return { dx, grads };
}

// ---------------------------------------------------------------- PatchExpand

export interface PatchExpandTrace {
  x: Tensor;
  /** The LayerNorm's input. */
  shuffled: Tensor;
}

export function patchExpandTrainForward(
  runtime: GpuRuntime,
  w: PatchExpandWeights,
  x: Tensor,
): { out: Tensor; trace: PatchExpandTrace } {
  const { out, shuffled } = patchExpandForwardKeeping(runtime, w, x);
  return { out, trace: { x, shuffled } };
}

export function patchExpandBackward(
  runtime: GpuRuntime,
  w: PatchExpandWeights,
  trace: PatchExpandTrace,
  dOut: Tensor,
): BackwardResult {
  const norm = layerNormBackward(runtime, trace.shuffled, w.normWeight, dOut, { eps: LAYER_NORM_EPS });
  trace.shuffled.dispose();
  const dExpanded = patchExpandShuffleBackward(runtime, norm.dx);
  norm.dx.dispose();
  const expand = linearBackward(runtime, trace.x, w.expand, dExpanded);
  dExpanded.dispose();
  const grads: Gradients = new Map([
    ['expand.weight', expand.dWeight],
    ['norm.weight', norm.dWeight],
    ['norm.bias', norm.dBias],
  ]);
  return { dx: present(expand.dx, 'expand input gradient'), grads };
}

// ---------------------------------------------------------------- MambaUPNet

interface StageTrace {
  upsample?: PatchExpandTrace;
  modules: LssTrace[];
}

export interface DecoderTrace {
  /** The decoder's input (the caller's). */
  z: Tensor;
  stages: StageTrace[];
  /** The returned outputs, which the trace owns (stage i's output is stage i+1's input). */
  outputs: Tensor[];
}

export interface DecoderTrainOptions {
  /** DropPath scales by block prefix ('layers_up.<i>.blocks.<j>.smm_blocks.<m>.'), e.g. decoderDropPath. */
  dropPath?: DropPathScales;
}

/**
 * MambaUPNet in training mode: z [B, h, w, dims[0]] -> [d1, d2, d3] (NHWC, high resolution first; the stage-0 output
 * only feeds stage 1). The outputs belong to the trace: decoderBackward frees them, or disposeDecoderTrace when no
 * backward follows.
 */
export function decoderTrainForward(
  runtime: GpuRuntime,
  w: DecoderWeights,
  z: Tensor,
  options: DecoderTrainOptions = {},
): { outputs: Tensor[]; trace: DecoderTrace } {
  const stages: StageTrace[] = [];
  const outputs: Tensor[] = [];
  let x = z;
  for (const [i, stage] of w.stages.entries()) {
    const stageTrace: StageTrace = { modules: [] };
    if (stage.upsample) {
      const up = patchExpandTrainForward(runtime, stage.upsample, x);
      stageTrace.upsample = up.trace;
      x = up.out;
    }
    for (const [j, module] of stage.modules.entries()) {
      const dropPath = options.dropPath;
      const step = lssTrainForward(runtime, module, x, {
        ...(dropPath ? { dropPath: (name: string) => dropPath(`layers_up.${i}.blocks.${j}.${name}`) } : {}),
      });
      stageTrace.modules.push(step.trace);
      x = step.out;
    }
    stages.push(stageTrace);
    if (i > 0) outputs.unshift(x);
  }
  return { outputs, trace: { z, stages, outputs: [...outputs] } };
}

/** Frees every tensor a decoder trace still holds (Tensor.dispose is idempotent), for a forward without backward. */
export function disposeDecoderTrace(trace: DecoderTrace): void {
  const free = (t: Tensor) => {
    if (t !== trace.z) t.dispose();
  };
  for (const stage of trace.stages) {
    if (stage.upsample) [stage.upsample.x, stage.upsample.shuffled].forEach(free);
    for (const module of stage.modules) {
      free(module.x);
      free(module.concat);
      for (const branch of [module.branch5, module.branch7]) Object.values(branch).forEach(free);
      for (const block of module.blocks) {
        [block.x, block.normed, ...(block.dropScales ? [block.dropScales] : [])].forEach(free);
        const { saved, ...activations } = block.ss2d.activations;
        [saved.states, ...Object.values(activations)].forEach(free);
      }
    }
  }
  trace.outputs.forEach(free);
}

/**
 * The backward of decoderTrainForward for the gradients of its outputs [dd1, dd2, dd3] (the caller's, not freed):
 * dz and every parameter's gradient keyed relative to the decoder's prefix ('layers_up.1.upsample.expand.weight').
 */
export function decoderBackward(
  runtime: GpuRuntime,
  w: DecoderWeights,
  trace: DecoderTrace,
  dOutputs: readonly Tensor[],
): BackwardResult {
  const stageCount = w.stages.length;
  if (dOutputs.length !== stageCount - 1) {
    throw new Error(`decoder backward: ${dOutputs.length} output gradients for ${stageCount - 1} outputs`);
  }
  const grads: Gradients = new Map();
  let g: Tensor | undefined;
  let ownsG = false;
  const replace = (next: Tensor) => {
    if (g && ownsG) g.dispose();
    g = next;
    ownsG = true;
  };
  const freeInput = (t: Tensor) => {
    if (t !== trace.z) t.dispose();
  };
  for (let i = stageCount - 1; i >= 0; i--) {
    const stage = present(w.stages[i], `stage ${i}`);
    const stageTrace = present(trace.stages[i], `stage ${i} trace`);
    if (i > 0) {
      const dOut = present(dOutputs[stageCount - 1 - i], 'output gradient');
      const output = present(trace.outputs[stageCount - 1 - i], 'output');
      if (dOut.shape.join() !== output.shape.join()) {
        throw new Error(
          `decoder backward: output ${stageCount - 1 - i} is ${shapeToString(output.shape)}, its gradient ` +
            shapeToString(dOut.shape),
        );
      }
      if (g) replace(binary(runtime, 'add', g, dOut));
      else g = dOut;
    }
    if (!g) throw new Error('decoder backward: the last stage has no output gradient');
    for (let j = stage.modules.length - 1; j >= 0; j--) {
      const moduleTrace = present(stageTrace.modules[j], `module ${j} trace`);
      const result = lssBackward(runtime, present(stage.modules[j], `module ${j}`), moduleTrace, g);
      freeInput(moduleTrace.x);
      addPrefixed(grads, `layers_up.${i}.blocks.${j}.`, result.grads);
      replace(result.dx);
    }
    if (stage.upsample && stageTrace.upsample) {
      const result = patchExpandBackward(runtime, stage.upsample, stageTrace.upsample, g);
      freeInput(stageTrace.upsample.x);
      addPrefixed(grads, `layers_up.${i}.upsample.`, result.grads);
      replace(result.dx);
    }
  }
  for (const output of trace.outputs) output.dispose();
  if (!g || !ownsG) throw new Error('decoder backward: the decoder has no layers');
  return { dx: g, grads };
}
