// Selective scan (MAMBAAD.md §6.1, mamba_ssm selective_scan with z = None, softplus threshold 20) fused with the
// hybrid-scan gather and scatter (§7), the merge of the directions, and the backward pass. Channels-last, fp32.
//
// Layouts (b batch, p raster position, t step, k direction, d channel, n state; L = S², N = 16):
//   u         [B, L, D]          shared by every direction (u_direction_stride = 0), or [K, B, L, D]
//   delta_raw [K, B, L, D]       x_proj·dt_proj before the bias
//   proj      [B, L, K, W]       x_proj output in raster order; per direction W columns: [0, R) dt, then B (N), C (N)
//   table     [K, L] u32         table[k, t] = the raster position that direction k reads at step t
//   channel   [K·D, N + 2]       per channel: A[0..N) (negative), delta bias, D skip (pack_channel_params)
//   y         [K, B, L, D]       direction k's output of step t is written at position table[k, t]
//   states    [K, B, ceil(L / interval), N, D]  with STORE_STATES: h after every `interval` steps (a multiple of
//             CHUNK) and after the last step: where a backward pass restarts its recomputation
//
// The N = 16 states of a channel stay in registers as vec4s, held by THREADS_PER_CHANNEL threads:
// - 4 (GPUs): one vec4 each. The recurrence is a chain of L dependent steps, so a GPU is latency-bound unless many
//   threads run it side by side; splitting the states gives four times the threads with a quarter of the work each.
//   Their parts of C·h meet in workgroup memory.
// - 1 (CPU rasterisers such as SwiftShader, which run invocations in small SIMD groups and pay for every barrier and
//   workgroup-memory round trip): all four vec4s, y written straight away.
// Channels are the fastest thread index so that u, delta and y accesses are coalesced. A workgroup holds CHANNELS
// channels of one (b, k) and walks the sequence in chunks of CHUNK steps:
//   1. stage the positions, the B/C rows (shared by all channels of the direction), u and softplus(delta + bias);
//   2. run the recurrence;
//   3. (split states) sum the parts of C·h, add D·u and scatter y to the raster positions.

override THREADS_PER_CHANNEL: u32 = 4; // 1 or 4
override CHANNELS: u32 = 16;
override CHUNK: u32 = 8;
override STORE_STATES: bool = false;
// The one-thread-per-element entry points (merge, packing, the backward's prepare and reductions): threads per group.
override WORKGROUP_SIZE: u32 = 64;
// pack_channel_params: the input holds A_logs (A = -exp(A_log)) rather than A; reduce_channel_grads: return dA_log.
override A_IS_LOG: bool = false;

const N: u32 = 16u;
const CHANNEL_STRIDE: u32 = N + 2u;
const LOG2_E: f32 = 1.4426950408889634;

struct ScanParams {
  batch: u32,
  length: u32,
  channels: u32,
  // Floats per raster position of proj (K·W), per direction block (W), and the offset of B inside a block (R).
  proj_row_stride: u32,
  proj_direction_stride: u32,
  proj_b_offset: u32,
  u_direction_stride: u32,
  state_interval_chunks: u32,
}

@group(0) @binding(0) var<uniform> scan_params: ScanParams;
@group(0) @binding(1) var<storage, read> scan_u: array<f32>;
@group(0) @binding(2) var<storage, read> scan_delta_raw: array<f32>;
@group(0) @binding(3) var<storage, read> scan_proj: array<f32>;
@group(0) @binding(4) var<storage, read> scan_table: array<u32>;
@group(0) @binding(5) var<storage, read> scan_channel: array<f32>;
@group(0) @binding(6) var<storage, read_write> scan_y: array<f32>;
@group(0) @binding(7) var<storage, read_write> scan_states: array<f32>; // bound (a placeholder) without STORE_STATES

var<workgroup> chunk_positions: array<u32, CHUNK>;
// [step][B as 4 vec4 | C as 4 vec4]
var<workgroup> chunk_bc: array<vec4<f32>, CHUNK * 8u>;
// [step][channel]
var<workgroup> chunk_u: array<f32, CHUNK * CHANNELS>;
var<workgroup> chunk_delta: array<f32, CHUNK * CHANNELS>;
// [step][part][channel]: the threads' parts of C·h (split states only; the backward's parts of Σ λ·B)
var<workgroup> chunk_partial: array<f32, CHUNK * THREADS_PER_CHANNEL * CHANNELS>;

fn softplus(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  // log1p(exp(x)) without losing the small values: log(w) · e / (w - 1) is exact to rounding for w = 1 + e.
  let e = exp(x);
  let w = 1.0 + e;
  if (w == 1.0) { return e; }
  return log(w) * e / (w - 1.0);
}

fn channel_vec4(at: u32) -> vec4<f32> {
  return vec4(scan_channel[at], scan_channel[at + 1u], scan_channel[at + 2u], scan_channel[at + 3u]);
}

@compute @workgroup_size(CHANNELS * THREADS_PER_CHANNEL)
fn selective_scan_forward(
  @builtin(workgroup_id) group: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let split = THREADS_PER_CHANNEL > 1u;
  let threads = CHANNELS * THREADS_PER_CHANNEL;
  let lane = local % CHANNELS; // this thread's channel in the workgroup
  let part = local / CHANNELS; // split states: this thread holds states 4·part .. 4·part + 3
  let d0 = group.x * CHANNELS;
  let d = d0 + lane;
  let k = group.y;
  let b = group.z;
  let L = scan_params.length;
  let D = scan_params.channels;
  let in_range = d < D;

  // exp(Δ·A) = exp2(Δ·A·log2 e): A is scaled once here rather than in every step.
  let channel = (k * D + min(d, D - 1u)) * CHANNEL_STRIDE;
  let a0 = LOG2_E * channel_vec4(channel + 4u * part);
  var a1 = vec4(0.0);
  var a2 = vec4(0.0);
  var a3 = vec4(0.0);
  if (!split) {
    a1 = LOG2_E * channel_vec4(channel + 4u);
    a2 = LOG2_E * channel_vec4(channel + 8u);
    a3 = LOG2_E * channel_vec4(channel + 12u);
  }
  let d_skip = scan_channel[channel + N + 1u];
  var h0 = vec4(0.0);
  var h1 = vec4(0.0);
  var h2 = vec4(0.0);
  var h3 = vec4(0.0);
  let table_base = k * L;
  let bc_base = k * scan_params.proj_direction_stride + scan_params.proj_b_offset;
  let u_base = k * scan_params.u_direction_stride + b * L * D;
  let kb_base = (k * scan_params.batch + b) * L * D; // delta_raw and y
  let chunks = (L + CHUNK - 1u) / CHUNK;

  for (var chunk = 0u; chunk < chunks; chunk++) {
    let t0 = chunk * CHUNK;
    let steps = min(CHUNK, L - t0);
    // 1. Stage. Every load here is independent of the recurrence, so they are all in flight together.
    for (var e = local; e < steps * 8u; e += threads) {
      let s = e / 8u;
      let p = scan_table[table_base + t0 + s];
      let at = (b * L + p) * scan_params.proj_row_stride + bc_base + 4u * (e % 8u);
      chunk_bc[e] = vec4(scan_proj[at], scan_proj[at + 1u], scan_proj[at + 2u], scan_proj[at + 3u]);
      if (e % 8u == 0u) { chunk_positions[s] = p; }
    }
    for (var e = local; e < CHUNK * CHANNELS; e += threads) {
      let s = e / CHANNELS;
      let dd = d0 + e % CHANNELS;
      if (s < steps && dd < D) {
        let offset = scan_table[table_base + t0 + s] * D + dd;
        chunk_u[e] = scan_u[u_base + offset];
        chunk_delta[e] = softplus(scan_delta_raw[kb_base + offset] + scan_channel[(k * D + dd) * CHANNEL_STRIDE + N]);
      }
    }
    workgroupBarrier();

    // 2. The recurrence.
    if (in_range) {
      for (var s = 0u; s < steps; s++) {
        let u = chunk_u[s * CHANNELS + lane];
        let delta = chunk_delta[s * CHANNELS + lane];
        let delta_u = delta * u;
        let row = 8u * s;
        h0 = exp2(delta * a0) * h0 + delta_u * chunk_bc[row + part];
        var c_h = dot(chunk_bc[row + 4u + part], h0);
        if (split) {
          chunk_partial[(s * THREADS_PER_CHANNEL + part) * CHANNELS + lane] = c_h;
        } else {
          h1 = exp2(delta * a1) * h1 + delta_u * chunk_bc[row + 1u];
          h2 = exp2(delta * a2) * h2 + delta_u * chunk_bc[row + 2u];
          h3 = exp2(delta * a3) * h3 + delta_u * chunk_bc[row + 3u];
          c_h += dot(chunk_bc[row + 5u], h1) + dot(chunk_bc[row + 6u], h2) + dot(chunk_bc[row + 7u], h3);
          scan_y[kb_base + chunk_positions[s] * D + d] = d_skip * u + c_h;
        }
      }
      let every = scan_params.state_interval_chunks;
      if (STORE_STATES && ((chunk + 1u) % every == 0u || chunk + 1u == chunks)) {
        let slots = (chunks + every - 1u) / every;
        let state_base = (((k * scan_params.batch + b) * slots + chunk / every) * N + 4u * part) * D + d;
        for (var j = 0u; j < 4u; j++) {
          scan_states[state_base + j * D] = h0[j];
          if (!split) {
            scan_states[state_base + (4u + j) * D] = h1[j];
            scan_states[state_base + (8u + j) * D] = h2[j];
            scan_states[state_base + (12u + j) * D] = h3[j];
          }
        }
      }
    }

    // 3. Split states: y = Σ parts + D·u, scattered to the raster positions (coalesced over channels).
    if (split) {
      workgroupBarrier();
      for (var e = local; e < steps * CHANNELS; e += threads) {
        let s = e / CHANNELS;
        let c = e % CHANNELS;
        if (d0 + c < D) {
          var c_h = 0.0;
          for (var j = 0u; j < THREADS_PER_CHANNEL; j++) {
            c_h += chunk_partial[(s * THREADS_PER_CHANNEL + j) * CHANNELS + c];
          }
          let skip = scan_channel[(k * D + d0 + c) * CHANNEL_STRIDE + N + 1u];
          scan_y[kb_base + chunk_positions[s] * D + d0 + c] = skip * chunk_u[e] + c_h;
        }
      }
    }
    // The next chunk overwrites the staged values.
    workgroupBarrier();
  }
}

// ---- selective_scan_backward: the adjoint of MAMBAAD.md §6.1, with the gather/scatter of §7 ----
//
// Per channel, with g = dy, a_t = exp(Δ_t·A) and λ the adjoint of h:
//   λ_t = g_t·C_t + a_{t+1}·λ_{t+1}
//   du_t = g_t·Dskip + Δ_t·Σ_n λ_t B_t            dΔ_t = Σ_n λ_t (A·a_t·h_{t-1} + B_t u_t)
//   dB_t = Σ_channels λ_t Δ_t u_t                  dC_t = Σ_channels g_t h_t
//   dA += λ_t Δ_t a_t h_{t-1}    dDskip += g_t u_t    dδ_t = dΔ_t · (δ_t ≤ 20 ? sigmoid(δ_t) : 1), summed into dbias
// The sequence is walked backwards in segments of SEGMENT steps. For each segment the recurrence restarts from the
// state the forward saved at or before it (state_interval is a multiple of SEGMENT) and recomputes h up to the
// segment's end, keeping the segment's states in a per-thread history (private memory); then λ runs backwards through
// the segment. Intervals longer than SEGMENT cost (interval / SEGMENT + 1) / 2 forward recomputations on average.
// dB and dC are sums over the D channels of a direction: each workgroup sums its channels in workgroup memory and
// writes a partial; reduce_proj_grads sums the partials. dA, dbias and dDskip are written per batch element and
// summed by reduce_channel_grads. Threads, channels and chunks are laid out as in the forward.
//
// Layouts beyond the forward's:
//   dy            [K, B, L, D] at raster positions, or [B, L, D] read by every direction (dy_direction_stride = 0):
//                 the directions' outputs are summed, so each one's gradient is the merged gradient
//   du_directions [K, B, L, D] each direction's du at raster positions (merge_directions sums them for a shared u)
//   d_delta_raw   [K, B, L, D]
//   work (u32)    [channel params (K·D·(N+2), f32 bits) | table (K·L) | channel partials [B, K·D, N+2] (dA, dbias,
//                 dDskip) | proj partials [G, B, L, K, 2N] (dB, dC; G = channel groups)]: one binding, because the
//                 kernel is at the 8-storage-buffer limit otherwise

const SEGMENT: u32 = 32u; // STATE_INTERVAL_UNIT in scan.ts

struct BackwardParams {
  batch: u32,
  length: u32,
  channels: u32,
  directions: u32,
  proj_row_stride: u32,
  proj_direction_stride: u32,
  proj_b_offset: u32,
  u_direction_stride: u32,
  dy_direction_stride: u32,
  state_interval: u32,
  table_offset: u32,
  channel_partial_offset: u32,
  proj_partial_offset: u32,
}

@group(0) @binding(0) var<uniform> backward_params: BackwardParams;
@group(0) @binding(1) var<storage, read> backward_u: array<f32>;
@group(0) @binding(2) var<storage, read> backward_delta_raw: array<f32>;
@group(0) @binding(3) var<storage, read> backward_proj: array<f32>;
@group(0) @binding(4) var<storage, read> backward_dy: array<f32>;
@group(0) @binding(5) var<storage, read> backward_states: array<f32>;
@group(0) @binding(6) var<storage, read_write> backward_du: array<f32>;
@group(0) @binding(7) var<storage, read_write> backward_d_delta_raw: array<f32>;
@group(0) @binding(8) var<storage, read_write> backward_work: array<u32>;

// [step][channel]
var<workgroup> chunk_dy: array<f32, CHUNK * CHANNELS>;
var<workgroup> chunk_dsoftplus: array<f32, CHUNK * CHANNELS>;
// [step][n][channel]: each channel's dB (or dC) terms, to be summed over the workgroup's channels
var<workgroup> chunk_bc_grad: array<f32, CHUNK * N * CHANNELS>;
// [step][part][channel] (split states): the threads' parts of Σ λ·A·a·h_{t-1}; chunk_partial holds those of Σ λ·B
var<workgroup> chunk_partial_decay: array<f32, CHUNK * THREADS_PER_CHANNEL * CHANNELS>;

fn work_f32(at: u32) -> f32 {
  return bitcast<f32>(backward_work[at]);
}

fn work_vec4(at: u32) -> vec4<f32> {
  return vec4(work_f32(at), work_f32(at + 1u), work_f32(at + 2u), work_f32(at + 3u));
}

// States n .. n + 3 of one channel, `stride` apart.
fn saved_state_vec4(at: u32, stride: u32) -> vec4<f32> {
  return vec4(
    backward_states[at],
    backward_states[at + stride],
    backward_states[at + 2u * stride],
    backward_states[at + 3u * stride],
  );
}

// Stages the positions, B/C rows, u and Δ of steps t0 .. t0 + steps, and with `gradients` dy and dΔ/dδ.
fn stage_backward_chunk(local: u32, d0: u32, k: u32, b: u32, t0: u32, steps: u32, gradients: bool) {
  let threads = CHANNELS * THREADS_PER_CHANNEL;
  let L = backward_params.length;
  let D = backward_params.channels;
  let table_base = backward_params.table_offset + k * L;
  let bc_base = k * backward_params.proj_direction_stride + backward_params.proj_b_offset;
  for (var e = local; e < steps * 8u; e += threads) {
    let s = e / 8u;
    let p = backward_work[table_base + t0 + s];
    let at = (b * L + p) * backward_params.proj_row_stride + bc_base + 4u * (e % 8u);
    chunk_bc[e] = vec4(backward_proj[at], backward_proj[at + 1u], backward_proj[at + 2u], backward_proj[at + 3u]);
    if (e % 8u == 0u) { chunk_positions[s] = p; }
  }
  let u_base = k * backward_params.u_direction_stride + b * L * D;
  let dy_base = k * backward_params.dy_direction_stride + b * L * D;
  let kb_base = (k * backward_params.batch + b) * L * D;
  for (var e = local; e < CHUNK * CHANNELS; e += threads) {
    let s = e / CHANNELS;
    let dd = d0 + e % CHANNELS;
    if (s < steps && dd < D) {
      let offset = backward_work[table_base + t0 + s] * D + dd;
      chunk_u[e] = backward_u[u_base + offset];
      let raw = backward_delta_raw[kb_base + offset] + work_f32((k * D + dd) * CHANNEL_STRIDE + N);
      chunk_delta[e] = softplus(raw);
      if (gradients) {
        chunk_dy[e] = backward_dy[dy_base + offset];
        chunk_dsoftplus[e] = select(1.0 / (1.0 + exp(-raw)), 1.0, raw > 20.0);
      }
    }
  }
}

// Sums chunk_bc_grad over the workgroup's channels and writes the partial dB (column 0) or dC (column N) of each
// staged step at its raster position.
fn store_bc_grad_partials(local: u32, group: u32, k: u32, b: u32, steps: u32, column: u32) {
  let threads = CHANNELS * THREADS_PER_CHANNEL;
  let group_channels = min(CHANNELS, backward_params.channels - group * CHANNELS);
  for (var e = local; e < steps * N; e += threads) {
    let s = e / N;
    let n = e % N;
    var sum = 0.0;
    for (var c = 0u; c < group_channels; c++) {
      sum += chunk_bc_grad[(s * N + n) * CHANNELS + c];
    }
    let row = ((group * backward_params.batch + b) * backward_params.length + chunk_positions[s]) *
      backward_params.directions + k;
    backward_work[backward_params.proj_partial_offset + row * 2u * N + column + n] = bitcast<u32>(sum);
  }
}

// dB or dC terms of states 4·quarter .. 4·quarter + 3 of the thread's channel at step s.
fn set_bc_grad_terms(s: u32, quarter: u32, lane: u32, terms: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) {
    chunk_bc_grad[(s * N + 4u * quarter + j) * CHANNELS + lane] = terms[j];
  }
}

@compute @workgroup_size(CHANNELS * THREADS_PER_CHANNEL)
fn selective_scan_backward(
  @builtin(workgroup_id) group: vec3u,
  @builtin(local_invocation_index) local: u32,
) {
  let split = THREADS_PER_CHANNEL > 1u;
  let threads = CHANNELS * THREADS_PER_CHANNEL;
  let lane = local % CHANNELS;
  let part = local / CHANNELS;
  let d0 = group.x * CHANNELS;
  let d = d0 + lane;
  let k = group.y;
  let b = group.z;
  let L = backward_params.length;
  let D = backward_params.channels;
  let in_range = d < D;

  // A for the derivatives, and scaled by log2 e for exp(Δ·A) exactly as in the forward.
  let channel = (k * D + min(d, D - 1u)) * CHANNEL_STRIDE;
  let A0 = work_vec4(channel + 4u * part);
  var A1 = vec4(0.0);
  var A2 = vec4(0.0);
  var A3 = vec4(0.0);
  if (!split) {
    A1 = work_vec4(channel + 4u);
    A2 = work_vec4(channel + 8u);
    A3 = work_vec4(channel + 12u);
  }
  let a0 = LOG2_E * A0;
  let a1 = LOG2_E * A1;
  let a2 = LOG2_E * A2;
  let a3 = LOG2_E * A3;
  let d_skip = work_f32(channel + N + 1u);

  // history[i] = h after step t_seg + i - 1 of the current segment (history[0]: the state before it).
  var history0: array<vec4<f32>, SEGMENT + 1u>;
  var history1: array<vec4<f32>, SEGMENT + 1u>;
  var history2: array<vec4<f32>, SEGMENT + 1u>;
  var history3: array<vec4<f32>, SEGMENT + 1u>;
  // a_{t+1}·λ_{t+1}, carried to step t.
  var carry0 = vec4(0.0);
  var carry1 = vec4(0.0);
  var carry2 = vec4(0.0);
  var carry3 = vec4(0.0);
  var dA0 = vec4(0.0);
  var dA1 = vec4(0.0);
  var dA2 = vec4(0.0);
  var dA3 = vec4(0.0);
  var d_bias_sum = 0.0;
  var d_skip_sum = 0.0;

  let interval = backward_params.state_interval;
  let slots = (L + interval - 1u) / interval;
  let kb = k * backward_params.batch + b;
  let kb_base = kb * L * D;
  let segments = (L + SEGMENT - 1u) / SEGMENT;
  for (var remaining = segments; remaining > 0u; remaining--) {
    let t_seg = (remaining - 1u) * SEGMENT;
    let t_end = min(t_seg + SEGMENT, L);

    // 1. Restart from the last saved state before the segment; recompute h to the segment's end, keeping its history
    //    and writing dC (which needs h, not λ).
    let restart = t_seg / interval * interval;
    var h0 = vec4(0.0);
    var h1 = vec4(0.0);
    var h2 = vec4(0.0);
    var h3 = vec4(0.0);
    if (restart > 0u && in_range) {
      let at = ((kb * slots + restart / interval - 1u) * N + 4u * part) * D + d;
      h0 = saved_state_vec4(at, D);
      if (!split) {
        h1 = saved_state_vec4(at + 4u * D, D);
        h2 = saved_state_vec4(at + 8u * D, D);
        h3 = saved_state_vec4(at + 12u * D, D);
      }
    }
    history0[0] = h0;
    if (!split) {
      history1[0] = h1;
      history2[0] = h2;
      history3[0] = h3;
    }
    for (var t0 = restart; t0 < t_end; t0 += CHUNK) {
      let steps = min(CHUNK, t_end - t0);
      let in_segment = t0 >= t_seg; // chunks never straddle a segment start: CHUNK divides SEGMENT
      stage_backward_chunk(local, d0, k, b, t0, steps, in_segment);
      workgroupBarrier();
      if (in_range) {
        for (var s = 0u; s < steps; s++) {
          let delta = chunk_delta[s * CHANNELS + lane];
          let delta_u = delta * chunk_u[s * CHANNELS + lane];
          let row = 8u * s;
          h0 = exp2(delta * a0) * h0 + delta_u * chunk_bc[row + part];
          if (!split) {
            h1 = exp2(delta * a1) * h1 + delta_u * chunk_bc[row + 1u];
            h2 = exp2(delta * a2) * h2 + delta_u * chunk_bc[row + 2u];
            h3 = exp2(delta * a3) * h3 + delta_u * chunk_bc[row + 3u];
          }
          if (in_segment) {
            let at = t0 + s - t_seg + 1u;
            let g = chunk_dy[s * CHANNELS + lane];
            history0[at] = h0;
            set_bc_grad_terms(s, part, lane, g * h0);
            if (!split) {
              history1[at] = h1;
              history2[at] = h2;
              history3[at] = h3;
              set_bc_grad_terms(s, 1u, lane, g * h1);
              set_bc_grad_terms(s, 2u, lane, g * h2);
              set_bc_grad_terms(s, 3u, lane, g * h3);
            }
          } else if (t0 + s + 1u == t_seg) {
            history0[0] = h0;
            if (!split) {
              history1[0] = h1;
              history2[0] = h2;
              history3[0] = h3;
            }
          }
        }
      }
      if (in_segment) {
        workgroupBarrier();
        store_bc_grad_partials(local, group.x, k, b, steps, N);
      }
      workgroupBarrier();
    }

    // 2. The adjoint, backwards through the segment's chunks.
    for (var chunk = (t_end - t_seg + CHUNK - 1u) / CHUNK; chunk > 0u; chunk--) {
      let t0 = t_seg + (chunk - 1u) * CHUNK;
      let steps = min(CHUNK, t_end - t0);
      stage_backward_chunk(local, d0, k, b, t0, steps, true);
      workgroupBarrier();
      if (in_range) {
        for (var i = steps; i > 0u; i--) {
          let s = i - 1u;
          let at = t0 + s - t_seg; // history[at] = h_{t-1}
          let u = chunk_u[s * CHANNELS + lane];
          let delta = chunk_delta[s * CHANNELS + lane];
          let g = chunk_dy[s * CHANNELS + lane];
          let row = 8u * s;
          let decay0 = exp2(delta * a0);
          let lambda0 = g * chunk_bc[row + 4u + part] + carry0;
          carry0 = decay0 * lambda0;
          let decayed0 = decay0 * history0[at];
          var lambda_b = dot(lambda0, chunk_bc[row + part]);
          var lambda_decay = dot(lambda0, A0 * decayed0);
          dA0 += delta * lambda0 * decayed0;
          set_bc_grad_terms(s, part, lane, delta * u * lambda0);
          if (split) {
            chunk_partial[(s * THREADS_PER_CHANNEL + part) * CHANNELS + lane] = lambda_b;
            chunk_partial_decay[(s * THREADS_PER_CHANNEL + part) * CHANNELS + lane] = lambda_decay;
          } else {
            let decay1 = exp2(delta * a1);
            let decay2 = exp2(delta * a2);
            let decay3 = exp2(delta * a3);
            let lambda1 = g * chunk_bc[row + 5u] + carry1;
            let lambda2 = g * chunk_bc[row + 6u] + carry2;
            let lambda3 = g * chunk_bc[row + 7u] + carry3;
            carry1 = decay1 * lambda1;
            carry2 = decay2 * lambda2;
            carry3 = decay3 * lambda3;
            let decayed1 = decay1 * history1[at];
            let decayed2 = decay2 * history2[at];
            let decayed3 = decay3 * history3[at];
            lambda_b += dot(lambda1, chunk_bc[row + 1u]) + dot(lambda2, chunk_bc[row + 2u]) +
              dot(lambda3, chunk_bc[row + 3u]);
            lambda_decay += dot(lambda1, A1 * decayed1) + dot(lambda2, A2 * decayed2) + dot(lambda3, A3 * decayed3);
            dA1 += delta * lambda1 * decayed1;
            dA2 += delta * lambda2 * decayed2;
            dA3 += delta * lambda3 * decayed3;
            set_bc_grad_terms(s, 1u, lane, delta * u * lambda1);
            set_bc_grad_terms(s, 2u, lane, delta * u * lambda2);
            set_bc_grad_terms(s, 3u, lane, delta * u * lambda3);
            let d_delta = (lambda_decay + u * lambda_b) * chunk_dsoftplus[s * CHANNELS + lane];
            let offset = kb_base + chunk_positions[s] * D + d;
            backward_du[offset] = g * d_skip + delta * lambda_b;
            backward_d_delta_raw[offset] = d_delta;
            d_bias_sum += d_delta;
            d_skip_sum += g * u;
          }
        }
      }
      workgroupBarrier();
      store_bc_grad_partials(local, group.x, k, b, steps, 0u);
      // Split states: sum the parts, then du and dδ (coalesced over channels). threads is a multiple of CHANNELS, so
      // every e of this thread is its own channel.
      if (split && in_range) {
        for (var e = local; e < steps * CHANNELS; e += threads) {
          let s = e / CHANNELS;
          var lambda_b = 0.0;
          var lambda_decay = 0.0;
          for (var j = 0u; j < THREADS_PER_CHANNEL; j++) {
            lambda_b += chunk_partial[(s * THREADS_PER_CHANNEL + j) * CHANNELS + lane];
            lambda_decay += chunk_partial_decay[(s * THREADS_PER_CHANNEL + j) * CHANNELS + lane];
          }
          let u = chunk_u[e];
          let g = chunk_dy[e];
          let d_delta = (lambda_decay + u * lambda_b) * chunk_dsoftplus[e];
          let offset = kb_base + chunk_positions[s] * D + d;
          backward_du[offset] = g * d_skip + chunk_delta[e] * lambda_b;
          backward_d_delta_raw[offset] = d_delta;
          d_bias_sum += d_delta;
          d_skip_sum += g * u;
        }
      }
      // The next chunk overwrites the staged values.
      workgroupBarrier();
    }
  }

  // 3. This batch element's dA, dbias and dDskip of the channel.
  let partial = backward_params.channel_partial_offset +
    ((b * backward_params.directions + k) * D + d) * CHANNEL_STRIDE;
  if (in_range) {
    for (var j = 0u; j < 4u; j++) {
      backward_work[partial + 4u * part + j] = bitcast<u32>(dA0[j]);
      if (!split) {
        backward_work[partial + 4u + j] = bitcast<u32>(dA1[j]);
        backward_work[partial + 8u + j] = bitcast<u32>(dA2[j]);
        backward_work[partial + 12u + j] = bitcast<u32>(dA3[j]);
      }
    }
  }
  if (split) {
    chunk_partial[part * CHANNELS + lane] = d_bias_sum;
    chunk_partial_decay[part * CHANNELS + lane] = d_skip_sum;
    workgroupBarrier();
    if (part == 0u && in_range) {
      for (var j = 1u; j < THREADS_PER_CHANNEL; j++) {
        d_bias_sum += chunk_partial[j * CHANNELS + lane];
        d_skip_sum += chunk_partial_decay[j * CHANNELS + lane];
      }
    }
  }
  if (part == 0u && in_range) {
    backward_work[partial + N] = bitcast<u32>(d_bias_sum);
    backward_work[partial + N + 1u] = bitcast<u32>(d_skip_sum);
  }
}

// ---- scan_backward_prepare: the channel parameters and the direction table into the head of the workspace ----

struct PrepareParams {
  channel_values: u32, // K·D·(N + 2), also where the table starts
  table_values: u32, // K·L
}

@group(0) @binding(0) var<uniform> prepare_params: PrepareParams;
@group(0) @binding(1) var<storage, read> prepare_channel: array<u32>; // f32 bits
@group(0) @binding(2) var<storage, read> prepare_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> prepare_work: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn scan_backward_prepare(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  let channel_values = prepare_params.channel_values;
  if (i < channel_values) {
    prepare_work[i] = prepare_channel[i];
  } else if (i < channel_values + prepare_params.table_values) {
    prepare_work[i] = prepare_table[i - channel_values];
  }
}

// ---- reduce_proj_grads: d proj [B·L, K·W] = Σ_groups of the dB/dC partials; zeros in the dt columns ----

struct ProjGradParams {
  count: u32, // B·L·K·W
  directions: u32,
  block_width: u32, // W = R + 2N
  dt_rank: u32,
  groups: u32,
  rows: u32, // B·L
  partial_offset: u32,
}

@group(0) @binding(0) var<uniform> proj_grad_params: ProjGradParams;
@group(0) @binding(1) var<storage, read> proj_grad_work: array<u32>;
@group(0) @binding(2) var<storage, read_write> proj_grad_out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_proj_grads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  let p = proj_grad_params;
  if (i >= p.count) { return; }
  let width = p.directions * p.block_width;
  let row = i / width;
  let k = (i % width) / p.block_width;
  let column = i % p.block_width;
  var sum = 0.0;
  if (column >= p.dt_rank) {
    let at = p.partial_offset + (row * p.directions + k) * 2u * N + column - p.dt_rank;
    let group_stride = p.rows * p.directions * 2u * N;
    for (var g = 0u; g < p.groups; g++) {
      sum += bitcast<f32>(proj_grad_work[at + g * group_stride]);
    }
  }
  proj_grad_out[i] = sum;
}

// ---- reduce_channel_grads: dA (or dA_log = dA·A), dbias, dDskip summed over the batch ----

struct ChannelGradParams {
  channels: u32, // K·D
  batch: u32,
  partial_offset: u32,
}

@group(0) @binding(0) var<uniform> channel_grad_params: ChannelGradParams;
@group(0) @binding(1) var<storage, read> channel_grad_work: array<u32>;
@group(0) @binding(2) var<storage, read_write> channel_grad_a: array<f32>; // [K·D, N]
@group(0) @binding(3) var<storage, read_write> channel_grad_bias: array<f32>; // [K·D]
@group(0) @binding(4) var<storage, read_write> channel_grad_skip: array<f32>; // [K·D]

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_channel_grads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  let channels = channel_grad_params.channels;
  if (i >= channels * CHANNEL_STRIDE) { return; }
  let c = i / CHANNEL_STRIDE;
  let j = i % CHANNEL_STRIDE;
  var sum = 0.0;
  for (var b = 0u; b < channel_grad_params.batch; b++) {
    sum += bitcast<f32>(channel_grad_work[channel_grad_params.partial_offset + b * channels * CHANNEL_STRIDE + i]);
  }
  if (j < N) {
    // The workspace starts with the packed channel parameters: A itself.
    channel_grad_a[c * N + j] = select(sum, sum * bitcast<f32>(channel_grad_work[i]), A_IS_LOG);
  } else if (j == N) {
    channel_grad_bias[c] = sum;
  } else {
    channel_grad_skip[c] = sum;
  }
}

// ---- merge: Y[b, p, d] = Σ_k y[k, b, p, d] in PyTorch's order (view g forward, then view g reversed) ----

struct MergeParams {
  count: u32, // B·L·D
  directions: u32,
}

@group(0) @binding(0) var<uniform> merge_params: MergeParams;
@group(0) @binding(1) var<storage, read> merge_y: array<f32>;
@group(0) @binding(2) var<storage, read_write> merge_out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn merge_directions(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  let count = merge_params.count;
  if (i >= count) { return; }
  let half = merge_params.directions / 2u;
  var sum = 0.0;
  for (var g = 0u; g < half; g++) {
    sum += merge_y[g * count + i];
    sum += merge_y[(g + half) * count + i];
  }
  merge_out[i] = sum;
}

// ---- pack_channel_params: [K·D, N + 2] = (A, delta bias, D skip) per channel, once per weight update ----

struct PackParams {
  channels: u32, // K·D
}

@group(0) @binding(0) var<uniform> pack_params: PackParams;
@group(0) @binding(1) var<storage, read> pack_a: array<f32>; // [K·D, N]: A, or A_logs with A_IS_LOG
@group(0) @binding(2) var<storage, read> pack_delta_bias: array<f32>; // [K·D]
@group(0) @binding(3) var<storage, read> pack_d_skip: array<f32>; // [K·D]
@group(0) @binding(4) var<storage, read_write> pack_out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_channel_params(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let c = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (c >= pack_params.channels) { return; }
  for (var n = 0u; n < N; n++) {
    let value = pack_a[c * N + n];
    pack_out[c * CHANNEL_STRIDE + n] = select(value, -exp(value), A_IS_LOG);
  }
  pack_out[c * CHANNEL_STRIDE + N] = pack_delta_bias[c];
  pack_out[c * CHANNEL_STRIDE + N + 1u] = pack_d_skip[c];
}
