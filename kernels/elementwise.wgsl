// Element-wise ops on flat f32 arrays, forward and backward side by side.
// Dispatch 1-D over `count` elements; GpuRuntime.workgroupsFor splits large counts over x and y.

override WORKGROUP_SIZE: u32 = 256;

struct Params {
  count: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// Unary ops: y = f(x).
@group(0) @binding(1) var<storage, read> unary_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> unary_y: array<f32>;

// Binary ops: out = f(a, b). Backward ops read (dy, x) the same way and write dx.
@group(0) @binding(1) var<storage, read> binary_a: array<f32>;
@group(0) @binding(2) var<storage, read> binary_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> binary_out: array<f32>;

fn linear_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= params.count) { return; }
  unary_y[i] = max(unary_x[i], 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn silu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= params.count) { return; }
  let x = unary_x[i];
  unary_y[i] = x * sigmoid(x);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= params.count) { return; }
  binary_out[i] = binary_a[i] + binary_b[i];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= params.count) { return; }
  binary_out[i] = binary_a[i] * binary_b[i];
}

// dx = dy * (x > 0)
@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= params.count) { return; }
  binary_out[i] = select(0.0, binary_a[i], binary_b[i] > 0.0);
}

// dx = dy * s(x) * (1 + x * (1 - s(x)))
@compute @workgroup_size(WORKGROUP_SIZE)
fn silu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = linear_index(gid, groups);
  if (i >= params.count) { return; }
  let x = binary_b[i];
  let s = sigmoid(x);
  binary_out[i] = binary_a[i] * s * (1.0 + x * (1.0 - s));
}
