// The optimiser step of MAMBAAD.md §10: global-norm gradient clipping (timm dispatch_clip_grad, mode 'norm') and
// AdamW (torch.optim.AdamW, amsgrad off), with every coefficient computed on the GPU so a step never reads back.
//
// One step over P parameter tensors:
//   1. sum_of_squares once per tensor: norms[slot] = Σ g²               (one workgroup per tensor)
//   2. clip_coefficient:  coef = min(1, max_norm / (sqrt(Σ norms) + 1e-6))   (torch.nn.utils.clip_grad_norm_)
//   3. adamw_step once per tensor, with g scaled by coef.

override WORKGROUP_SIZE: u32 = 256;

struct ReduceParams {
  count: u32,
  slot: u32,
}

struct ClipParams {
  tensors: u32,
  max_norm: f32,
}

struct AdamWParams {
  count: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  // 1 - beta computed in float64 and rounded once, as torch does (1 - 0.999 in f32 is off by 1.3e-5 relative).
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  eps: f32,
  weight_decay: f32,
  // 1 - beta1^t and sqrt(1 - beta2^t), from the step number t (1-based), computed in float64 on the CPU.
  bias_correction1: f32,
  bias_correction2_sqrt: f32,
}

@group(0) @binding(0) var<uniform> reduce_params: ReduceParams;
@group(0) @binding(1) var<storage, read> reduce_input: array<f32>;
@group(0) @binding(2) var<storage, read_write> reduce_norms: array<f32>;

var<workgroup> partial_sums: array<f32, WORKGROUP_SIZE>;

// A single workgroup strides over the tensor, then a tree reduction: deterministic, so a step is reproducible.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_of_squares(@builtin(local_invocation_index) local: u32) {
  var sum = 0.0;
  for (var i = local; i < reduce_params.count; i += WORKGROUP_SIZE) {
    let g = reduce_input[i];
    sum = fma(g, g, sum);
  }
  partial_sums[local] = sum;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (local < stride) { partial_sums[local] += partial_sums[local + stride]; }
    workgroupBarrier();
  }
  if (local == 0u) { reduce_norms[reduce_params.slot] = partial_sums[0]; }
}

@group(0) @binding(0) var<uniform> clip_params: ClipParams;
@group(0) @binding(1) var<storage, read> clip_norms: array<f32>;
// [0]: the clip coefficient, [1]: the total norm before clipping (for logging)
@group(0) @binding(2) var<storage, read_write> clip_result: array<f32>;

@compute @workgroup_size(1)
fn clip_coefficient() {
  var total = 0.0;
  for (var i = 0u; i < clip_params.tensors; i++) { total += clip_norms[i]; }
  let norm = sqrt(total);
  clip_result[0] = min(1.0, clip_params.max_norm / (norm + 1e-6));
  clip_result[1] = norm;
}

@group(0) @binding(0) var<uniform> adam: AdamWParams;
@group(0) @binding(1) var<storage, read> adam_grad: array<f32>;
@group(0) @binding(2) var<storage, read> adam_clip: array<f32>;
@group(0) @binding(3) var<storage, read_write> adam_param: array<f32>;
@group(0) @binding(4) var<storage, read_write> adam_m: array<f32>;
@group(0) @binding(5) var<storage, read_write> adam_v: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= adam.count) { return; }
  let g = adam_grad[i] * adam_clip[0];
  // Decoupled weight decay first, as torch does (p *= 1 - lr·wd).
  var p = adam_param[i] * (1.0 - adam.lr * adam.weight_decay);
  let m = adam.beta1 * adam_m[i] + adam.one_minus_beta1 * g;
  let v = adam.beta2 * adam_v[i] + adam.one_minus_beta2 * g * g;
  let denom = sqrt(v) / adam.bias_correction2_sqrt + adam.eps;
  p -= (adam.lr / adam.bias_correction1) * m / denom;
  adam_param[i] = p;
  adam_m[i] = m;
  adam_v[i] = v;
}
