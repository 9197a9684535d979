import type { GpuRuntime } from '../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../gpu/tensor.ts';
import { lssModuleBlocks, ss2dSizes } from './config.ts';
import { depthwiseConv2d } from './ops/conv.ts';
import { concatChannels, patchExpandShuffle } from './ops/layout.ts';
import { linear, matmulStrided } from './ops/matmul.ts';
import { gatedLayerNorm, instanceNorm, layerNorm } from './ops/norm.ts';
import {
  type DirectionTable,
  mergeDirections,
  packScanParameters,
  type SavedScanStates,
  SSM_STATES,
  selectiveScanForward,
  uploadDirectionTable,
} from './ops/scan.ts';
import type { ParameterReader } from './parameters.ts';
import { type DirectionCount, directionTable, type ScanOrder, scanPermutation } from './scanOrders.ts';

/**
 * The MambaAD decoder (MAMBAAD.md §4-§7) in inference mode, channels-last throughout: SS2D, the HSS block, the LSS
 * module, PatchExpand and MambaUPNet. Loaders take official state-dict names under a prefix.
 */

/** Every LayerNorm inside MambaUPNet uses eps 1e-5 (norm_layer overrides HSSBlock's 1e-6 default). */
export const LAYER_NORM_EPS = 1e-5;

export interface ScanSettings {
  order: ScanOrder;
  directions: DirectionCount;
}

// ---------------------------------------------------------------- SS2D

export interface Ss2dWeights {
  channels: number;
  dInner: number;
  dtRank: number;
  /** in_proj.weight [2D, C]: u is the first D outputs, the gate z the second D. */
  inProj: Tensor;
  convWeight: Tensor;
  convBias: Tensor;
  /** x_proj_weight [K, R+2N, D] as one linear weight [K·(R+2N), D]: all directions in one matmul. */
  xProj: Tensor;
  /** dt_projs_weight [K, D, R]. */
  dtProj: Tensor;
  /** A_logs [K·D, N], dt_projs_bias [K, D] and Ds [K·D]: the trainable tensors behind scanParams. */
  aLogs: Tensor;
  deltaBias: Tensor;
  dSkip: Tensor;
  /** A (from A_logs), dt_projs_bias and Ds packed for the scan kernel; repacked after every training update. */
  scanParams: Tensor;
  outNormWeight: Tensor;
  outNormBias: Tensor;
  outProj: Tensor;
  table: DirectionTable;
}

/**
 * Direction tables are shared by every SS2D of one grid size. The checkpoint's own `scans.index_flat` must agree with
 * the configured order: a disagreement means the file was trained with another scan.
 */
export class DirectionTables {
  private readonly tables = new Map<number, DirectionTable>();

  constructor(
    private readonly runtime: GpuRuntime,
    readonly scan: ScanSettings,
  ) {}

  get(size: number): DirectionTable {
    let table = this.tables.get(size);
    if (!table) {
      const perm = scanPermutation(this.scan.order, size);
      const rows = directionTable(perm, size, this.scan.directions);
      table = uploadDirectionTable(this.runtime, rows, this.scan.directions, size * size);
      this.tables.set(size, table);
    }
    return table;
  }

  dispose(): void {
    for (const table of this.tables.values()) table.tensor.dispose();
    this.tables.clear();
  }
}

function checkIndexFlat(reader: ParameterReader, name: string, scan: ScanSettings, size: number): void {
  const length = size * size;
  const stored = reader.read(name, [1, 1, length]);
  const expected = scanPermutation(scan.order, size);
  const mismatch = stored.findIndex((v, i) => v !== expected[i]);
  if (mismatch >= 0) {
    reader.report(
      `"${name}": the file's scan order differs from the configured ${scan.order} scan at step ${mismatch} ` +
        '(the weights were trained with another scan method)',
    );
  }
}

export function loadSs2d(
  reader: ParameterReader,
  prefix: string,
  channels: number,
  size: number,
  tables: DirectionTables,
): Ss2dWeights {
  const { dInner, dtRank, projWidth } = ss2dSizes(channels, SSM_STATES);
  const K = tables.scan.directions;
  const p = (n: string) => `${prefix}${n}`;
  if (reader.has(p('scans.index_flat'))) checkIndexFlat(reader, p('scans.index_flat'), tables.scan, size);
  if (reader.has(p('scans.index_flat_inv'))) reader.read(p('scans.index_flat_inv'), [1, 1, size * size]);
  const aLogs = reader.upload(p('A_logs'), [K * dInner, SSM_STATES]);
  const deltaBias = reader.upload(p('dt_projs_bias'), [K, dInner]);
  const dSkip = reader.upload(p('Ds'), [K * dInner]);
  return {
    channels,
    dInner,
    dtRank,
    inProj: reader.upload(p('in_proj.weight'), [2 * dInner, channels]),
    convWeight: reader.upload(p('conv2d.weight'), [dInner, 1, 3, 3]),
    convBias: reader.upload(p('conv2d.bias'), [dInner]),
    xProj: reader.upload(p('x_proj_weight'), [K, projWidth, dInner], [K * projWidth, dInner]),
    dtProj: reader.upload(p('dt_projs_weight'), [K, dInner, dtRank]),
    aLogs,
    deltaBias,
    dSkip,
    scanParams: packScanParameters(reader.runtime, { A: aLogs, isLog: true, deltaBias, Dskip: dSkip }),
    outNormWeight: reader.upload(p('out_norm.weight'), [dInner]),
    outNormBias: reader.upload(p('out_norm.bias'), [dInner]),
    outProj: reader.upload(p('out_proj.weight'), [channels, dInner]),
    table: tables.get(size),
  };
}

/** SS2D's intermediate tensors that its backward pass reads (training/decoderTraining.ts). */
export interface Ss2dActivations {
  /** in_proj's output [B, H, W, 2D]: u before the convolution, then the gate z. */
  xz: Tensor;
  /** The convolved input of the scan [B, H, W, D]. */
  u: Tensor;
  proj: Tensor;
  deltaRaw: Tensor;
  /** The scan's output summed over the directions [B, H, W, D]. */
  merged: Tensor;
  /** out_proj's input [B, H, W, D]. */
  gated: Tensor;
  saved: SavedScanStates;
}

/** SS2D's steps; the intermediates come back for the caller to keep or free (the scan states only with an interval). */
function ss2dSteps(
  runtime: GpuRuntime,
  w: Ss2dWeights,
  x: Tensor,
  residual: Tensor | undefined,
  stateInterval: number | undefined,
): { out: Tensor; activations: Omit<Ss2dActivations, 'saved'>; saved: SavedScanStates | undefined } {
  const [batch, h, width, channels] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4 || channels !== w.channels || h * width !== w.table.length) {
    throw new Error(
      `SS2D: input ${shapeToString(x.shape)} does not fit a ${w.channels}-channel ${w.table.length}-position layer`,
    );
  }
  const D = w.dInner;
  const K = w.table.directions;
  const L = h * width;
  const projWidth = w.dtRank + 2 * SSM_STATES;

  const xz = linear(runtime, x, w.inProj); // [B, H, W, 2D]: u then z
  const u = depthwiseConv2d(runtime, xz, w.convWeight, { bias: w.convBias, silu: true, channelOffset: 0 });
  // Every direction's x_proj in raster order (the gather is a row permutation, so it commutes with the projection).
  const proj = linear(runtime, u, w.xProj); // [B, H, W, K·(R+2N)]
  // delta_raw[k] = proj[..., k, 0:R] · dt_projs_weight[k]ᵀ, all directions in one strided dispatch.
  const deltaRaw = runtime.empty([K, batch, L, D], 'SS2D delta');
  matmulStrided(runtime, {
    a: proj,
    b: w.dtProj,
    c: deltaRaw,
    m: batch * L,
    n: D,
    k: w.dtRank,
    lda: K * projWidth,
    ldb: w.dtRank,
    ldc: D,
    batch: K,
    batchStrideA: projWidth,
    batchStrideB: D * w.dtRank,
    batchStrideC: batch * L * D,
    transposeB: true,
  });
  const { y, saved } = selectiveScanForward(
    runtime,
    { u, deltaRaw, proj, dtRank: w.dtRank, table: w.table, channelParams: w.scanParams },
    stateInterval === undefined ? {} : { stateInterval },
  );
  const merged = mergeDirections(runtime, y); // [B, H, W, D]
  y.dispose();
  const gated = gatedLayerNorm(runtime, merged, xz, w.outNormWeight, w.outNormBias, {
    eps: LAYER_NORM_EPS,
    gateChannelOffset: D,
  });
  const out = linear(runtime, gated, w.outProj, undefined, residual ? { accumulateInto: residual } : {});
  return { out, activations: { xz, u, proj, deltaRaw, merged, gated }, saved };
}

/**
 * SS2D on x [B, H, W, C] (MAMBAAD.md §6). With `residual`, the output is added to it in place (the HSS block's skip)
 * and returned; otherwise a new tensor is returned.
 */
export function ss2dForward(runtime: GpuRuntime, w: Ss2dWeights, x: Tensor, residual?: Tensor): Tensor {
  const { out, activations } = ss2dSteps(runtime, w, x, residual, undefined);
  for (const t of Object.values(activations)) t.dispose();
  return out;
}

/**
 * ss2dForward that also returns what the backward pass needs, the scan's states every `stateInterval` steps
 * included. The caller owns (and frees) the activations.
 */
export function ss2dForwardKeeping(
  runtime: GpuRuntime,
  w: Ss2dWeights,
  x: Tensor,
  stateInterval: number,
  residual?: Tensor,
): { out: Tensor; activations: Ss2dActivations } {
  const { out, activations, saved } = ss2dSteps(runtime, w, x, residual, stateInterval);
  if (!saved) throw new Error('SS2D: the scan kept no states');
  return { out, activations: { ...activations, saved } };
}

// ---------------------------------------------------------------- HSS block

export interface HssWeights {
  lnWeight: Tensor;
  lnBias: Tensor;
  ss2d: Ss2dWeights;
}

export function loadHss(
  reader: ParameterReader,
  prefix: string,
  channels: number,
  size: number,
  tables: DirectionTables,
): HssWeights {
  return {
    lnWeight: reader.upload(`${prefix}ln_1.weight`, [channels]),
    lnBias: reader.upload(`${prefix}ln_1.bias`, [channels]),
    ss2d: loadSs2d(reader, `${prefix}self_attention.`, channels, size, tables),
  };
}

/** HSS(x) = x + SS2D(LayerNorm(x)); DropPath is the identity at inference. Returns a new tensor. */
export function hssForward(runtime: GpuRuntime, w: HssWeights, x: Tensor): Tensor {
  const normed = layerNorm(runtime, x, w.lnWeight, w.lnBias, { eps: LAYER_NORM_EPS });
  const out = runtime.empty(x.shape, 'HSS out');
  runtime.copy(x, out);
  ss2dForward(runtime, w.ss2d, normed, out);
  normed.dispose();
  return out;
}

// ---------------------------------------------------------------- LSS module

export interface PointwiseConv {
  weight: Tensor;
  bias: Tensor;
}

export interface LssWeights {
  blocks: HssWeights[];
  conv1b5: PointwiseConv;
  conv55: Tensor;
  conv1a5: PointwiseConv;
  conv1b7: PointwiseConv;
  conv77: Tensor;
  conv1a7: PointwiseConv;
  finalConv: PointwiseConv;
}

function loadPointwise(reader: ParameterReader, name: string, outC: number, inC: number): PointwiseConv {
  return {
    weight: reader.upload(`${name}.weight`, [outC, inC, 1, 1], [outC, inC]),
    bias: reader.upload(`${name}.bias`, [outC]),
  };
}

export function loadLss(
  reader: ParameterReader,
  prefix: string,
  channels: number,
  blockCount: number,
  size: number,
  tables: DirectionTables,
): LssWeights {
  const C = channels;
  return {
    blocks: Array.from({ length: blockCount }, (_, m) => loadHss(reader, `${prefix}smm_blocks.${m}.`, C, size, tables)),
    conv1b5: loadPointwise(reader, `${prefix}conv1b5.0`, C, C),
    conv55: reader.upload(`${prefix}conv55.0.weight`, [C, 1, 5, 5]),
    conv1a5: loadPointwise(reader, `${prefix}conv1a5.0`, C, C),
    conv1b7: loadPointwise(reader, `${prefix}conv1b7.0`, C, C),
    conv77: reader.upload(`${prefix}conv77.0.weight`, [C, 1, 7, 7]),
    conv1a7: loadPointwise(reader, `${prefix}conv1a7.0`, C, C),
    finalConv: loadPointwise(reader, `${prefix}finalconv11`, C, 3 * C),
  };
}

/**
 * One LSS conv branch, Conv1x1 -> depthwise k×k -> Conv1x1, each followed by InstanceNorm + SiLU: the tensors it
 * computes on the way (the backward pass reads them all).
 */
export interface ConvBranchActivations {
  /** The first 1x1 conv's output, before its norm. */
  beforeConv: Tensor;
  /** The depthwise conv's input. */
  depthwiseIn: Tensor;
  /** The depthwise conv's output, before its norm. */
  depthwiseOut: Tensor;
  /** The second 1x1 conv's input. */
  afterIn: Tensor;
  /** The second 1x1 conv's output, before its norm. */
  afterConv: Tensor;
}

/** Runs one conv branch; the caller keeps or frees the activations. */
export function convBranchKeeping(
  runtime: GpuRuntime,
  before: PointwiseConv,
  depthwise: Tensor,
  after: PointwiseConv,
  x: Tensor,
): { out: Tensor; activations: ConvBranchActivations } {
  const beforeConv = linear(runtime, x, before.weight, before.bias);
  const depthwiseIn = instanceNorm(runtime, beforeConv, { silu: true });
  const depthwiseOut = depthwiseConv2d(runtime, depthwiseIn, depthwise);
  const afterIn = instanceNorm(runtime, depthwiseOut, { silu: true });
  const afterConv = linear(runtime, afterIn, after.weight, after.bias);
  const out = instanceNorm(runtime, afterConv, { silu: true });
  return { out, activations: { beforeConv, depthwiseIn, depthwiseOut, afterIn, afterConv } };
}

function convBranch(
  runtime: GpuRuntime,
  before: PointwiseConv,
  depthwise: Tensor,
  after: PointwiseConv,
  x: Tensor,
): Tensor {
  const { out, activations } = convBranchKeeping(runtime, before, depthwise, after, x);
  for (const t of Object.values(activations)) t.dispose();
  return out;
}

/**
 * LSS(X) = Conv1x1([HSS…HSS(X), branch5(X), branch7(X)]) + X: the conv branches read the module input, not the
 * HSS output (MAMBAAD.md §5). Returns a new tensor.
 */
export function lssForward(runtime: GpuRuntime, w: LssWeights, x: Tensor): Tensor {
  let s = x;
  for (const block of w.blocks) {
    const next = hssForward(runtime, block, s);
    if (s !== x) s.dispose();
    s = next;
  }
  const b5 = convBranch(runtime, w.conv1b5, w.conv55, w.conv1a5, x);
  const b7 = convBranch(runtime, w.conv1b7, w.conv77, w.conv1a7, x);
  const cat = concatChannels(runtime, [s, b5, b7]);
  const out = runtime.empty(x.shape, 'LSS out');
  runtime.copy(x, out);
  linear(runtime, cat, w.finalConv.weight, w.finalConv.bias, { accumulateInto: out });
  for (const t of [s, b5, b7, cat]) if (t !== x) t.dispose();
  return out;
}

// ---------------------------------------------------------------- PatchExpand

export interface PatchExpandWeights {
  expand: Tensor;
  normWeight: Tensor;
  normBias: Tensor;
}

/** PatchExpand2D(dim): [B, H, W, 2·dim] -> [B, 2H, 2W, dim]. */
export function loadPatchExpand(reader: ParameterReader, prefix: string, dim: number): PatchExpandWeights {
  return {
    expand: reader.upload(`${prefix}expand.weight`, [4 * dim, 2 * dim]),
    normWeight: reader.upload(`${prefix}norm.weight`, [dim]),
    normBias: reader.upload(`${prefix}norm.bias`, [dim]),
  };
}

/** PatchExpand that also returns the LayerNorm's input (the shuffled expansion), which its backward reads. */
export function patchExpandForwardKeeping(
  runtime: GpuRuntime,
  w: PatchExpandWeights,
  x: Tensor,
): { out: Tensor; shuffled: Tensor } {
  const expanded = linear(runtime, x, w.expand);
  const shuffled = patchExpandShuffle(runtime, expanded);
  expanded.dispose();
  const out = layerNorm(runtime, shuffled, w.normWeight, w.normBias, { eps: LAYER_NORM_EPS });
  return { out, shuffled };
}

export function patchExpandForward(runtime: GpuRuntime, w: PatchExpandWeights, x: Tensor): Tensor {
  const { out, shuffled } = patchExpandForwardKeeping(runtime, w, x);
  shuffled.dispose();
  return out;
}

// ---------------------------------------------------------------- MambaUPNet

export interface DecoderStage {
  upsample?: PatchExpandWeights;
  modules: LssWeights[];
}

export interface DecoderWeights {
  stages: DecoderStage[];
  tables: DirectionTables;
}

/**
 * MambaUPNet's parameters under `prefix` (e.g. 'net_s.'): stage i has width dims[i] on a grid of gridSize·2^i, and
 * LSS modules of 3 or 2 HSS blocks as depths[i] divides.
 */
export function loadDecoder(
  reader: ParameterReader,
  prefix: string,
  dims: readonly number[],
  depths: readonly number[],
  gridSize: number,
  scan: ScanSettings,
): DecoderWeights {
  const tables = new DirectionTables(reader.runtime, scan);
  const stages = dims.map((dim, i): DecoderStage => {
    const stagePrefix = `${prefix}layers_up.${i}.`;
    const size = gridSize * 2 ** i;
    const modules = lssModuleBlocks(depths[i]!).map((blocks, j) =>
      loadLss(reader, `${stagePrefix}blocks.${j}.`, dim, blocks, size, tables),
    );
    return i === 0 ? { modules } : { upsample: loadPatchExpand(reader, `${stagePrefix}upsample.`, dim), modules };
  });
  return { stages, tables };
}

/**
 * z [B, h, w, dims[0]] -> decoder outputs high-resolution first, [d1, d2, d3] as NHWC; the stage-0 output is not
 * returned (it only feeds stage 1).
 */
export function decoderForward(runtime: GpuRuntime, w: DecoderWeights, z: Tensor): Tensor[] {
  const outputs: Tensor[] = [];
  let x = z;
  for (const [i, stage] of w.stages.entries()) {
    if (stage.upsample) {
      const up = patchExpandForward(runtime, stage.upsample, x);
      if (x !== z && !outputs.includes(x)) x.dispose();
      x = up;
    }
    for (const module of stage.modules) {
      const next = lssForward(runtime, module, x);
      if (x !== z && !outputs.includes(x)) x.dispose();
      x = next;
    }
    if (i > 0) outputs.unshift(x);
  }
  return outputs;
}
