// Reductions for the backward pass, f32.
//
// column_sum: out[chunk, c] = Σ_{r in chunk} in[r, c] over a row-major [rows, columns] matrix: a bias gradient (the
//   column sums of dy over every position), or the sum of the partial results that a chunked reduction wrote as
//   [chunks, values]. A workgroup covers 16 columns of one chunk of rows_per_chunk rows, 16 lanes per column striding
//   over its rows (neighbouring threads read neighbouring columns), then a tree through workgroup memory. With one
//   chunk the result is final; with more, a second dispatch sums the chunks: deterministic, no float atomics, and a
//   long reduction still spreads over many workgroups.

struct ColumnSumParams {
  rows: u32,
  columns: u32,
  rows_per_chunk: u32,
}

@group(0) @binding(0) var<uniform> params: ColumnSumParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

const COLUMNS: u32 = 16u;
const LANES: u32 = 16u;

var<workgroup> partial: array<f32, 256>; // [LANES][COLUMNS]

@compute @workgroup_size(COLUMNS, LANES)
fn column_sum(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u) {
  let column = group.x * COLUMNS + local.x;
  let lane = local.y;
  let begin = group.y * params.rows_per_chunk;
  let end = min(params.rows, begin + params.rows_per_chunk);
  var sum = 0.0;
  if (column < params.columns) {
    for (var r = begin + lane; r < end; r += LANES) {
      sum += input[r * params.columns + column];
    }
  }
  // Threads past the last column still reach every barrier.
  partial[lane * COLUMNS + local.x] = sum;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane * COLUMNS + local.x] += partial[(lane + stride) * COLUMNS + local.x];
    }
    workgroupBarrier();
  }
  if (lane == 0u && column < params.columns) {
    output[group.y * params.columns + column] = partial[local.x];
  }
}
