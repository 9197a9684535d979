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
// SILU (instance_norm) / RELU (channel_affine) apply the activation to the output (fused).

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

@group(0) @binding(0) var<uniform> row_params: RowParams;
@group(0) @binding(0) var<uniform> instance_params: InstanceParams;
@group(0) @binding(0) var<uniform> affine_params: AffineParams;

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

const ROW_WORKGROUP_SIZE: u32 = 256u;
const INSTANCE_CHANNELS: u32 = 16u;
const INSTANCE_LANES: u32 = 16u;

var<workgroup> partial: array<f32, 256>;

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(-v));
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

@compute @workgroup_size(INSTANCE_CHANNELS, INSTANCE_LANES)
fn instance_norm(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let hw = instance_params.positions;
  let channels = instance_params.channels;
  let c = group.x * INSTANCE_CHANNELS + local.x;
  let lane = local.y;
  // Threads past the last channel still take part in the reductions (barriers need the whole workgroup).
  let in_range = c < channels;
  let base = group.y * hw * channels + c;
  var sum = 0.0;
  if (in_range) {
    for (var p = lane; p < hw; p += INSTANCE_LANES) {
      sum += x[base + p * channels];
    }
  }
  let mean = lane_sum(local.x, lane, sum) / f32(hw);
  var squares = 0.0;
  if (in_range) {
    for (var p = lane; p < hw; p += INSTANCE_LANES) {
      let d = x[base + p * channels] - mean;
      squares = fma(d, d, squares);
    }
  }
  let inv_std = inverseSqrt(lane_sum(local.x, lane, squares) / f32(hw) + instance_params.eps);
  if (!in_range) { return; }
  for (var p = lane; p < hw; p += INSTANCE_LANES) {
    let i = base + p * channels;
    instance_out[i] = activate((x[i] - mean) * inv_std);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn channel_affine(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= affine_params.count) { return; }
  let c = i % affine_params.channels;
  affine_out[i] = activate(fma(x[i], affine_scale[c], affine_shift[c]));
}
