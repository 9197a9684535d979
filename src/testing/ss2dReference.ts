/**
 * Float64 CPU references for SS2D (MAMBAAD.md §6, §6.1, §7) in the engine's channels-last layout. They are what the
 * scan kernel is tested against, and the stand-ins for ops that a GPU test does not exercise.
 */
import type { SafetensorsFile } from '../io/safetensors.ts';
import { type DirectionCount, directionTable, mergeOrder } from '../model/scanOrders.ts';

/** One selective-scan problem in the kernel's layout (see kernels/scan.wgsl). */
export interface ScanReferenceInput {
  batch: number;
  length: number;
  channels: number;
  directions: number;
  states: number;
  /** [B, L, D], raster order, read by every direction. */
  u: ArrayLike<number>;
  /** [K, B, L, D], raster order, before the bias and softplus. */
  deltaRaw: ArrayLike<number>;
  /** [B, L, K, projWidth]; per direction the B row starts at column bOffset and the C row at bOffset + N. */
  proj: ArrayLike<number>;
  projWidth: number;
  bOffset: number;
  /** [K, L]: the raster position of step t of direction k. */
  table: ArrayLike<number>;
  /** [K·D, N], already negative (A = -exp(A_log)). */
  A: ArrayLike<number>;
  /** [K·D] */
  deltaBias: ArrayLike<number>;
  /** [K·D] */
  Dskip: ArrayLike<number>;
}

function softplus20(x: number): number {
  return x <= 20 ? Math.log1p(Math.exp(x)) : x;
}

/**
 * y [K, B, L, D] in raster order (y of step t lands at position table[k, t]), and the state after every
 * `stateInterval` steps (and after the last step) as [K, B, chunks, N, D].
 */
export function selectiveScanReference(
  input: ScanReferenceInput,
  stateInterval = 0,
): { y: Float64Array; states: Float64Array } {
  const { batch, length, channels: D, directions: K, states: N, projWidth, bOffset } = input;
  const chunks = stateInterval > 0 ? Math.ceil(length / stateInterval) : 0;
  const y = new Float64Array(K * batch * length * D);
  const saved = new Float64Array(K * batch * chunks * N * D);
  const h = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < D; d++) {
        const c = k * D + d;
        h.fill(0);
        for (let t = 0; t < length; t++) {
          const p = input.table[k * length + t]!;
          const u = input.u[(b * length + p) * D + d]!;
          const delta = softplus20(input.deltaRaw[((k * batch + b) * length + p) * D + d]! + input.deltaBias[c]!);
          const row = ((b * length + p) * K + k) * projWidth + bOffset;
          let out = input.Dskip[c]! * u;
          for (let n = 0; n < N; n++) {
            h[n] = Math.exp(delta * input.A[c * N + n]!) * h[n]! + delta * input.proj[row + n]! * u;
            out += input.proj[row + N + n]! * h[n]!;
          }
          y[((k * batch + b) * length + p) * D + d] = out;
          if (chunks > 0 && ((t + 1) % stateInterval === 0 || t === length - 1)) {
            const chunk = Math.floor(t / stateInterval);
            for (let n = 0; n < N; n++) saved[(((k * batch + b) * chunks + chunk) * N + n) * D + d] = h[n]!;
          }
        }
      }
    }
  }
  return { y, states: saved };
}

/** The gradients of one selective-scan problem (the layouts of the inputs; A's, not A_log's). */
export interface ScanReferenceGradients {
  /** [B, L, D], summed over the directions. */
  du: Float64Array;
  /** [K, B, L, D] */
  dDeltaRaw: Float64Array;
  /** Like proj: dB and dC in their columns, zeros elsewhere (the scan does not read the dt columns). */
  dProj: Float64Array;
  /** [K·D, N] */
  dA: Float64Array;
  /** [K·D] */
  dDeltaBias: Float64Array;
  /** [K·D] */
  dDskip: Float64Array;
}

/**
 * The backward pass of selectiveScanReference (MAMBAAD.md §6.1) for dy [K, B, L, D], each direction's output
 * gradient at raster positions: h is stored for every step, then the adjoint λ runs backwards.
 */
export function selectiveScanBackwardReference(
  input: ScanReferenceInput,
  dy: ArrayLike<number>,
): ScanReferenceGradients {
  const { batch, length: L, channels: D, directions: K, states: N, projWidth, bOffset } = input;
  const grads: ScanReferenceGradients = {
    du: new Float64Array(batch * L * D),
    dDeltaRaw: new Float64Array(K * batch * L * D),
    dProj: new Float64Array(input.proj.length),
    dA: new Float64Array(K * D * N),
    dDeltaBias: new Float64Array(K * D),
    dDskip: new Float64Array(K * D),
  };
  // h[t + 1] after step t; h[0] = 0.
  const h = new Float64Array((L + 1) * N);
  const lambda = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < D; d++) {
        const c = k * D + d;
        // Step t's offsets into u and into the [K, B, L, D] tensors, its row of proj, and its u, δ, Δ and g.
        const step = (t: number) => {
          const p = input.table[k * L + t]!;
          const at = (b * L + p) * D + d;
          const directionAt = (k * batch + b) * L * D + p * D + d;
          const raw = input.deltaRaw[directionAt]! + input.deltaBias[c]!;
          return {
            at,
            directionAt,
            row: ((b * L + p) * K + k) * projWidth + bOffset,
            u: input.u[at]!,
            raw,
            delta: softplus20(raw),
            g: dy[directionAt]!,
          };
        };
        for (let t = 0; t < L; t++) {
          const { u, delta, row } = step(t);
          for (let n = 0; n < N; n++) {
            h[(t + 1) * N + n] =
              Math.exp(delta * input.A[c * N + n]!) * h[t * N + n]! + delta * input.proj[row + n]! * u;
          }
        }
        lambda.fill(0); // holds exp(Δ_{t+1}·A)·λ_{t+1} on entry to step t
        for (let t = L - 1; t >= 0; t--) {
          const { at, directionAt, row, u, raw, delta, g } = step(t);
          let lambdaB = 0;
          let lambdaDecay = 0;
          for (let n = 0; n < N; n++) {
            const A = input.A[c * N + n]!;
            const decay = Math.exp(delta * A);
            const l = g * input.proj[row + N + n]! + lambda[n]!;
            const prev = h[t * N + n]!;
            lambdaB += l * input.proj[row + n]!;
            lambdaDecay += l * A * decay * prev;
            grads.dA[c * N + n] = grads.dA[c * N + n]! + l * delta * decay * prev;
            grads.dProj[row + n] = grads.dProj[row + n]! + l * delta * u;
            grads.dProj[row + N + n] = grads.dProj[row + N + n]! + g * h[(t + 1) * N + n]!;
            lambda[n] = decay * l;
          }
          grads.du[at] = grads.du[at]! + g * input.Dskip[c]! + delta * lambdaB;
          const dRaw = (lambdaDecay + u * lambdaB) * (raw <= 20 ? 1 / (1 + Math.exp(-raw)) : 1);
          grads.dDeltaRaw[directionAt] = dRaw;
          grads.dDeltaBias[c] = grads.dDeltaBias[c]! + dRaw;
          grads.dDskip[c] = grads.dDskip[c]! + g * u;
        }
      }
    }
  }
  return grads;
}

/** Y [B, L, D] = Σ_k y[k] in PyTorch's summation order. */
export function mergeDirectionsReference(y: ArrayLike<number>, directions: DirectionCount): Float64Array {
  const size = y.length / directions;
  const merged = new Float64Array(size);
  for (const k of mergeOrder(directions)) {
    for (let i = 0; i < size; i++) merged[i] = merged[i]! + y[k * size + i]!;
  }
  return merged;
}

/** out [rows, n] = x [rows, k] · wᵀ with w [n, k] (a bias-free Linear layer). */
function linearReference(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, n: number, k: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum += x[r * k + i]! * w[j * k + i]!;
      out[r * n + j] = sum;
    }
  }
  return out;
}

const silu = (x: number) => x / (1 + Math.exp(-x));

/**
 * SiLU(depthwise 3x3 conv, padding 1, + bias) on channels-last [B, S, S, D], reading channels [offset, offset + D)
 * of rows that are `stride` wide (the u half of in_proj's output).
 */
function depthwiseConvSiluReference(
  x: ArrayLike<number>,
  stride: number,
  offset: number,
  batch: number,
  size: number,
  D: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(batch * size * size * D);
  for (let b = 0; b < batch; b++) {
    for (let row = 0; row < size; row++) {
      for (let col = 0; col < size; col++) {
        for (let d = 0; d < D; d++) {
          let sum = bias[d]!;
          for (let dr = -1; dr <= 1; dr++) {
            for (let dc = -1; dc <= 1; dc++) {
              const r = row + dr;
              const c = col + dc;
              if (r < 0 || r >= size || c < 0 || c >= size) continue;
              sum += weight[d * 9 + (dr + 1) * 3 + (dc + 1)]! * x[((b * size + r) * size + c) * stride + offset + d]!;
            }
          }
          out[((b * size + row) * size + col) * D + d] = silu(sum);
        }
      }
    }
  }
  return out;
}

/** LayerNorm_D(y) (eps 1e-5) ⊙ SiLU(z), z read from channels [offset, offset + D) of rows `stride` wide. */
function layerNormGateReference(
  y: ArrayLike<number>,
  rows: number,
  D: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  z: ArrayLike<number>,
  stride: number,
  offset: number,
): Float64Array {
  const out = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += y[r * D + d]!;
    mean /= D;
    let variance = 0;
    for (let d = 0; d < D; d++) variance += (y[r * D + d]! - mean) ** 2;
    variance /= D;
    const scale = 1 / Math.sqrt(variance + 1e-5);
    for (let d = 0; d < D; d++) {
      const normed = (y[r * D + d]! - mean) * scale * weight[d]! + bias[d]!;
      out[r * D + d] = normed * silu(z[r * stride + offset + d]!);
    }
  }
  return out;
}

/** The parameters and sizes of one SS2D, under the official state-dict names. */
export interface Ss2dCase {
  batch: number;
  size: number;
  /** d_model */
  C: number;
  /** d_inner = 2C */
  D: number;
  K: DirectionCount;
  R: number;
  N: number;
  /** The [K, L] direction table built from the module's own `scans.index_flat`. */
  table: Uint32Array;
  x: Float32Array;
  param: (name: string) => Float32Array;
}

/** Reads an `ss2d_*` golden: sizes from the parameter shapes, the scan order from its `scans.index_flat`. */
export function ss2dCaseFromGolden(file: SafetensorsFile): Ss2dCase {
  const param = (name: string) => file.float32(`param.${name}`);
  const [batch, size, , C] = file.tensor('input.x').shape as [number, number, number, number];
  const [K, projRows, D] = file.tensor('param.x_proj_weight').shape as [number, number, number];
  const R = file.tensor('param.dt_projs_weight').shape[2]!;
  if (K !== 2 && K !== 4 && K !== 8) throw new Error(`golden has ${K} directions`);
  const perm = Uint32Array.from(file.float32('param.scans.index_flat'));
  return {
    batch,
    size,
    C,
    D,
    K,
    R,
    N: (projRows - R) / 2,
    table: directionTable(perm, size, K),
    x: file.float32('input.x'),
    param,
  };
}

/** The SS2D's scan inputs in the kernel layout, from u [B, L, D] (after conv and SiLU). */
function ss2dScanInputs(s: Ss2dCase, u: ArrayLike<number>): ScanReferenceInput {
  const L = s.size * s.size;
  const rows = s.batch * L;
  const width = s.R + 2 * s.N;
  // One matmul for all directions: the gather is a row permutation, so projecting in raster order is the same.
  const proj = linearReference(u, s.param('x_proj_weight'), rows, s.K * width, s.D);
  const dtWeights = s.param('dt_projs_weight');
  const deltaRaw = new Float64Array(s.K * rows * s.D);
  for (let k = 0; k < s.K; k++) {
    for (let r = 0; r < rows; r++) {
      for (let d = 0; d < s.D; d++) {
        let sum = 0;
        for (let j = 0; j < s.R; j++) sum += proj[(r * s.K + k) * width + j]! * dtWeights[(k * s.D + d) * s.R + j]!;
        deltaRaw[(k * rows + r) * s.D + d] = sum;
      }
    }
  }
  return {
    batch: s.batch,
    length: L,
    channels: s.D,
    directions: s.K,
    states: s.N,
    u,
    deltaRaw,
    proj,
    projWidth: width,
    bOffset: s.R,
    table: s.table,
    A: s.param('A_logs').map((a) => -Math.exp(a)),
    deltaBias: s.param('dt_projs_bias'),
    Dskip: s.param('Ds'),
  };
}

/** The whole SS2D forward in float64: x [B, S, S, C] -> out [B, S, S, C]. */
export function ss2dReference(s: Ss2dCase): Float64Array {
  const rows = s.batch * s.size * s.size;
  const xz = linearReference(s.x, s.param('in_proj.weight'), rows, 2 * s.D, s.C);
  const u = depthwiseConvSiluReference(
    xz,
    2 * s.D,
    0,
    s.batch,
    s.size,
    s.D,
    s.param('conv2d.weight'),
    s.param('conv2d.bias'),
  );
  const { y } = selectiveScanReference(ss2dScanInputs(s, u));
  const merged = mergeDirectionsReference(y, s.K);
  const gated = layerNormGateReference(
    merged,
    rows,
    s.D,
    s.param('out_norm.weight'),
    s.param('out_norm.bias'),
    xz,
    2 * s.D,
    s.D,
  );
  return linearReference(gated, s.param('out_proj.weight'), rows, s.C, s.D);
}
