// The training loss of MAMBAAD.md §10: loss = Σ_scales weight · mean((f − d)²) with weight 5, on the raw encoder
// features f and the decoder outputs d (both NHWC, same shape per scale), and its gradient with respect to d.

override WORKGROUP_SIZE: u32 = 256;

struct MseParams {
  count: u32,
  slot: u32,
  // weight / count: the derivative of weight · mean(·) is 2 · scale · (d − f).
  scale: f32,
}

@group(0) @binding(0) var<uniform> mse: MseParams;
@group(0) @binding(1) var<storage, read> mse_features: array<f32>;
@group(0) @binding(2) var<storage, read> mse_decoded: array<f32>;
@group(0) @binding(3) var<storage, read_write> mse_terms: array<f32>; // one weighted mean per scale
@group(0) @binding(4) var<storage, read_write> mse_grad: array<f32>; // d loss / d decoded

var<workgroup> partial_sums: array<f32, WORKGROUP_SIZE>;

// One workgroup per scale: writes the gradient and reduces Σ (d − f)² deterministically.
@compute @workgroup_size(WORKGROUP_SIZE)
fn mse_forward_backward(@builtin(local_invocation_index) local: u32) {
  var sum = 0.0;
  for (var i = local; i < mse.count; i += WORKGROUP_SIZE) {
    let diff = mse_decoded[i] - mse_features[i];
    mse_grad[i] = 2.0 * mse.scale * diff;
    sum = fma(diff, diff, sum);
  }
  partial_sums[local] = sum;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
    if (local < stride) { partial_sums[local] += partial_sums[local + stride]; }
    workgroupBarrier();
  }
  if (local == 0u) { mse_terms[mse.slot] = partial_sums[0] * mse.scale; }
}
