import type { GpuRuntime } from '../../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../../gpu/tensor.ts';
import { checkPermutation, type DirectionCount } from '../scanOrders.ts';

/**
 * kernels/scan.wgsl: the selective scan fused with the hybrid-scan gather/scatter, the merge of the directions, and
 * the packing of the per-channel scan parameters. Layouts are documented in the kernel.
 */
const family = 'scan';
/** Threads per workgroup of the element-wise entry points. */
const WORKGROUP_SIZE = 64;
/** d_state: the kernel keeps this many states per channel in registers. */
export const SSM_STATES = 16;
const CHANNEL_STRIDE = SSM_STATES + 2;

/** How the scan is spread over threads (kernels/scan.wgsl explains the two layouts). */
export interface ScanLaunch {
  /** 4: each thread holds 4 of the 16 states (GPUs); 1: one thread per channel (CPU rasterisers). */
  threadsPerChannel: 1 | 4;
  /** Channels per workgroup. */
  channels: number;
  /** Steps staged in workgroup memory at once. */
  chunk: number;
}

// Among the fastest configurations measured at every stage size, batch 1 and 16, on an H200 through Dawn/Vulkan and
// on SwiftShader (where one thread per channel is about twice as fast, and on the H200 half as fast).
export const GPU_SCAN_LAUNCH: ScanLaunch = { threadsPerChannel: 4, channels: 16, chunk: 8 };
export const SOFTWARE_SCAN_LAUNCH: ScanLaunch = { threadsPerChannel: 1, channels: 32, chunk: 16 };

export function scanLaunchFor(runtime: GpuRuntime): ScanLaunch {
  return runtime.isSoftwareAdapter ? SOFTWARE_SCAN_LAUNCH : GPU_SCAN_LAUNCH;
}

/**
 * State intervals must be multiples of this, which every launch's chunk divides. It is also the length of the segments
 * that the backward pass recomputes at once (SEGMENT in kernels/scan.wgsl).
 */
export const STATE_INTERVAL_UNIT = 32;

function forwardWorkgroupBytes(launch: ScanLaunch): number {
  const { threadsPerChannel, channels, chunk } = launch;
  // positions, B/C rows, u and delta, the parts of C·h
  return 4 * chunk * (1 + 2 * SSM_STATES + 2 * channels + threadsPerChannel * channels);
}

function backwardWorkgroupBytes(launch: ScanLaunch): number {
  const { threadsPerChannel, channels, chunk } = launch;
  // positions, B/C rows, u, delta, dy and the softplus slope, the dB/dC terms, two kinds of parts
  return 4 * chunk * (1 + 2 * SSM_STATES + channels * (4 + SSM_STATES + 2 * threadsPerChannel));
}

function checkLaunch(runtime: GpuRuntime, launch: ScanLaunch, workgroupBytes: number, what: string): void {
  const { threadsPerChannel, channels, chunk } = launch;
  const limits = runtime.device.limits;
  if (
    (threadsPerChannel !== 1 && threadsPerChannel !== 4) ||
    !Number.isInteger(channels) ||
    channels < 1 ||
    threadsPerChannel * channels > limits.maxComputeInvocationsPerWorkgroup ||
    !Number.isInteger(chunk) ||
    chunk < 1 ||
    STATE_INTERVAL_UNIT % chunk !== 0 ||
    workgroupBytes > limits.maxComputeWorkgroupStorageSize
  ) {
    throw new Error(
      `${what}: launch ${JSON.stringify(launch)} is invalid (1 or 4 threads per channel, at most ` +
        `${limits.maxComputeInvocationsPerWorkgroup} threads and ${limits.maxComputeWorkgroupStorageSize} bytes ` +
        `of workgroup memory, a chunk that divides ${STATE_INTERVAL_UNIT})`,
    );
  }
}

/** The [K, L] direction table (u32) on the GPU: row k lists the raster positions direction k visits, step by step. */
export interface DirectionTable {
  readonly tensor: Tensor;
  readonly directions: number;
  readonly length: number;
}

/**
 * Uploads a direction table (scanOrders.directionTable), once per grid size. Every row must be a permutation: the
 * kernel scatters y through it, and a repeated position would make two directions' threads race.
 */
export function uploadDirectionTable(
  runtime: GpuRuntime,
  table: Uint32Array,
  directions: number,
  length: number,
): DirectionTable {
  if (table.length !== directions * length) {
    throw new Error(`direction table has ${table.length} entries, expected ${directions} x ${length}`);
  }
  for (let k = 0; k < directions; k++) checkPermutation(table.subarray(k * length, (k + 1) * length), length);
  // Tensor buffers are untyped bytes: a Float32Array view of the u32 values uploads them bit for bit.
  const bits = new Float32Array(table.buffer, table.byteOffset, table.length);
  return { tensor: runtime.upload([directions, length], bits, 'scan direction table'), directions, length };
}

/** Identity tables (every direction reads positions 0..L-1 in order), for scanning sequences that are not images. */
export function identityDirectionTable(directions: number, length: number): Uint32Array {
  const table = new Uint32Array(directions * length);
  for (let k = 0; k < directions; k++) for (let t = 0; t < length; t++) table[k * length + t] = t;
  return table;
}

export interface ScanChannelParameters {
  /** [K·D, N]: A itself (negative) or, with isLog, the official A_logs (A = -exp(A_log)). */
  A: Tensor;
  isLog: boolean;
  /** dt_projs_bias, [K, D] or [K·D]. */
  deltaBias: Tensor;
  /** Ds, [K·D]. */
  Dskip: Tensor;
}

/**
 * Packs A, the delta bias and the skip D into one [K·D, N + 2] tensor for the scan (which is at the 8-storage-buffer
 * limit otherwise). Static weights are packed once; a training step repacks after each update.
 */
export function packScanParameters(runtime: GpuRuntime, p: ScanChannelParameters): Tensor {
  const [channels, states] = p.A.shape.length === 2 ? (p.A.shape as [number, number]) : [0, 0];
  if (states !== SSM_STATES) {
    throw new Error(`scan parameters: A must be [K·D, ${SSM_STATES}], got ${shapeToString(p.A.shape)}`);
  }
  if (p.deltaBias.size !== channels || p.Dskip.size !== channels) {
    throw new Error(
      `scan parameters: delta bias ${shapeToString(p.deltaBias.shape)} and D ${shapeToString(p.Dskip.shape)} ` +
        `must hold ${channels} values, one per row of A`,
    );
  }
  const packed = runtime.empty([channels, CHANNEL_STRIDE], 'scan channel parameters');
  runtime.dispatch({
    kernel: { family, entryPoint: 'pack_channel_params', constants: { WORKGROUP_SIZE, A_IS_LOG: p.isLog } },
    params: Uint32Array.of(channels),
    buffers: [p.A, p.deltaBias, p.Dskip, packed],
    workgroups: runtime.workgroupsFor(channels, WORKGROUP_SIZE),
  });
  return packed;
}

export interface SelectiveScanInputs {
  /** [B, L, D] or [B, H, W, D] with H·W = L, raster order, read by every direction (SS2D). */
  u: Tensor;
  /** [K, B, L, D] (any shape of that size with K first), raster order: the dt projection before the bias. */
  deltaRaw: Tensor;
  /** x_proj output in raster order, B·L rows of K blocks of R + 2N columns ([0, R) dt, then B, then C). */
  proj: Tensor;
  /** R (dt_rank): where B starts inside each direction's block of proj. */
  dtRank: number;
  table: DirectionTable;
  /** packScanParameters. */
  channelParams: Tensor;
}

export interface SelectiveScanOptions {
  /** u is [K, ...] with its own sequence per direction instead of one shared by all (mamba_ssm's layout). */
  perDirectionU?: boolean;
  /**
   * Also return the state after every `stateInterval` steps (a multiple of STATE_INTERVAL_UNIT) and after the last
   * one, where the backward pass restarts the recurrence.
   */
  stateInterval?: number;
  /** Default: scanLaunchFor(runtime). */
  launch?: ScanLaunch;
}

/** What selectiveScanBackward needs from the forward. */
export interface SavedScanStates {
  /** [K, B, ceil(L / stateInterval), N, D]: h after every stateInterval steps and after the last step. */
  states: Tensor;
  stateInterval: number;
}

export interface SelectiveScanResult {
  /** [K, ...u's shape]: direction k's output for step t at raster position table[k, t]. */
  y: Tensor;
  /** With options.stateInterval. */
  saved?: SavedScanStates;
}

/** The sizes of a scan problem, after checking that the inputs agree with each other. */
interface ScanShape {
  K: number;
  L: number;
  batch: number;
  D: number;
  /** u's shape without the direction axis: [B, L, D] or [B, H, W, D]. */
  sequenceShape: readonly number[];
  /** R + 2N: the columns of one direction in proj. */
  blockWidth: number;
}

function checkScanInputs(inputs: SelectiveScanInputs, perDirectionU: boolean, what: string): ScanShape {
  const { u, deltaRaw, proj, dtRank, table, channelParams } = inputs;
  const K = table.directions;
  const L = table.length;
  const sequenceShape = perDirectionU ? u.shape.slice(1) : u.shape;
  const [batch = 0, ...positionsAndChannels] = sequenceShape;
  const D = positionsAndChannels.pop() ?? 0;
  const positions = positionsAndChannels.reduce((n, d) => n * d, 1);
  if ((perDirectionU && u.shape[0] !== K) || sequenceShape.length < 3 || positions !== L) {
    const expected = perDirectionU ? `[${K}, B, ${L}, D]` : `[B, ${L}, D] or [B, H, W, D] with H·W = ${L}`;
    throw new Error(`${what}: u must be ${expected}, got ${shapeToString(u.shape)}`);
  }
  if (deltaRaw.shape[0] !== K || deltaRaw.size !== K * batch * L * D) {
    throw new Error(`${what}: delta must be [${K}, ${batch}, ${L}, ${D}] like u, got ${shapeToString(deltaRaw.shape)}`);
  }
  if (!Number.isInteger(dtRank) || dtRank < 0) throw new Error(`${what}: dt rank ${dtRank} is invalid`);
  const blockWidth = dtRank + 2 * SSM_STATES;
  if (proj.size !== batch * L * K * blockWidth) {
    throw new Error(
      `${what}: proj ${shapeToString(proj.shape)} must hold ${batch}·${L} rows of ${K} blocks of ` +
        `${dtRank} + 2·${SSM_STATES} values`,
    );
  }
  if (channelParams.size !== K * D * CHANNEL_STRIDE) {
    throw new Error(
      `${what}: channel parameters ${shapeToString(channelParams.shape)} must be [${K * D}, ${CHANNEL_STRIDE}]`,
    );
  }
  return { K, L, batch, D, sequenceShape, blockWidth };
}

function checkStateInterval(interval: number, what: string): void {
  if (!Number.isInteger(interval) || interval <= 0 || interval % STATE_INTERVAL_UNIT) {
    throw new Error(`${what}: state interval ${interval} must be a positive multiple of ${STATE_INTERVAL_UNIT}`);
  }
}

/**
 * The selective scan of every direction (fp32, softplus threshold 20, exp(Δ·A), D skip), each walking its own order
 * through the direction table: nothing is gathered into per-direction copies.
 */
export function selectiveScanForward(
  runtime: GpuRuntime,
  inputs: SelectiveScanInputs,
  options: SelectiveScanOptions = {},
): SelectiveScanResult {
  const what = 'selective scan';
  const perDirectionU = options.perDirectionU ?? false;
  const { K, L, batch, D, sequenceShape, blockWidth } = checkScanInputs(inputs, perDirectionU, what);
  const interval = options.stateInterval;
  if (interval !== undefined) checkStateInterval(interval, what);
  const launch = options.launch ?? scanLaunchFor(runtime);
  checkLaunch(runtime, launch, forwardWorkgroupBytes(launch), what);
  const y = runtime.empty([K, ...sequenceShape], 'scan y');
  const saved =
    interval === undefined
      ? undefined
      : {
          states: runtime.empty([K, batch, Math.ceil(L / interval), SSM_STATES, D], 'scan states'),
          stateInterval: interval,
        };
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'selective_scan_forward',
      constants: {
        THREADS_PER_CHANNEL: launch.threadsPerChannel,
        CHANNELS: launch.channels,
        CHUNK: launch.chunk,
        STORE_STATES: saved !== undefined,
      },
    },
    params: Uint32Array.of(
      batch,
      L,
      D,
      K * blockWidth,
      blockWidth,
      inputs.dtRank,
      perDirectionU ? batch * L * D : 0,
      (interval ?? launch.chunk) / launch.chunk,
    ),
    buffers: [
      inputs.u,
      inputs.deltaRaw,
      inputs.proj,
      inputs.table.tensor,
      inputs.channelParams,
      y,
      saved?.states ?? runtime.placeholder,
    ],
    workgroups: [Math.ceil(D / launch.channels), K, batch],
  });
  return saved ? { y, saved } : { y };
}

// The backward needs more workgroup memory per step (kernels/scan.wgsl), hence shorter chunks than the forward's.
// The software layout keeps one thread per channel; both put 32 channels in a group, which also sets the size of the
// dB/dC partials: [D / 32, B, L, K, 2N], about the size of delta.
export const GPU_SCAN_BACKWARD_LAUNCH: ScanLaunch = { threadsPerChannel: 4, channels: 32, chunk: 4 };
export const SOFTWARE_SCAN_BACKWARD_LAUNCH: ScanLaunch = { threadsPerChannel: 1, channels: 32, chunk: 4 };

export function scanBackwardLaunchFor(runtime: GpuRuntime): ScanLaunch {
  return runtime.isSoftwareAdapter ? SOFTWARE_SCAN_BACKWARD_LAUNCH : GPU_SCAN_BACKWARD_LAUNCH;
}

export interface SelectiveScanBackwardOptions {
  /** u is [K, ...] per direction (as in the forward); du is then per direction too. */
  perDirectionU?: boolean;
  /**
   * dy is [K, ...u's sequence shape], one gradient per direction. By default dy is [B, L, D] (or [B, H, W, D]), the
   * gradient of the merged output Y = Σ_k y_k: the merge is a sum, so every direction's y has that same gradient and
   * the kernel reads it K times instead of broadcasting a copy (mergeDirections needs no backward op).
   */
  perDirectionDy?: boolean;
  /** Return dA (the gradient of A itself) instead of dA_log = dA·A (the default: the model's parameter is A_logs). */
  gradientOfA?: boolean;
  /** Default: scanBackwardLaunchFor(runtime). */
  launch?: ScanLaunch;
}

export interface SelectiveScanGradients {
  /** Like u: summed over the directions at raster positions, or per direction with perDirectionU. */
  du: Tensor;
  /** Like deltaRaw [K, B, L, D]: through the softplus (threshold 20) and the delta bias. */
  dDeltaRaw: Tensor;
  /**
   * Like proj: dB and dC in each direction's B and C columns (summed over the direction's channels), zeros in the dt
   * columns, which the caller fills from dDeltaRaw (matmulStrided into them, with or without accumulate).
   */
  dProj: Tensor;
  /** [K·D, N]: dA_log = dA·A, or dA with gradientOfA (the layout of A_logs). */
  dA: Tensor;
  /** [K, D], like dt_projs_bias. */
  dDeltaBias: Tensor;
  /** [K·D], like Ds. */
  dDskip: Tensor;
}

/**
 * The backward pass of selectiveScanForward (MAMBAAD.md §6.1): the gradients of every input of the scan from dy, the
 * gradient of each direction's y at raster positions. It recomputes h from the states saved by the forward and runs
 * the adjoint backwards (kernels/scan.wgsl); the sums over channels, batch and directions are race-free partials
 * reduced by later passes. Records 4 dispatches (5 with a shared u: the directions' du are summed by merge_directions).
 */
export function selectiveScanBackward(
  runtime: GpuRuntime,
  inputs: SelectiveScanInputs,
  dy: Tensor,
  saved: SavedScanStates,
  options: SelectiveScanBackwardOptions = {},
): SelectiveScanGradients {
  const what = 'selective scan backward';
  const perDirectionU = options.perDirectionU ?? false;
  const perDirectionDy = options.perDirectionDy ?? false;
  const { K, L, batch, D, sequenceShape, blockWidth } = checkScanInputs(inputs, perDirectionU, what);
  const sequenceSize = batch * L * D;
  if (perDirectionDy ? dy.shape[0] !== K || dy.size !== K * sequenceSize : dy.size !== sequenceSize) {
    const expected = perDirectionDy ? `[${K}, ${batch}, ${L}, ${D}]` : `[${batch}, ${L}, ${D}] like y merged`;
    throw new Error(`${what}: dy must be ${expected}, got ${shapeToString(dy.shape)}`);
  }
  checkStateInterval(saved.stateInterval, what);
  const slots = Math.ceil(L / saved.stateInterval);
  const statesShape = [K, batch, slots, SSM_STATES, D];
  if (saved.states.shape.join() !== statesShape.join()) {
    throw new Error(
      `${what}: the saved states ${shapeToString(saved.states.shape)} must be ${shapeToString(statesShape)} ` +
        `(every ${saved.stateInterval} steps, from the forward of these inputs)`,
    );
  }
  if (!perDirectionU && K !== 2 && K !== 4 && K !== 8) {
    throw new Error(`${what}: a u shared by the directions needs 2, 4 or 8 directions to sum du over, got ${K}`);
  }
  const launch = options.launch ?? scanBackwardLaunchFor(runtime);
  checkLaunch(runtime, launch, backwardWorkgroupBytes(launch), what);

  // The workspace (u32): channel parameters, table, per-batch channel partials, per-group dB/dC partials.
  const channelValues = K * D * CHANNEL_STRIDE;
  const tableOffset = channelValues;
  const channelPartialOffset = tableOffset + K * L;
  const projPartialOffset = channelPartialOffset + batch * channelValues;
  const groups = Math.ceil(D / launch.channels);
  const work = runtime.empty([projPartialOffset + groups * batch * L * K * 2 * SSM_STATES], 'scan backward workspace');
  runtime.dispatch({
    kernel: { family, entryPoint: 'scan_backward_prepare', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(channelValues, K * L),
    buffers: [inputs.channelParams, inputs.table.tensor, work],
    workgroups: runtime.workgroupsFor(channelValues + K * L, WORKGROUP_SIZE),
  });

  const duDirections = runtime.empty([K, ...sequenceShape], 'scan du per direction');
  const dDeltaRaw = runtime.empty(inputs.deltaRaw.shape, 'scan d delta');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'selective_scan_backward',
      constants: { THREADS_PER_CHANNEL: launch.threadsPerChannel, CHANNELS: launch.channels, CHUNK: launch.chunk },
    },
    params: Uint32Array.of(
      batch,
      L,
      D,
      K,
      K * blockWidth,
      blockWidth,
      inputs.dtRank,
      perDirectionU ? sequenceSize : 0,
      perDirectionDy ? sequenceSize : 0,
      saved.stateInterval,
      tableOffset,
      channelPartialOffset,
      projPartialOffset,
    ),
    buffers: [inputs.u, inputs.deltaRaw, inputs.proj, dy, saved.states, duDirections, dDeltaRaw, work],
    workgroups: [groups, K, batch],
  });

  const dProj = runtime.empty(inputs.proj.shape, 'scan d proj');
  runtime.dispatch({
    kernel: { family, entryPoint: 'reduce_proj_grads', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(dProj.size, K, blockWidth, inputs.dtRank, groups, batch * L, projPartialOffset),
    buffers: [work, dProj],
    workgroups: runtime.workgroupsFor(dProj.size, WORKGROUP_SIZE),
  });
  const dA = runtime.empty([K * D, SSM_STATES], options.gradientOfA ? 'scan dA' : 'scan dA_log');
  const dDeltaBias = runtime.empty([K, D], 'scan d delta bias');
  const dDskip = runtime.empty([K * D], 'scan d Dskip');
  runtime.dispatch({
    kernel: {
      family,
      entryPoint: 'reduce_channel_grads',
      constants: { WORKGROUP_SIZE, A_IS_LOG: !(options.gradientOfA ?? false) },
    },
    params: Uint32Array.of(K * D, batch, channelPartialOffset),
    buffers: [work, dA, dDeltaBias, dDskip],
    workgroups: runtime.workgroupsFor(channelValues, WORKGROUP_SIZE),
  });
  work.dispose();

  if (perDirectionU) return { du: duDirections, dDeltaRaw, dProj, dA, dDeltaBias, dDskip };
  const du = mergeDirections(runtime, duDirections);
  duDirections.dispose();
  return { du, dDeltaRaw, dProj, dA, dDeltaBias, dDskip };
}

/** Y = Σ_k y[k] in PyTorch's summation order (scanOrders.mergeOrder): y [K, B, ...] -> [B, ...]. */
export function mergeDirections(runtime: GpuRuntime, y: Tensor): Tensor {
  const [K, ...rest] = y.shape;
  if (K !== 2 && K !== 4 && K !== 8) {
    throw new Error(`merge directions: y must be [2, 4 or 8 directions, ...], got ${shapeToString(y.shape)}`);
  }
  const directions: DirectionCount = K;
  const merged = runtime.empty(rest, 'merged y');
  const count = merged.size;
  runtime.dispatch({
    kernel: { family, entryPoint: 'merge_directions', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(count, directions),
    buffers: [y, merged],
    workgroups: runtime.workgroupsFor(count, WORKGROUP_SIZE),
  });
  return merged;
}
