// Data movement between layouts, f32. No arithmetic: every output is one input value.
//
// transpose: [B, R, S] -> [B, S, R] (NCHW <-> NHWC with (R, S) = (C, H·W) or (H·W, C)), one thread per output
//   element: the writes are contiguous, the reads strided. A tiled transpose through workgroup memory was 50x slower
//   on SwiftShader (a barrier per 256 elements) and would save little on a real GPU for a once-per-image copy.
// patch_expand: PatchExpand2D's pixel shuffle, [B, H, W, 4·dim] -> [B, 2H, 2W, dim] with
//   out[b, 2h + p1, 2w + p2, c] = in[b, h, w, p1·2·dim + p2·dim + c].
// patch_expand_backward: the inverse permutation, [B, 2H, 2W, dim] -> [B, H, W, 4·dim], one thread per output element:
//   the gradient of patch_expand's input. (transpose is its own backward with rows and cols swapped, copy_channels
//   the backward of a concatenation block by block.)
// copy_channels: out[row, dst_offset + c] = in[row, src_offset + c] for c < count, rows src_stride / dst_stride apart:
//   one input's block of a channel concatenation, or a channel slice.

override WORKGROUP_SIZE: u32 = 256;

struct TransposeParams {
  count: u32,
  rows: u32,
  cols: u32,
}

struct PatchExpandParams {
  count: u32,
  h: u32,
  w: u32,
  dim: u32,
}

struct CopyChannelsParams {
  count: u32,
  channels: u32,
  src_stride: u32,
  src_offset: u32,
  dst_stride: u32,
  dst_offset: u32,
}

@group(0) @binding(0) var<uniform> transpose_params: TransposeParams;
@group(0) @binding(0) var<uniform> expand_params: PatchExpandParams;
@group(0) @binding(0) var<uniform> copy_params: CopyChannelsParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

fn linear_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn transpose(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= transpose_params.count) { return; }
  let rows = transpose_params.rows;
  let cols = transpose_params.cols;
  let matrix = i / (rows * cols);
  let row = i % rows; // output [col, row]
  let col = (i / rows) % cols;
  output[i] = input[(matrix * rows + row) * cols + col];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn patch_expand(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= expand_params.count) { return; }
  let dim = expand_params.dim;
  let w = expand_params.w;
  let h = expand_params.h;
  let c = i % dim;
  let ox = (i / dim) % (2u * w);
  let oy = (i / (dim * 2u * w)) % (2u * h);
  let b = i / (dim * 4u * w * h);
  let pixel = (b * h + oy / 2u) * w + ox / 2u;
  output[i] = input[pixel * 4u * dim + ((oy % 2u) * 2u + ox % 2u) * dim + c];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn patch_expand_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= expand_params.count) { return; }
  let dim = expand_params.dim;
  let w = expand_params.w;
  let h = expand_params.h;
  let channel = i % (4u * dim);
  let pixel = i / (4u * dim);
  let block = channel / dim; // p1 · 2 + p2
  let x = pixel % w;
  let y = (pixel / w) % h;
  let b = pixel / (w * h);
  let oy = 2u * y + block / 2u;
  let ox = 2u * x + block % 2u;
  output[i] = input[((b * 2u * h + oy) * 2u * w + ox) * dim + channel % dim];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy_channels(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= copy_params.count) { return; }
  let c = i % copy_params.channels;
  let row = i / copy_params.channels;
  output[row * copy_params.dst_stride + copy_params.dst_offset + c] =
    input[row * copy_params.src_stride + copy_params.src_offset + c];
}
