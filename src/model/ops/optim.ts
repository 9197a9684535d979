import type { GpuRuntime } from '../../gpu/runtime.ts';
import { assertShape, type Tensor } from '../../gpu/tensor.ts';

/** kernels/optim.wgsl: gradient norms, the clip coefficient and the AdamW update, all on the GPU. */
const family = 'optim';
const WORKGROUP_SIZE = 256;

/** norms[slot] = Σ g² over one gradient tensor. */
export function sumOfSquares(runtime: GpuRuntime, grad: Tensor, norms: Tensor, slot: number): void {
  if (slot >= norms.size) throw new Error(`sumOfSquares: slot ${slot} is outside the ${norms.size}-entry norms tensor`);
  runtime.dispatch({
    kernel: { family, entryPoint: 'sum_of_squares', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(grad.size, slot),
    buffers: [grad, norms],
    workgroups: [1],
  });
}

/**
 * clip = [min(1, maxNorm / (‖g‖ + 1e-6)), ‖g‖] from the first `tensors` squared norms: torch's clip_grad_norm_ with
 * the L2 norm over every gradient.
 */
export function clipCoefficient(
  runtime: GpuRuntime,
  norms: Tensor,
  tensors: number,
  maxNorm: number,
  clip: Tensor,
): void {
  assertShape('clip result', clip.shape, [2]);
  const params = new ArrayBuffer(8);
  new Uint32Array(params, 0, 1)[0] = tensors;
  new Float32Array(params, 4, 1)[0] = maxNorm;
  runtime.dispatch({
    kernel: { family, entryPoint: 'clip_coefficient' },
    params: new Uint8Array(params),
    buffers: [norms, clip],
    workgroups: [1],
  });
}

export interface AdamWHyperparameters {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface AdamWTensors {
  param: Tensor;
  grad: Tensor;
  /** First and second moments, zero before the first step. */
  m: Tensor;
  v: Tensor;
}

/** One AdamW update of one tensor; `step` counts from 1; the gradient is scaled by clip[0]. */
export function adamwStep(
  runtime: GpuRuntime,
  t: AdamWTensors,
  clip: Tensor,
  h: AdamWHyperparameters,
  step: number,
): void {
  for (const [name, other] of [
    ['grad', t.grad],
    ['m', t.m],
    ['v', t.v],
  ] as const) {
    assertShape(`adamw ${name}`, other.shape, t.param.shape);
  }
  if (!Number.isInteger(step) || step < 1) throw new Error(`adamw: step must count from 1, got ${step}`);
  const params = new ArrayBuffer(40);
  new Uint32Array(params, 0, 1)[0] = t.param.size;
  new Float32Array(params, 4, 9).set([
    h.lr,
    h.beta1,
    h.beta2,
    1 - h.beta1,
    1 - h.beta2,
    h.eps,
    h.weightDecay,
    1 - h.beta1 ** step,
    Math.sqrt(1 - h.beta2 ** step),
  ]);
  runtime.dispatch({
    kernel: { family, entryPoint: 'adamw_step', constants: { WORKGROUP_SIZE } },
    params: new Uint8Array(params),
    buffers: [t.grad, clip, t.param, t.m, t.v],
    workgroups: runtime.workgroupsFor(t.param.size, WORKGROUP_SIZE),
  });
}
