// Normalisations on channels-last activations, f32. Statistics are two-pass (mean, then the mean of squared
// deviations) with workgroup tree reductions, which keeps them accurate for rows of up to a few thousand values.
//
// layer_norm / layer_norm_gated: a segment of THREADS_PER_ROW threads per row of [rows, C], 256 / THREADS_PER_ROW rows
//   per workgroup; lane t handles channels t, t + THREADS_PER_ROW, ... THREADS_PER_ROW = 1 skips the reductions and
//   their barriers: a thread per row is by far the fastest on SwiftShader, where barriers are very costly.
//   out = (x - mean) / sqrt(var + eps) · weight + bias   (biased variance, as PyTorch)
//   gated (SS2D): out = LayerNorm(y) · SiLU(z), z read from a channel window of a wider tensor (in_proj's second half).
// instance_norm: x [B, HW, C]; statistics per (b, c) over HW. A workgroup covers 16 channels of one sample, 16 lanes
//   per channel stride over the positions, so neighbouring threads read neighbouring channels.
// channel_affine: out = x · scale[c] + shift[c] on [.., C] (BatchNorm with running statistics).
// SILU (instance_norm) / RELU (channel_affine, batch_norm_train) apply the activation to the output (fused).
//
// Training (backward entry points take dy, the gradient of the forward's output, activation included):
// layer_norm_backward: per row, as layer_norm: dx = invstd · (g - mean(g) - x̂ · mean(g · x̂)) with g = dy · weight;
//   also writes each row's (mean, invstd) for layer_norm_backward_params.
// layer_norm_backward_params: dweight = Σ_rows dy · x̂, dbias = Σ_rows dy; 16 channels x 16 lanes per workgroup over
//   one chunk of rows (x = channel block, y = chunk), partial sums per chunk.
// layer_norm_gated_backward: from dy of LayerNorm(y) · SiLU(z): d(LayerNorm(y)) = dy · SiLU(z), which then goes
//   through layer_norm_backward, and dz = dy · LayerNorm(y) · SiLU'(z), written into a channel window like the gate's.
// instance_norm_backward: dx = invstd · (g - mean(g) - x̂ · mean(g · x̂)) per (b, c), g = dy (· SiLU'(x̂) with SILU);
//   the statistics are recomputed, the workgroup layout is instance_norm's.
// BatchNorm in training mode, per channel over the rows of [rows, C] (rows = B·H·W):
//   batch_norm_statistics: per chunk of rows, two-pass mean and M2 = Σ (x - mean)² (16 channels x 16 lanes).
//   batch_norm_finalize: merges the chunks (Chan et al.: M2 = Σ M2_i + n_i (mean_i - mean)²) into the batch mean and
//     biased variance, stats [2, C], and updates the running statistics with the unbiased variance, as PyTorch.
//   batch_norm_train: out = x̂ · gamma + beta (+ ReLU) with x̂ = (x - mean) / sqrt(var + eps).
//   batch_norm_backward_reduce: per chunk, dbeta = Σ g and dgamma = Σ g · x̂, g = dy masked where ReLU cut.
//   batch_norm_backward_input: dx = gamma · invstd · (g - dbeta / n - x̂ · dgamma / n).

/** channel_affine's workgroup size. */
override WORKGROUP_SIZE: u32 = 256;
/** A power of two from 1 to ROW_WORKGROUP_SIZE. */
override THREADS_PER_ROW: u32 = 32;
override SILU: bool = false;
override RELU: bool = false;

struct RowParams {
  rows: u32,
  channels: u32,
  eps: f32,
  gate_pixel_stride: u32,
  gate_channel_offset: u32,
  gate_grad_pixel_stride: u32,
  gate_grad_channel_offset: u32,
}

struct InstanceParams {
  positions: u32,
  channels: u32,
  eps: f32,
}

struct AffineParams {
  count: u32,
  channels: u32,
}

/** Per-channel reductions over the rows of [rows, C], in chunks of rows_per_chunk rows. */
struct ChannelParams {
  rows: u32,
  channels: u32,
  rows_per_chunk: u32,
  eps: f32,
  momentum: f32,
}

struct BatchNormParams {
  count: u32,
  channels: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> row_params: RowParams;
@group(0) @binding(0) var<uniform> instance_params: InstanceParams;
@group(0) @binding(0) var<uniform> affine_params: AffineParams;
@group(0) @binding(0) var<uniform> channel_params: ChannelParams;
@group(0) @binding(0) var<uniform> bn_params: BatchNormParams;

@group(0) @binding(1) var<storage, read> x: array<f32>;

// layer_norm: x, weight, bias, out. layer_norm_gated: x, weight, bias, gate, gated_out.
@group(0) @binding(2) var<storage, read> ln_weight: array<f32>;
@group(0) @binding(3) var<storage, read> ln_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> ln_out: array<f32>;
@group(0) @binding(4) var<storage, read> gate: array<f32>;
@group(0) @binding(5) var<storage, read_write> gated_out: array<f32>;

// instance_norm: x, out.
@group(0) @binding(2) var<storage, read_write> instance_out: array<f32>;

// channel_affine: x, scale, shift, out.
@group(0) @binding(2) var<storage, read> affine_scale: array<f32>;
@group(0) @binding(3) var<storage, read> affine_shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> affine_out: array<f32>;

// layer_norm_backward: x, ln_weight, upstream, grad_x, row_stats [rows, 2].
@group(0) @binding(3) var<storage, read> upstream: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_stats: array<f32>;
// layer_norm_backward_params: x, saved_row_stats, upstream, partial_dweight, partial_dbias.
@group(0) @binding(2) var<storage, read> saved_row_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial_dweight: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial_dbias: array<f32>;
// layer_norm_gated_backward: x (y), ln_weight, ln_bias, gate, gated_upstream, normed_grad, gate_grad.
@group(0) @binding(5) var<storage, read> gated_upstream: array<f32>;
@group(0) @binding(6) var<storage, read_write> normed_grad: array<f32>;
@group(0) @binding(7) var<storage, read_write> gate_grad: array<f32>;

// instance_norm_backward: x, instance_upstream, instance_grad.
@group(0) @binding(2) var<storage, read> instance_upstream: array<f32>;
@group(0) @binding(3) var<storage, read_write> instance_grad: array<f32>;

// batch_norm_statistics: x, partial_mean, partial_m2.
@group(0) @binding(2) var<storage, read_write> partial_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial_m2: array<f32>;
// batch_norm_finalize: x (the partial means), saved_m2, bn_stats_out, running_mean, running_var.
@group(0) @binding(2) var<storage, read> saved_m2: array<f32>;
@group(0) @binding(3) var<storage, read_write> bn_stats_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
// batch_norm_train: x, bn_stats, bn_gamma, bn_beta, bn_out.
// batch_norm_backward_reduce: x, bn_stats, bn_gamma, bn_beta, bn_upstream, partial_dgamma, partial_dbeta.
// batch_norm_backward_input: x, bn_stats, bn_gamma, bn_beta, bn_upstream, bn_dgamma, bn_dbeta, bn_dx.
@group(0) @binding(2) var<storage, read> bn_stats: array<f32>; // [2, C]: mean, biased variance
@group(0) @binding(3) var<storage, read> bn_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> bn_beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> bn_out: array<f32>;
@group(0) @binding(5) var<storage, read> bn_upstream: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial_dbeta: array<f32>;
@group(0) @binding(6) var<storage, read> bn_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> bn_dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> bn_dx: array<f32>;

const ROW_WORKGROUP_SIZE: u32 = 256u;
const INSTANCE_CHANNELS: u32 = 16u;
const INSTANCE_LANES: u32 = 16u;

var<workgroup> partial: array<f32, 256>;

fn sigmoid(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-v));
}

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(-v));
}

/** d SiLU(v) / dv. */
fn silu_derivative(v: f32) -> f32 {
  let s = sigmoid(v);
  return s * (1.0 + v * (1.0 - s));
}

fn activate(v: f32) -> f32 {
  if (RELU) { return max(v, 0.0); }
  if (SILU) { return silu(v); }
  return v;
}

/** The sum of `value` over the THREADS_PER_ROW threads of this thread's row segment; each of them gets it. */
fn segment_sum(thread: u32, value: f32) -> f32 {
  if (THREADS_PER_ROW == 1u) { return value; }
  partial[thread] = value;
  workgroupBarrier();
  let lane = thread % THREADS_PER_ROW;
  for (var stride = THREADS_PER_ROW / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[thread] += partial[thread + stride];
    }
    workgroupBarrier();
  }
  let total = partial[thread - lane];
  workgroupBarrier(); // before anyone reuses `partial`
  return total;
}

/**
 * (mean, 1 / sqrt(var + eps)) of one row of x. Threads of rows past the end pass zeros: they must still reach every
 * barrier.
 */
fn row_statistics(row: u32, thread: u32) -> vec2f {
  let c = row_params.channels;
  let in_range = row < row_params.rows;
  let base = row * c;
  var sum = 0.0;
  if (in_range) {
    for (var i = thread % THREADS_PER_ROW; i < c; i += THREADS_PER_ROW) {
      sum += x[base + i];
    }
  }
  let mean = segment_sum(thread, sum) / f32(c);
  var squares = 0.0;
  if (in_range) {
    for (var i = thread % THREADS_PER_ROW; i < c; i += THREADS_PER_ROW) {
      let d = x[base + i] - mean;
      squares = fma(d, d, squares);
    }
  }
  let variance = segment_sum(thread, squares) / f32(c);
  return vec2f(mean, inverseSqrt(variance + row_params.eps));
}

/** The row of [rows, C] this thread works on; workgroups may be laid out over x and y. */
fn row_of(group: vec3u, groups: vec3u, thread: u32) -> u32 {
  return (group.x + group.y * groups.x) * (ROW_WORKGROUP_SIZE / THREADS_PER_ROW) + thread / THREADS_PER_ROW;
}

@compute @workgroup_size(ROW_WORKGROUP_SIZE)
fn layer_norm(
  @builtin(workgroup_id) group: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) thread: u32,
) {
  let row = row_of(group, groups, thread);
  let stats = row_statistics(row, thread);
  if (row >= row_params.rows) { return; }
  let base = row * row_params.channels;
  for (var i = thread % THREADS_PER_ROW; i < row_params.channels; i += THREADS_PER_ROW) {
    ln_out[base + i] = (x[base + i] - stats.x) * stats.y * ln_weight[i] + ln_bias[i];
  }
}

@compute @workgroup_size(ROW_WORKGROUP_SIZE)
fn layer_norm_gated(
  @builtin(workgroup_id) group: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) thread: u32,
) {
  let row = row_of(group, groups, thread);
  let stats = row_statistics(row, thread);
  if (row >= row_params.rows) { return; }
  let base = row * row_params.channels;
  let gate_base = row * row_params.gate_pixel_stride + row_params.gate_channel_offset;
  for (var i = thread % THREADS_PER_ROW; i < row_params.channels; i += THREADS_PER_ROW) {
    let normed = (x[base + i] - stats.x) * stats.y * ln_weight[i] + ln_bias[i];
    gated_out[base + i] = normed * silu(gate[gate_base + i]);
  }
}

/** The sum over the 16 lanes of each of the workgroup's 16 channels; every thread gets its channel's sum. */
fn lane_sum(channel: u32, lane: u32, value: f32) -> f32 {
  partial[lane * INSTANCE_CHANNELS + channel] = value;
  workgroupBarrier();
  for (var stride = INSTANCE_LANES / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane * INSTANCE_CHANNELS + channel] += partial[(lane + stride) * INSTANCE_CHANNELS + channel];
    }
    workgroupBarrier();
  }
  let total = partial[channel];
  workgroupBarrier();
  return total;
}

/**
 * (mean, 1 / sqrt(var + eps)) of channel c over the HW positions from `base` (channels apart). Threads past the last
 * channel pass in_range = false: they must still reach every barrier.
 */
fn instance_statistics(channel: u32, lane: u32, in_range: bool, base: u32) -> vec2f {
  let hw = instance_params.positions;
  let channels = instance_params.channels;
  var sum = 0.0;
  if (in_range) {
    for (var p = lane; p < hw; p += INSTANCE_LANES) {
      sum += x[base + p * channels];
    }
  }
  let mean = lane_sum(channel, lane, sum) / f32(hw);
  var squares = 0.0;
  if (in_range) {
    for (var p = lane; p < hw; p += INSTANCE_LANES) {
      let d = x[base + p * channels] - mean;
      squares = fma(d, d, squares);
    }
  }
  return vec2f(mean, inverseSqrt(lane_sum(channel, lane, squares) / f32(hw) + instance_params.eps));
}

@compute @workgroup_size(INSTANCE_CHANNELS, INSTANCE_LANES)
fn instance_norm(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let hw = instance_params.positions;
  let channels = instance_params.channels;
  let c = group.x * INSTANCE_CHANNELS + local.x;
  let lane = local.y;
  let in_range = c < channels;
  let base = group.y * hw * channels + c;
  let stats = instance_statistics(local.x, lane, in_range, base);
  if (!in_range) { return; }
  for (var p = lane; p < hw; p += INSTANCE_LANES) {
    let i = base + p * channels;
    instance_out[i] = activate((x[i] - stats.x) * stats.y);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn channel_affine(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= affine_params.count) { return; }
  let c = i % affine_params.channels;
  affine_out[i] = activate(fma(x[i], affine_scale[c], affine_shift[c]));
}

// ---- training ----

@compute @workgroup_size(ROW_WORKGROUP_SIZE)
fn layer_norm_backward(
  @builtin(workgroup_id) group: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) thread: u32,
) {
  let row = row_of(group, groups, thread);
  let stats = row_statistics(row, thread);
  let c = row_params.channels;
  let in_range = row < row_params.rows;
  let base = row * c;
  var sum_g = 0.0;
  var sum_gx = 0.0;
  if (in_range) {
    for (var i = thread % THREADS_PER_ROW; i < c; i += THREADS_PER_ROW) {
      let g = upstream[base + i] * ln_weight[i];
      sum_g += g;
      sum_gx = fma(g, (x[base + i] - stats.x) * stats.y, sum_gx);
    }
  }
  let mean_g = segment_sum(thread, sum_g) / f32(c);
  let mean_gx = segment_sum(thread, sum_gx) / f32(c);
  if (!in_range) { return; }
  if (thread % THREADS_PER_ROW == 0u) {
    row_stats[2u * row] = stats.x;
    row_stats[2u * row + 1u] = stats.y;
  }
  for (var i = thread % THREADS_PER_ROW; i < c; i += THREADS_PER_ROW) {
    let normed = (x[base + i] - stats.x) * stats.y;
    grad_x[base + i] = stats.y * (upstream[base + i] * ln_weight[i] - mean_g - normed * mean_gx);
  }
}

@compute @workgroup_size(INSTANCE_CHANNELS, INSTANCE_LANES)
fn layer_norm_backward_params(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let channels = channel_params.channels;
  let c = group.x * INSTANCE_CHANNELS + local.x;
  let lane = local.y;
  let begin = group.y * channel_params.rows_per_chunk;
  let end = min(channel_params.rows, begin + channel_params.rows_per_chunk);
  var sum_weight = 0.0;
  var sum_bias = 0.0;
  if (c < channels) {
    for (var r = begin + lane; r < end; r += INSTANCE_LANES) {
      let i = r * channels + c;
      let d = upstream[i];
      sum_weight = fma(d, (x[i] - saved_row_stats[2u * r]) * saved_row_stats[2u * r + 1u], sum_weight);
      sum_bias += d;
    }
  }
  let total_weight = lane_sum(local.x, lane, sum_weight);
  let total_bias = lane_sum(local.x, lane, sum_bias);
  if (lane == 0u && c < channels) {
    partial_dweight[group.y * channels + c] = total_weight;
    partial_dbias[group.y * channels + c] = total_bias;
  }
}

@compute @workgroup_size(ROW_WORKGROUP_SIZE)
fn layer_norm_gated_backward(
  @builtin(workgroup_id) group: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) thread: u32,
) {
  let row = row_of(group, groups, thread);
  let stats = row_statistics(row, thread);
  if (row >= row_params.rows) { return; }
  let base = row * row_params.channels;
  let gate_base = row * row_params.gate_pixel_stride + row_params.gate_channel_offset;
  let gate_grad_base = row * row_params.gate_grad_pixel_stride + row_params.gate_grad_channel_offset;
  for (var i = thread % THREADS_PER_ROW; i < row_params.channels; i += THREADS_PER_ROW) {
    let normed = (x[base + i] - stats.x) * stats.y * ln_weight[i] + ln_bias[i];
    let z = gate[gate_base + i];
    let d = gated_upstream[base + i];
    normed_grad[base + i] = d * silu(z);
    gate_grad[gate_grad_base + i] = d * normed * silu_derivative(z);
  }
}

@compute @workgroup_size(INSTANCE_CHANNELS, INSTANCE_LANES)
fn instance_norm_backward(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let hw = instance_params.positions;
  let channels = instance_params.channels;
  let c = group.x * INSTANCE_CHANNELS + local.x;
  let lane = local.y;
  let in_range = c < channels;
  let base = group.y * hw * channels + c;
  let stats = instance_statistics(local.x, lane, in_range, base);
  var sum_g = 0.0;
  var sum_gx = 0.0;
  if (in_range) {
    for (var p = lane; p < hw; p += INSTANCE_LANES) {
      let i = base + p * channels;
      let normed = (x[i] - stats.x) * stats.y;
      var g = instance_upstream[i];
      if (SILU) { g *= silu_derivative(normed); }
      sum_g += g;
      sum_gx = fma(g, normed, sum_gx);
    }
  }
  let mean_g = lane_sum(local.x, lane, sum_g) / f32(hw);
  let mean_gx = lane_sum(local.x, lane, sum_gx) / f32(hw);
  if (!in_range) { return; }
  for (var p = lane; p < hw; p += INSTANCE_LANES) {
    let i = base + p * channels;
    let normed = (x[i] - stats.x) * stats.y;
    var g = instance_upstream[i];
    if (SILU) { g *= silu_derivative(normed); }
    instance_grad[i] = stats.y * (g - mean_g - normed * mean_gx);
  }
}

@compute @workgroup_size(INSTANCE_CHANNELS, INSTANCE_LANES)
fn batch_norm_statistics(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let channels = channel_params.channels;
  let c = group.x * INSTANCE_CHANNELS + local.x;
  let lane = local.y;
  let in_range = c < channels;
  let begin = group.y * channel_params.rows_per_chunk;
  let end = min(channel_params.rows, begin + channel_params.rows_per_chunk);
  var sum = 0.0;
  if (in_range) {
    for (var r = begin + lane; r < end; r += INSTANCE_LANES) {
      sum += x[r * channels + c];
    }
  }
  let mean = lane_sum(local.x, lane, sum) / f32(end - begin);
  var squares = 0.0;
  if (in_range) {
    for (var r = begin + lane; r < end; r += INSTANCE_LANES) {
      let d = x[r * channels + c] - mean;
      squares = fma(d, d, squares);
    }
  }
  let m2 = lane_sum(local.x, lane, squares);
  if (lane == 0u && in_range) {
    partial_mean[group.y * channels + c] = mean;
    partial_m2[group.y * channels + c] = m2;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_finalize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let c = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  let channels = channel_params.channels;
  if (c >= channels) { return; }
  let rows = channel_params.rows;
  let per_chunk = channel_params.rows_per_chunk;
  let chunks = (rows + per_chunk - 1u) / per_chunk;
  var total = 0.0;
  for (var i = 0u; i < chunks; i++) {
    total = fma(f32(min(per_chunk, rows - i * per_chunk)), x[i * channels + c], total);
  }
  let mean = total / f32(rows);
  var m2 = 0.0;
  for (var i = 0u; i < chunks; i++) {
    let d = x[i * channels + c] - mean;
    m2 += saved_m2[i * channels + c] + f32(min(per_chunk, rows - i * per_chunk)) * d * d;
  }
  bn_stats_out[c] = mean;
  bn_stats_out[channels + c] = m2 / f32(rows);
  let momentum = channel_params.momentum;
  running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean;
  running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (m2 / f32(rows - 1u));
}

/** (x̂, x̂ · gamma + beta) of element i in channel c, from the batch statistics. */
fn batch_normalized(i: u32, c: u32, channels: u32, eps: f32) -> vec2f {
  let normed = (x[i] - bn_stats[c]) * inverseSqrt(bn_stats[channels + c] + eps);
  return vec2f(normed, fma(normed, bn_gamma[c], bn_beta[c]));
}

/** dy where the forward's ReLU let the value through (with RELU), else dy. */
fn batch_norm_upstream(i: u32, pre_activation: f32) -> f32 {
  if (RELU && pre_activation <= 0.0) { return 0.0; }
  return bn_upstream[i];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_train(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= bn_params.count) { return; }
  bn_out[i] = activate(batch_normalized(i, i % bn_params.channels, bn_params.channels, bn_params.eps).y);
}

@compute @workgroup_size(INSTANCE_CHANNELS, INSTANCE_LANES)
fn batch_norm_backward_reduce(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let channels = channel_params.channels;
  let c = group.x * INSTANCE_CHANNELS + local.x;
  let lane = local.y;
  let begin = group.y * channel_params.rows_per_chunk;
  let end = min(channel_params.rows, begin + channel_params.rows_per_chunk);
  var sum_g = 0.0;
  var sum_gx = 0.0;
  if (c < channels) {
    for (var r = begin + lane; r < end; r += INSTANCE_LANES) {
      let i = r * channels + c;
      let v = batch_normalized(i, c, channels, channel_params.eps);
      let g = batch_norm_upstream(i, v.y);
      sum_g += g;
      sum_gx = fma(g, v.x, sum_gx);
    }
  }
  let total_g = lane_sum(local.x, lane, sum_g);
  let total_gx = lane_sum(local.x, lane, sum_gx);
  if (lane == 0u && c < channels) {
    partial_dbeta[group.y * channels + c] = total_g;
    partial_dgamma[group.y * channels + c] = total_gx;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= bn_params.count) { return; }
  let channels = bn_params.channels;
  let c = i % channels;
  let v = batch_normalized(i, c, channels, bn_params.eps);
  let g = batch_norm_upstream(i, v.y);
  let n = f32(bn_params.count / channels);
  let inv_std = inverseSqrt(bn_stats[channels + c] + bn_params.eps);
  bn_dx[i] = bn_gamma[c] * inv_std * (g - bn_dbeta[c] / n - v.x * bn_dgamma[c] / n);
}
