import { AdamW, BENCHMARK_OPTIMIZER } from '../../training/optimizer.ts';
import { applyGradients, batchNormStates, forwardBackward, loadTrainableMambaAD } from '../../training/trainer.ts';
import type { GpuRuntime } from '../gpu/runtime.ts';
import { parseSafetensors, prefixedView, type SafetensorsFile } from '../io/safetensors.ts';
import { nchwToNhwc } from '../model/ops/layout.ts';
import { maxAbsoluteError, maxRelativeError } from '../testing/reference.ts';

/**
 * The engine's training step against the PyTorch reference's autograd at full channel width (a case written by
 * training/reference/make_gradcheck_case.py): the loss, every parameter gradient, MFF_OCE's running statistics after
 * the step, and the losses and weights over several AdamW steps on the same batch.
 */
export interface StepCheck {
  lossRelative: number;
  /** Max relative error of every parameter gradient, worst first (the rest summarised by `gradientsWorst`). */
  gradientsWorst: [string, number][];
  gradientsChecked: number;
  runningStatistics: number;
  /**
   * Losses before each step. `referenceDrift` is how far the reference's own trajectory moves when its features are
   * nudged by 1e-6 relative: float32 rounding alone, amplified by AdamW's ±lr first steps.
   */
  lossSteps: { engine: number[]; reference: number[]; relative: number[]; referenceDrift: number[] };
  finalWeights: { worstRelative: [string, number]; zeroGradientBiasesMaxAbsolute: number };
  stepMs: number[];
}

/**
 * Biases right in front of a normalisation that removes their channel mean (MFF_OCE's conv21/conv31/convf before
 * training-mode BatchNorm, the LSS branches' 1x1 convs before InstanceNorm) have a true gradient of 0: compare them
 * with the scale of the weight gradient beside them, and their values after AdamW (which moves each by about ±lr
 * whatever the gradient's size) with an absolute tolerance.
 */
const ZERO_GRADIENT_BIAS = /(mff_oce\.(conv21|conv31|convf)|conv1[ab][57]\.0)\.bias$/;

function gradientError(name: string, values: Float32Array, reference: SafetensorsFile): number {
  const expected = reference.float32(`grad.${name}`);
  if (!ZERO_GRADIENT_BIAS.test(name)) return maxRelativeError(values, expected);
  const weight = reference.float32(`grad.${name.replace(/bias$/, 'weight')}`);
  return maxAbsoluteError(values, expected) / weight.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

export async function checkTrainingSteps(runtime: GpuRuntime, caseBytes: Uint8Array, name: string): Promise<StepCheck> {
  const reference = parseSafetensors(caseBytes, name);
  const caseMeta = JSON.parse(reference.metadata.case ?? '{}') as { steps?: number; lr?: number };
  const steps = reference.tensor('output.loss_steps').shape[0] ?? caseMeta.steps ?? 1;
  const model = loadTrainableMambaAD(runtime, prefixedView(reference, 'param.'), name);
  const optimizer = new AdamW(runtime, model.parameters, BENCHMARK_OPTIMIZER);
  const features = ['f1', 'f2', 'f3'].map((f) => {
    const nchw = runtime.upload(reference.tensor(`input.${f}`).shape, reference.float32(`input.${f}`));
    return nchwToNhwc(runtime, nchw);
  });
  const lr = BENCHMARK_OPTIMIZER.lr;
  const engineLosses: number[] = [];
  const stepMs: number[] = [];
  let check: Omit<StepCheck, 'lossSteps' | 'finalWeights' | 'stepMs'> | undefined;
  for (let step = 0; step < steps; step++) {
    const start = performance.now();
    const result = forwardBackward(runtime, model, features);
    const terms = await runtime.read(result.terms);
    result.terms.dispose();
    engineLosses.push(terms.reduce((a, b) => a + b, 0));
    if (step === 0) {
      const errors: [string, number][] = [];
      for (const [i, grad] of result.gradients.entries()) {
        const gradName = model.parameters[i]!.name;
        errors.push([gradName, gradientError(gradName, await runtime.read(grad), reference)]);
      }
      errors.sort((a, b) => b[1] - a[1]);
      let runningStatistics = 0;
      for (const [bnName, state] of batchNormStates(model)) {
        for (const [field, tensor] of [
          ['running_mean', state.runningMean],
          ['running_var', state.runningVar],
        ] as const) {
          const expected = reference.float32(`after.mff_oce.${bnName}.${field}`);
          runningStatistics = Math.max(runningStatistics, maxRelativeError(await runtime.read(tensor), expected));
        }
      }
      const lossReference = reference.float32('output.loss')[0]!;
      check = {
        lossRelative: Math.abs(engineLosses[0]! - lossReference) / lossReference,
        gradientsWorst: errors.slice(0, 5),
        gradientsChecked: errors.length,
        runningStatistics,
      };
    }
    applyGradients(runtime, model, optimizer, result.gradients, lr);
    await runtime.flush();
    stepMs.push(Math.round(performance.now() - start));
  }
  const referenceLosses = [...reference.float32('output.loss_steps')];
  const perturbedLosses = [...reference.float32('output.loss_steps_perturbed')];
  let worst: [string, number] = ['', 0];
  let zeroGradientBiases = 0;
  for (const p of model.parameters) {
    const values = await runtime.read(p.param);
    const expected = reference.float32(`final.${p.name}`);
    if (ZERO_GRADIENT_BIAS.test(p.name))
      zeroGradientBiases = Math.max(zeroGradientBiases, maxAbsoluteError(values, expected));
    else {
      const error = maxRelativeError(values, expected);
      if (error > worst[1]) worst = [p.name, error];
    }
  }
  if (!check) throw new Error('gradcheck: the case has no steps');
  return {
    ...check,
    lossSteps: {
      engine: engineLosses,
      reference: referenceLosses,
      relative: engineLosses.map((l, i) => Math.abs(l - referenceLosses[i]!) / referenceLosses[i]!),
      referenceDrift: perturbedLosses.map((l, i) => Math.abs(l - referenceLosses[i]!) / referenceLosses[i]!),
    },
    finalWeights: { worstRelative: worst, zeroGradientBiasesMaxAbsolute: zeroGradientBiases },
    stepMs,
  };
}
