// 2-D convolutions on channels-last (NHWC) activations with PyTorch's OIHW weights, f32.
//
// conv2d (groups = 1) is an implicit GEMM: out[p, o] = Σ_{ky,kx,ci} in[b, oy·s - pad + ky, ox·s - pad + kx, ci] ·
// w[o, ci, ky, kx] with p = (b, oy, ox) the output position. Like kernels/matmul.wgsl each workgroup of 16x16 threads
// computes a 64 positions x 64 output channels tile, each thread a 4x4 block; the reduction walks the k·k taps and,
// per tap, the input channels in slices of 16 through workgroup memory. Out-of-image taps (padding) and ragged edges
// load zeros and are masked on store, so no size needs to be a multiple of anything.
//
// depthwise_conv2d (groups = channels, stride 1, pad k/2): one thread per output element, channels fastest so
// neighbouring threads read neighbouring addresses. It may read a window of channels of a wider input (SS2D's conv
// branch is the first half of in_proj's output) through in_pixel_stride / in_channel_offset.
//
// HAS_BIAS adds bias[o]; without it the bias binding still has to be filled (any buffer: it is never read).

override HAS_BIAS: bool = false;
override RELU: bool = false;
override SILU: bool = false;
override WORKGROUP_SIZE: u32 = 256;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;
const ROWS_PER_THREAD: u32 = TILE * TILE_K / THREADS;

struct ConvParams {
  batch: u32,
  in_h: u32,
  in_w: u32,
  in_c: u32,
  out_h: u32,
  out_w: u32,
  out_c: u32,
  kernel: u32,
  stride: u32,
  padding: u32,
}

struct DepthwiseParams {
  count: u32,
  h: u32,
  w: u32,
  channels: u32,
  kernel: u32,
  in_pixel_stride: u32,
  in_channel_offset: u32,
}

@group(0) @binding(0) var<uniform> conv: ConvParams;
@group(0) @binding(0) var<uniform> dw: DepthwiseParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

var<workgroup> tile_in: array<f32, 1024>; // [TILE_K][TILE]: tile_in[kk * TILE + position]
var<workgroup> tile_w: array<f32, 1024>; // [TILE_K][TILE]: tile_w[kk * TILE + out channel]

fn activate(v: f32) -> f32 {
  if (RELU) { return max(v, 0.0); }
  if (SILU) { return v / (1.0 + exp(-v)); }
  return v;
}

@compute @workgroup_size(16, 16)
fn conv2d(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let positions = conv.batch * conv.out_h * conv.out_w;
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  let thread = local.y * 16u + local.x;
  let taps = conv.kernel * conv.kernel;
  let kk_load = thread % TILE_K;

  // The positions this thread loads stay the same for every tap and channel slice: decode them once.
  var pixel_base: array<u32, ROWS_PER_THREAD>; // offset of (b, 0, 0, 0) in the input
  var top: array<i32, ROWS_PER_THREAD>; // input row of tap ky = 0
  var left: array<i32, ROWS_PER_THREAD>; // input column of tap kx = 0
  var inside: array<bool, ROWS_PER_THREAD>;
  for (var i = 0u; i < ROWS_PER_THREAD; i++) {
    let p = row0 + thread / TILE_K + i * (THREADS / TILE_K);
    inside[i] = p < positions;
    let ox = p % conv.out_w;
    let oy = (p / conv.out_w) % conv.out_h;
    let b = p / (conv.out_w * conv.out_h);
    pixel_base[i] = b * conv.in_h * conv.in_w * conv.in_c;
    top[i] = i32(oy * conv.stride) - i32(conv.padding);
    left[i] = i32(ox * conv.stride) - i32(conv.padding);
  }

  var acc: array<array<f32, 4>, 4>;
  for (var tap = 0u; tap < taps; tap++) {
    let ky = i32(tap / conv.kernel);
    let kx = i32(tap % conv.kernel);
    for (var c0 = 0u; c0 < conv.in_c; c0 += TILE_K) {
      let ci = c0 + kk_load;
      for (var i = 0u; i < ROWS_PER_THREAD; i++) {
        let y = top[i] + ky;
        let x = left[i] + kx;
        var v = 0.0;
        if (inside[i] && ci < conv.in_c && y >= 0 && y < i32(conv.in_h) && x >= 0 && x < i32(conv.in_w)) {
          v = input[pixel_base[i] + (u32(y) * conv.in_w + u32(x)) * conv.in_c + ci];
        }
        tile_in[kk_load * TILE + thread / TILE_K + i * (THREADS / TILE_K)] = v;
      }
      for (var i = 0u; i < ROWS_PER_THREAD; i++) {
        let col = thread / TILE_K + i * (THREADS / TILE_K);
        var v = 0.0;
        if (col0 + col < conv.out_c && ci < conv.in_c) {
          v = weight[((col0 + col) * conv.in_c + ci) * taps + tap];
        }
        tile_w[kk_load * TILE + col] = v;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < TILE_K; kk++) {
        var col_in: array<f32, 4>;
        var row_w: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
          col_in[i] = tile_in[kk * TILE + local.y * 4u + i];
          row_w[i] = tile_w[kk * TILE + local.x * 4u + i];
        }
        for (var i = 0u; i < 4u; i++) {
          for (var j = 0u; j < 4u; j++) {
            acc[i][j] = fma(col_in[i], row_w[j], acc[i][j]);
          }
        }
      }
      workgroupBarrier();
    }
  }

  for (var i = 0u; i < 4u; i++) {
    let p = row0 + local.y * 4u + i;
    if (p >= positions) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let o = col0 + local.x * 4u + j;
      if (o < conv.out_c) {
        var v = acc[i][j];
        if (HAS_BIAS) { v += bias[o]; }
        output[p * conv.out_c + o] = activate(v);
      }
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn depthwise_conv2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (index >= dw.count) { return; }
  let c = index % dw.channels;
  let pixel = index / dw.channels;
  let x = pixel % dw.w;
  let y = (pixel / dw.w) % dw.h;
  let image_base = (pixel - y * dw.w - x) * dw.in_pixel_stride + dw.in_channel_offset + c;
  let half = i32(dw.kernel / 2u);
  var acc = 0.0;
  for (var ky = 0u; ky < dw.kernel; ky++) {
    let sy = i32(y) + i32(ky) - half;
    if (sy < 0 || sy >= i32(dw.h)) { continue; }
    for (var kx = 0u; kx < dw.kernel; kx++) {
      let sx = i32(x) + i32(kx) - half;
      if (sx < 0 || sx >= i32(dw.w)) { continue; }
      let v = input[image_base + (u32(sy) * dw.w + u32(sx)) * dw.in_pixel_stride];
      acc = fma(v, weight[(c * dw.kernel + ky) * dw.kernel + kx], acc);
    }
  }
  if (HAS_BIAS) { acc += bias[c]; }
  output[index] = activate(acc);
}

// ---- backward ----
//
// Both take dy, the gradient of the convolution's output before any fused activation: the caller undoes ReLU / SiLU
// first (ops/conv.ts does, from the forward's output or a recomputed pre-activation).
//
// conv2d_backward_input: dx[q, ci] = Σ_{ky,kx,o} dy[b, oy, ox, o] · w[o, ci, ky, kx] over the output pixels with
//   oy·s - pad + ky = y (and likewise x), an implicit GEMM like conv2d: 64 input positions x 64 input channels per
//   workgroup, the reduction over taps and output channels in slices of 16. At stride 2 three taps in four miss for a
//   given pixel and load zeros: simple, and these layers (MFF_OCE's) are a small share of training.
// conv2d_backward_weight: dW[o, ci, ky, kx] = Σ_p dy[p, o] · in[b, oy·s - pad + ky, ox·s - pad + kx, ci]: 64 output
//   x 64 input channels of one tap per workgroup (z = split · taps + tap), the reduction over the output positions of
//   one split (split_positions each); splits write partial weights one weight size apart for a column sum.
// depthwise_backward_input: dx = Σ_taps dy[y - ky + k/2, x - kx + k/2, c] · w[c, ky, kx], one thread per element,
//   written at in_pixel_stride / in_channel_offset (a channel window of a wider gradient, like the forward's input).
// depthwise_backward_weight: dW[c, tap] = Σ_p dy[p, c] · in[p shifted by the tap, c]: 16 channels x 16 lanes per
//   workgroup for one tap and one chunk of rows_per_chunk positions (x = channel block, y = tap, z = chunk), a tree
//   over the lanes; chunks write partial weights one weight size apart for a column sum.

struct ConvBackwardParams {
  batch: u32,
  in_h: u32,
  in_w: u32,
  in_c: u32,
  out_h: u32,
  out_w: u32,
  out_c: u32,
  kernel: u32,
  stride: u32,
  padding: u32,
  split_positions: u32,
}

struct DepthwiseBackwardParams {
  positions: u32,
  h: u32,
  w: u32,
  channels: u32,
  kernel: u32,
  in_pixel_stride: u32,
  in_channel_offset: u32,
  rows_per_chunk: u32,
}

@group(0) @binding(0) var<uniform> grad_params: ConvBackwardParams;
@group(0) @binding(0) var<uniform> dw_grad_params: DepthwiseBackwardParams;
// *_backward_input: dy, weight (above), dx.
@group(0) @binding(1) var<storage, read> input_grad_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> input_grad: array<f32>;
// *_backward_weight: input (above), dy, dW or its partials.
@group(0) @binding(2) var<storage, read> weight_grad_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> weight_grad: array<f32>;

const LANES: u32 = 16u;
var<workgroup> lane_partial: array<f32, 256>; // [LANES][16 channels]

@compute @workgroup_size(16, 16)
fn conv2d_backward_input(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let positions = grad_params.batch * grad_params.in_h * grad_params.in_w;
  let stride = i32(grad_params.stride);
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  let thread = local.y * 16u + local.x;
  let taps = grad_params.kernel * grad_params.kernel;
  let kk_load = thread % TILE_K;

  var pixel_base: array<u32, ROWS_PER_THREAD>; // offset of (b, 0, 0, 0) in dy
  var down: array<i32, ROWS_PER_THREAD>; // y + padding: oy·stride + ky for the output rows this pixel feeds
  var across: array<i32, ROWS_PER_THREAD>; // x + padding
  var inside: array<bool, ROWS_PER_THREAD>;
  for (var i = 0u; i < ROWS_PER_THREAD; i++) {
    let p = row0 + thread / TILE_K + i * (THREADS / TILE_K);
    inside[i] = p < positions;
    let x = p % grad_params.in_w;
    let y = (p / grad_params.in_w) % grad_params.in_h;
    let b = p / (grad_params.in_w * grad_params.in_h);
    pixel_base[i] = b * grad_params.out_h * grad_params.out_w * grad_params.out_c;
    down[i] = i32(y + grad_params.padding);
    across[i] = i32(x + grad_params.padding);
  }

  var acc: array<array<f32, 4>, 4>;
  for (var tap = 0u; tap < taps; tap++) {
    let ky = i32(tap / grad_params.kernel);
    let kx = i32(tap % grad_params.kernel);
    for (var c0 = 0u; c0 < grad_params.out_c; c0 += TILE_K) {
      let o = c0 + kk_load;
      for (var i = 0u; i < ROWS_PER_THREAD; i++) {
        let ty = down[i] - ky;
        let tx = across[i] - kx;
        var v = 0.0;
        if (inside[i] && o < grad_params.out_c && ty >= 0 && tx >= 0 && ty % stride == 0 && tx % stride == 0) {
          let oy = u32(ty / stride);
          let ox = u32(tx / stride);
          if (oy < grad_params.out_h && ox < grad_params.out_w) {
            v = input_grad_dy[pixel_base[i] + (oy * grad_params.out_w + ox) * grad_params.out_c + o];
          }
        }
        tile_in[kk_load * TILE + thread / TILE_K + i * (THREADS / TILE_K)] = v;
      }
      for (var i = 0u; i < ROWS_PER_THREAD; i++) {
        let col = thread / TILE_K + i * (THREADS / TILE_K);
        var v = 0.0;
        if (col0 + col < grad_params.in_c && o < grad_params.out_c) {
          v = weight[(o * grad_params.in_c + col0 + col) * taps + tap];
        }
        tile_w[kk_load * TILE + col] = v;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < TILE_K; kk++) {
        var col_dy: array<f32, 4>;
        var row_w: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
          col_dy[i] = tile_in[kk * TILE + local.y * 4u + i];
          row_w[i] = tile_w[kk * TILE + local.x * 4u + i];
        }
        for (var i = 0u; i < 4u; i++) {
          for (var j = 0u; j < 4u; j++) {
            acc[i][j] = fma(col_dy[i], row_w[j], acc[i][j]);
          }
        }
      }
      workgroupBarrier();
    }
  }

  for (var i = 0u; i < 4u; i++) {
    let p = row0 + local.y * 4u + i;
    if (p >= positions) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let ci = col0 + local.x * 4u + j;
      if (ci < grad_params.in_c) {
        input_grad[p * grad_params.in_c + ci] = acc[i][j];
      }
    }
  }
}

@compute @workgroup_size(16, 16)
fn conv2d_backward_weight(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let taps = grad_params.kernel * grad_params.kernel;
  let tap = group.z % taps;
  let split = group.z / taps;
  let ky = i32(tap / grad_params.kernel);
  let kx = i32(tap % grad_params.kernel);
  let positions = grad_params.batch * grad_params.out_h * grad_params.out_w;
  let k_begin = split * grad_params.split_positions;
  let k_end = min(positions, k_begin + grad_params.split_positions);
  let row0 = group.y * TILE; // output channels
  let col0 = group.x * TILE; // input channels
  let thread = local.y * 16u + local.x;

  var acc: array<array<f32, 4>, 4>;
  for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
    // Consecutive threads load consecutive channels of one position.
    for (var i = 0u; i < ROWS_PER_THREAD; i++) {
      let e = thread + i * THREADS;
      let kk = e / TILE;
      let j = e % TILE;
      let q = k0 + kk;
      var g = 0.0;
      var v = 0.0;
      if (q < k_end) {
        if (row0 + j < grad_params.out_c) {
          g = weight_grad_dy[q * grad_params.out_c + row0 + j];
        }
        let ox = q % grad_params.out_w;
        let oy = (q / grad_params.out_w) % grad_params.out_h;
        let b = q / (grad_params.out_w * grad_params.out_h);
        let y = i32(oy * grad_params.stride) - i32(grad_params.padding) + ky;
        let x = i32(ox * grad_params.stride) - i32(grad_params.padding) + kx;
        if (col0 + j < grad_params.in_c && y >= 0 && y < i32(grad_params.in_h) && x >= 0 &&
            x < i32(grad_params.in_w)) {
          v = input[((b * grad_params.in_h + u32(y)) * grad_params.in_w + u32(x)) * grad_params.in_c + col0 + j];
        }
      }
      tile_in[kk * TILE + j] = g; // [kk][output channel]
      tile_w[kk * TILE + j] = v; // [kk][input channel]
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var col_g: array<f32, 4>;
      var row_in: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        col_g[i] = tile_in[kk * TILE + local.y * 4u + i];
        row_in[i] = tile_w[kk * TILE + local.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(col_g[i], row_in[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  let base = split * grad_params.out_c * grad_params.in_c * taps;
  for (var i = 0u; i < 4u; i++) {
    let o = row0 + local.y * 4u + i;
    if (o >= grad_params.out_c) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let ci = col0 + local.x * 4u + j;
      if (ci < grad_params.in_c) {
        weight_grad[base + (o * grad_params.in_c + ci) * taps + tap] = acc[i][j];
      }
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn depthwise_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let index = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  let channels = dw_grad_params.channels;
  if (index >= dw_grad_params.positions * channels) { return; }
  let c = index % channels;
  let pixel = index / channels;
  let x = pixel % dw_grad_params.w;
  let y = (pixel / dw_grad_params.w) % dw_grad_params.h;
  let image_base = (pixel - y * dw_grad_params.w - x) * channels + c;
  let k = dw_grad_params.kernel;
  let half = i32(k / 2u);
  var acc = 0.0;
  for (var ky = 0u; ky < k; ky++) {
    let sy = i32(y) - i32(ky) + half;
    if (sy < 0 || sy >= i32(dw_grad_params.h)) { continue; }
    for (var kx = 0u; kx < k; kx++) {
      let sx = i32(x) - i32(kx) + half;
      if (sx < 0 || sx >= i32(dw_grad_params.w)) { continue; }
      let g = input_grad_dy[image_base + (u32(sy) * dw_grad_params.w + u32(sx)) * channels];
      acc = fma(g, weight[(c * k + ky) * k + kx], acc);
    }
  }
  input_grad[pixel * dw_grad_params.in_pixel_stride + dw_grad_params.in_channel_offset + c] = acc;
}

@compute @workgroup_size(16, LANES)
fn depthwise_backward_weight(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let channels = dw_grad_params.channels;
  let c = group.x * 16u + local.x;
  let lane = local.y;
  let tap = group.y;
  let k = dw_grad_params.kernel;
  let shift_y = i32(tap / k) - i32(k / 2u);
  let shift_x = i32(tap % k) - i32(k / 2u);
  let begin = group.z * dw_grad_params.rows_per_chunk;
  let end = min(dw_grad_params.positions, begin + dw_grad_params.rows_per_chunk);
  var sum = 0.0;
  if (c < channels) {
    for (var p = begin + lane; p < end; p += LANES) {
      let sy = i32((p / dw_grad_params.w) % dw_grad_params.h) + shift_y;
      let sx = i32(p % dw_grad_params.w) + shift_x;
      if (sy < 0 || sy >= i32(dw_grad_params.h) || sx < 0 || sx >= i32(dw_grad_params.w)) { continue; }
      let source = u32(i32(p) + shift_y * i32(dw_grad_params.w) + shift_x);
      let v = input[source * dw_grad_params.in_pixel_stride + dw_grad_params.in_channel_offset + c];
      sum = fma(weight_grad_dy[p * channels + c], v, sum);
    }
  }
  // Threads past the last channel still reach every barrier.
  lane_partial[lane * 16u + local.x] = sum;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      lane_partial[lane * 16u + local.x] += lane_partial[(lane + stride) * 16u + local.x];
    }
    workgroupBarrier();
  }
  if (lane == 0u && c < channels) {
    weight_grad[group.z * channels * k * k + c * k * k + tap] = lane_partial[local.x];
  }
}
