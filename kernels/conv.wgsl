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
