import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, type Tensor } from '../../gpu/tensor.ts';

/** kernels/elementwise.wgsl: one thread per element. */
const WORKGROUP_SIZE = 256;
const family = 'elementwise';

export type UnaryOp = 'relu' | 'silu';
export type BinaryOp = 'add' | 'mul' | 'relu_backward' | 'silu_backward';

function dispatchElementwise(runtime: GpuRuntime, op: UnaryOp | BinaryOp, buffers: Tensor[], count: number): void {
  runtime.dispatch({
    kernel: { family, entryPoint: op, constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(count),
    buffers,
    workgroups: runtime.workgroupsFor(count, WORKGROUP_SIZE),
  });
}

/** y = f(x), a new tensor of x's shape. */
export function unary(runtime: GpuRuntime, op: UnaryOp, x: Tensor): Tensor {
  const y = runtime.empty(x.shape, op);
  dispatchElementwise(runtime, op, [x, y], x.size);
  return y;
}

/**
 * out = f(a, b) for tensors of one shape. The backward ops take (a, b) = (dy, x), the forward op's upstream gradient
 * and input, and return dx.
 */
export function binary(runtime: GpuRuntime, op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  assertShape(`${family}.${op} second operand`, b.shape, a.shape);
  const out = runtime.empty(a.shape, op);
  dispatchElementwise(runtime, op, [a, b, out], a.size);
  return out;
}
