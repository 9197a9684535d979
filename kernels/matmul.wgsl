// Batched matrix multiply C[b] = op(A[b]) · op(B[b]) + bias, row-major, f32, where op transposes A with TRANSPOSE_A
// (A stored [k, m]: a weight gradient dW = dYᵀ·X reads dY in place) and B with TRANSPOSE_B (B stored [n, k]).
// 64x64 output tiles per workgroup of 16x16 threads, each thread a 4x4 block; K is walked in slices of 16 through
// workgroup memory. Edges are zero-padded on load and masked on store, so M, N, K need not be multiples of anything.
// Row strides (lda, ldb, ldc) and batch strides address sub-matrices in place, e.g. one direction's column block of a
// wider matrix; a batch stride of 0 broadcasts that operand (one weight matrix for every image).
// HAS_BIAS adds bias[col]; ACCUMULATE adds the product to what C holds (a fused residual add).
// Split K: workgroup z = batch · splits + split multiplies only k in [split · k_split, (split + 1) · k_split) and writes
// its partial product split_stride_c further on; the caller sums the partials (a weight gradient's k is every
// position of the batch, too long a reduction for the few output tiles). splits = 1, k_split = k is a plain product.

override TRANSPOSE_A: bool = false;
override TRANSPOSE_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;

struct Params {
  m: u32,
  n: u32,
  k: u32,
  lda: u32,
  ldb: u32,
  ldc: u32,
  batch_stride_a: u32,
  batch_stride_b: u32,
  batch_stride_c: u32,
  splits: u32,
  k_split: u32,
  split_stride_c: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>; // bound (one dummy value) even without HAS_BIAS

var<workgroup> tile_a: array<f32, 1024>; // [TILE_K][TILE]: tile_a[k * TILE + row]
var<workgroup> tile_b: array<f32, 1024>; // [TILE_K][TILE]: tile_b[k * TILE + col]

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let batch = group.z / params.splits;
  let split = group.z % params.splits;
  let k_begin = split * params.k_split;
  let k_end = min(params.k, k_begin + params.k_split);
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  let thread = local.y * 16u + local.x;
  let base_a = batch * params.batch_stride_a;
  let base_b = batch * params.batch_stride_b;

  var acc: array<array<f32, 4>, 4>;
  for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
    for (var i = 0u; i < TILE * TILE_K / THREADS; i++) {
      let e = thread + i * THREADS;
      var kk: u32;
      var row: u32;
      // Consecutive threads read consecutive addresses in either layout.
      if (TRANSPOSE_A) {
        kk = e / TILE;
        row = e % TILE;
      } else {
        row = e / TILE_K;
        kk = e % TILE_K;
      }
      var v = 0.0;
      if (row0 + row < params.m && k0 + kk < k_end) {
        if (TRANSPOSE_A) {
          v = a[base_a + (k0 + kk) * params.lda + row0 + row];
        } else {
          v = a[base_a + (row0 + row) * params.lda + k0 + kk];
        }
      }
      tile_a[kk * TILE + row] = v;
    }
    for (var i = 0u; i < TILE * TILE_K / THREADS; i++) {
      let e = thread + i * THREADS;
      var kk: u32;
      var col: u32;
      // Consecutive threads read consecutive addresses in either layout.
      if (TRANSPOSE_B) {
        col = e / TILE_K;
        kk = e % TILE_K;
      } else {
        kk = e / TILE;
        col = e % TILE;
      }
      var v = 0.0;
      if (k0 + kk < k_end && col0 + col < params.n) {
        if (TRANSPOSE_B) {
          v = b[base_b + (col0 + col) * params.ldb + k0 + kk];
        } else {
          v = b[base_b + (k0 + kk) * params.ldb + col0 + col];
        }
      }
      tile_b[kk * TILE + col] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var col_a: array<f32, 4>;
      var row_b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        col_a[i] = tile_a[kk * TILE + local.y * 4u + i];
        row_b[i] = tile_b[kk * TILE + local.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(col_a[i], row_b[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  let base_c = batch * params.batch_stride_c + split * params.split_stride_c;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + local.y * 4u + i;
    if (row >= params.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + local.x * 4u + j;
      if (col < params.n) {
        var value = acc[i][j];
        if (HAS_BIAS) { value += bias[col]; }
        let index = base_c + row * params.ldc + col;
        if (ACCUMULATE) { value += c[index]; }
        c[index] = value;
      }
    }
  }
}
