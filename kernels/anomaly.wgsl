// The anomaly map (MAMBAAD.md §11, ADer cal_anomaly_map): cosine distance per scale, bilinear resize with
// per-axis tap tables, scale sum, separable Gaussian blur with scipy's 'reflect' borders, per-image max.
// Inference only: there are no backward entry points.

override WORKGROUP_SIZE: u32 = 256;
// Threads that share one pixel's channel reduction in cosine_distance (a power of two).
override REDUCE_SIZE: u32 = 64;

fn linear_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// ---- cosine_distance: m[p] = 1 - cos(f[p, :], d[p, :]) for NHWC features, one workgroup per pixel ----

struct CosineParams {
  pixels: u32,
  channels: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> cosine: CosineParams;
@group(0) @binding(1) var<storage, read> cosine_f: array<f32>;
@group(0) @binding(2) var<storage, read> cosine_d: array<f32>;
@group(0) @binding(3) var<storage, read_write> cosine_out: array<f32>;

// (Σ f·f, Σ d·d, Σ f·d) partial sums of the workgroup's threads.
var<workgroup> partial_sums: array<vec3f, REDUCE_SIZE>;

@compute @workgroup_size(REDUCE_SIZE)
fn cosine_distance(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let pixel = wid.x + wid.y * groups.x;
  // Uniform per workgroup, so the barriers below stay in uniform control flow.
  let in_range = pixel < cosine.pixels;
  var sums = vec3f(0.0);
  if (in_range) {
    let base = pixel * cosine.channels;
    // Adjacent threads read adjacent channels; each keeps a short strided partial sum.
    for (var c = lane; c < cosine.channels; c += REDUCE_SIZE) {
      let x = cosine_f[base + c];
      let y = cosine_d[base + c];
      sums += vec3f(x * x, y * y, x * y);
    }
  }
  partial_sums[lane] = sums;
  // Pairwise tree: the rounding error grows with log2(REDUCE_SIZE), not with the channel count.
  for (var stride = REDUCE_SIZE / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lane < stride) {
      partial_sums[lane] += partial_sums[lane + stride];
    }
  }
  if (in_range && lane == 0u) {
    let total = partial_sums[0];
    // Modern torch: <x/max(|x|,eps), y/max(|y|,eps)>, each norm clamped on its own.
    let norms = max(sqrt(total.x), cosine.eps) * max(sqrt(total.y), cosine.eps);
    cosine_out[pixel] = 1.0 - total.z / norms;
  }
}

// ---- resize: bilinear [B, in_h, in_w] -> [B, out_h, out_w] from tap tables ----

struct ResizeParams {
  batch: u32,
  in_height: u32,
  in_width: u32,
  out_height: u32,
  out_width: u32,
  // resize_accumulate only: 0 starts the sum, 1 adds to it; the result is then divided by `divisor`.
  accumulate: u32,
  divisor: f32,
}

// One entry per output row (out_height entries) followed by one per output column (out_width entries).
struct Tap {
  index0: u32,
  index1: u32,
  weight0: f32,
  weight1: f32,
}

@group(0) @binding(0) var<uniform> resize_params: ResizeParams;
@group(0) @binding(1) var<storage, read> resize_taps: array<Tap>;
@group(0) @binding(2) var<storage, read> resize_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> resized: array<f32>;
@group(0) @binding(4) var<storage, read_write> scale_sum: array<f32>;

// Returns the resized value at flat output index i (i < batch * out_height * out_width).
fn bilinear(i: u32) -> f32 {
  let p = resize_params;
  let x = i % p.out_width;
  let y = (i / p.out_width) % p.out_height;
  let b = i / (p.out_width * p.out_height);
  let row = resize_taps[y];
  let col = resize_taps[p.out_height + x];
  let plane = b * p.in_height * p.in_width;
  let row0 = plane + row.index0 * p.in_width;
  let row1 = plane + row.index1 * p.in_width;
  // torch's CPU order: interpolate along x within each source row, then along y.
  let top = resize_in[row0 + col.index0] * col.weight0 + resize_in[row0 + col.index1] * col.weight1;
  let bottom = resize_in[row1 + col.index0] * col.weight0 + resize_in[row1 + col.index1] * col.weight1;
  return top * row.weight0 + bottom * row.weight1;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn resize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= resize_params.batch * resize_params.out_height * resize_params.out_width) { return; }
  resized[i] = bilinear(i);
}

// Writes the upsampled scale and folds it into the running sum (ADer: anomaly_map += a_map; then /= divisor).
@compute @workgroup_size(WORKGROUP_SIZE)
fn resize_accumulate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= resize_params.batch * resize_params.out_height * resize_params.out_width) { return; }
  let value = bilinear(i);
  resized[i] = value;
  let previous = select(0.0, scale_sum[i], resize_params.accumulate != 0u);
  scale_sum[i] = (previous + value) / resize_params.divisor;
}

// ---- gaussian_blur: one axis of scipy.ndimage.gaussian_filter (correlate1d, mode 'reflect') ----

struct BlurParams {
  batch: u32,
  height: u32,
  width: u32,
  // 0: along axis 0 (down the rows of each column), 1: along axis 1.
  axis: u32,
  radius: u32,
}

@group(0) @binding(0) var<uniform> blur: BlurParams;
// The 2 * radius + 1 normalised weights, centre at index radius.
@group(0) @binding(1) var<storage, read> blur_weights: array<f32>;
@group(0) @binding(2) var<storage, read> blur_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> blur_out: array<f32>;

// Half-sample symmetric extension (d c b a | a b c d), periodic with period 2n: a line shorter than the radius
// reflects again, as scipy's NI_ExtendLine does.
fn reflect_index(index: i32, size: i32) -> i32 {
  let period = 2 * size;
  let m = ((index % period) + period) % period;
  return select(period - 1 - m, m, m < size);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gaussian_blur(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= blur.batch * blur.height * blur.width) { return; }
  let x = i % blur.width;
  let y = (i / blur.width) % blur.height;
  let plane = i - y * blur.width - x;
  var line_start: u32;
  var stride: u32;
  var size: u32;
  var position: u32;
  if (blur.axis == 0u) {
    line_start = plane + x;
    stride = blur.width;
    size = blur.height;
    position = y;
  } else {
    line_start = plane + y * blur.width;
    stride = 1u;
    size = blur.width;
    position = x;
  }
  let r = i32(blur.radius);
  let n = i32(size);
  let p = i32(position);
  // The kernel is symmetric: pair the taps at -k and +k, as scipy's symmetric correlate1d does.
  var sum = blur_in[line_start + position * stride] * blur_weights[blur.radius];
  for (var k = 1; k <= r; k++) {
    let before = blur_in[line_start + u32(reflect_index(p - k, n)) * stride];
    let after = blur_in[line_start + u32(reflect_index(p + k, n)) * stride];
    sum += (before + after) * blur_weights[blur.radius + u32(k)];
  }
  blur_out[i] = sum;
}

// ---- image_max: scores[b] = max over image b's map, one workgroup per image ----
// An image whose map holds a NaN or an infinity scores NaN, so the caller can reject it: WGSL's max() may drop NaNs,
// and compilers may fold `x != x` away, so non-finite values are found from their exponent bits.

struct MaxParams {
  batch: u32,
  per_image: u32,
}

@group(0) @binding(0) var<uniform> max_params: MaxParams;
@group(0) @binding(1) var<storage, read> max_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> max_out: array<f32>;

var<workgroup> partial_max: array<f32, WORKGROUP_SIZE>;
var<workgroup> image_non_finite: atomic<u32>;

const EXPONENT_BITS = 0x7f800000u;
const QUIET_NAN_BITS = 0x7fc00000u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn image_max(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let image = wid.x + wid.y * groups.x;
  let in_range = image < max_params.batch;
  // The lowest finite f32; every image has at least one pixel, so lanes that saw none never win.
  var best = -3.4028234663852886e38;
  var non_finite = false;
  if (in_range) {
    let base = image * max_params.per_image;
    for (var j = lane; j < max_params.per_image; j += WORKGROUP_SIZE) {
      let value = max_in[base + j];
      non_finite = non_finite || (bitcast<u32>(value) & EXPONENT_BITS) == EXPONENT_BITS;
      best = max(best, value);
    }
  }
  partial_max[lane] = best;
  if (non_finite) {
    atomicOr(&image_non_finite, 1u);
  }
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lane < stride) {
      partial_max[lane] = max(partial_max[lane], partial_max[lane + stride]);
    }
  }
  // Every atomicOr above precedes the first barrier.
  let any_non_finite = atomicLoad(&image_non_finite) != 0u;
  if (in_range && lane == 0u) {
    // Through a variable: WGSL rejects NaN in a constant expression.
    var nan_bits = QUIET_NAN_BITS;
    max_out[image] = select(partial_max[0], bitcast<f32>(nan_bits), any_non_finite);
  }
}
