import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import { type AdamWHyperparameters, adamwStep, clipCoefficient, sumOfSquares } from '../src/model/ops/optim.ts';

/**
 * The benchmark's optimiser (MAMBAAD.md §10): AdamW (lr 5e-3, betas 0.9/0.999, eps 1e-8, weight decay 1e-4) with
 * ADer's weight-decay grouping, gradient clipping at global L2 norm 5, and a step schedule (×0.1 at 80% of the
 * iterations). State lives on the GPU; a step records its dispatches and never waits for the GPU.
 */
export interface OptimizerOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
}

export const BENCHMARK_OPTIMIZER: OptimizerOptions = {
  lr: 0.005,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 1e-4,
  maxGradNorm: 5,
};

/**
 * ADer's add_weight_decay: 1-D parameters and names ending in ".bias" get none. So the 2-D A_logs and
 * dt_projs_bias ARE decayed (§17 item 12), while Ds, norms and biases are not.
 */
export function decays(name: string, shape: readonly number[]): boolean {
  return !(shape.length === 1 || name.endsWith('.bias'));
}

/** timm StepLRScheduler as the official config uses it: base lr, ×0.1 from iteration round(0.8·total) on. */
export function stepLearningRate(baseLr: number, iteration: number, totalIterations: number): number {
  const decayAt = Math.max(1, Math.round(0.8 * totalIterations));
  return baseLr * 0.1 ** Math.floor(iteration / decayAt);
}

export interface TrainableParameter {
  readonly name: string;
  readonly param: Tensor;
}

export class AdamW {
  private readonly m: Tensor[];
  private readonly v: Tensor[];
  private readonly norms: Tensor;
  /** [clip coefficient, gradient norm before clipping] of the last step. */
  readonly clip: Tensor;
  private steps = 0;

  constructor(
    private readonly runtime: GpuRuntime,
    private readonly parameters: readonly TrainableParameter[],
    private readonly options: OptimizerOptions = BENCHMARK_OPTIMIZER,
  ) {
    this.m = parameters.map((p) => runtime.zeros(p.param.shape, `${p.name} adam m`));
    this.v = parameters.map((p) => runtime.zeros(p.param.shape, `${p.name} adam v`));
    this.norms = runtime.empty([parameters.length], 'gradient norms');
    this.clip = runtime.empty([2], 'gradient clip');
  }

  get stepCount(): number {
    return this.steps;
  }

  /** Clips `grads` (one per parameter, in order) by their global norm and applies one AdamW update at rate `lr`. */
  step(grads: readonly Tensor[], lr: number): void {
    if (grads.length !== this.parameters.length) {
      throw new Error(`AdamW: ${grads.length} gradients for ${this.parameters.length} parameters`);
    }
    for (const [i, g] of grads.entries()) sumOfSquares(this.runtime, g, this.norms, i);
    clipCoefficient(this.runtime, this.norms, grads.length, this.options.maxGradNorm, this.clip);
    this.steps++;
    this.parameters.forEach((p, i) => {
      const hyper: AdamWHyperparameters = {
        lr,
        beta1: this.options.beta1,
        beta2: this.options.beta2,
        eps: this.options.eps,
        weightDecay: decays(p.name, p.param.shape) ? this.options.weightDecay : 0,
      };
      adamwStep(
        this.runtime,
        { param: p.param, grad: grads[i]!, m: this.m[i]!, v: this.v[i]! },
        this.clip,
        hyper,
        this.steps,
      );
    });
  }

  /** The moments and step count, for checkpoints. */
  state(): { step: number; m: readonly Tensor[]; v: readonly Tensor[] } {
    return { step: this.steps, m: this.m, v: this.v };
  }

  /** Puts back a checkpoint's moments (one m and one v per parameter, in order) and step count. */
  restore(state: { step: number; m: readonly Float32Array[]; v: readonly Float32Array[] }): void {
    if (state.m.length !== this.parameters.length || state.v.length !== this.parameters.length) {
      throw new Error(
        `AdamW restore: ${state.m.length} m and ${state.v.length} v tensors for ${this.parameters.length} parameters`,
      );
    }
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`AdamW restore: step ${state.step}`);
    this.parameters.forEach((p, i) => {
      for (const [target, values, what] of [
        [this.m[i]!, state.m[i]!, 'm'],
        [this.v[i]!, state.v[i]!, 'v'],
      ] as const) {
        // Copied in batch order, after the zero fill the constructor recorded.
        const staged = this.runtime.upload(target.shape, values, `${p.name} adam ${what}`);
        this.runtime.copy(staged, target);
        staged.dispose();
      }
    });
    this.steps = state.step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v, this.norms, this.clip]) t.dispose();
  }
}
