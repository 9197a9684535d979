import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import { parseSafetensors, type SafetensorsFile } from '../src/io/safetensors.ts';
import { nchwToNhwc, nhwcToNchw } from '../src/model/ops/layout.ts';
import { loadGolden } from '../src/testing/goldens.ts';
import { createTestRuntime } from '../src/testing/gpu.ts';
import { maxAbsoluteError, maxRelativeError } from '../src/testing/reference.ts';
import {
  loadMffOceTrainingWeights,
  mffOceBatchNorms,
  mffOceTrainableParameters,
  mffOceTrainingBackward,
  mffOceTrainingForward,
} from './mffOceTraining.ts';

/** Written by `make_gradcheck_case.py --mff-oce-small` (PyTorch autograd on the golden's parameters and inputs). */
const GRADIENT_CASE = 'build/gradcheck/mff_oce_small_grads.safetensors';
const GRADIENT_CASE_COMMAND = `/usr/bin/python3 training/reference/make_gradcheck_case.py --mff-oce-small --out ${GRADIENT_CASE}`;

describe('MFF_OCE in training mode', () => {
  let runtime: GpuRuntime;
  let golden: SafetensorsFile;
  beforeAll(async () => {
    runtime = await createTestRuntime();
    golden = await loadGolden('mff_oce_small');
  });
  afterAll(() => runtime.destroy());

  const input = (file: SafetensorsFile, name: string): Tensor =>
    nchwToNhwc(runtime, runtime.upload(file.tensor(name).shape, file.float32(name)));

  function forward() {
    const weights = loadMffOceTrainingWeights(runtime, golden, 'param.');
    const f = [1, 2, 3].map((i) => input(golden, `input.f${i}`)) as [Tensor, Tensor, Tensor];
    return { weights, ...mffOceTrainingForward(runtime, weights, ...f) };
  }

  it('matches the official golden mff_oce_small: output and running statistics after the step', async () => {
    const { weights, z } = forward();
    const output = nhwcToNchw(runtime, z);
    expect(output.shape).toEqual(golden.tensor('output.train').shape);
    const outputError = maxRelativeError(await runtime.read(output), golden.float32('output.train'));
    const batchNorms = mffOceBatchNorms(weights);
    expect(batchNorms.size).toBe(15);
    let runningError = 0;
    for (const [bn, state] of batchNorms) {
      const trained = (what: string) => golden.float32(`after_train.${bn}.${what}`);
      const meanError = maxRelativeError(await runtime.read(state.runningMean), trained('running_mean'));
      const varError = maxRelativeError(await runtime.read(state.runningVar), trained('running_var'));
      expect(meanError, `${bn}.running_mean`).toBeLessThan(1e-4);
      expect(varError, `${bn}.running_var`).toBeLessThan(1e-4);
      expect(state.numBatchesTracked, bn).toBe(trained('num_batches_tracked')[0]);
      runningError = Math.max(runningError, meanError, varError);
    }
    console.info(`mff_oce_small train mode: ${JSON.stringify({ 'output.train': outputError, runningError })}`);
    expect(outputError, 'output.train').toBeLessThan(1e-4);
  });

  it('parameter gradients match PyTorch autograd for a seeded output gradient', async () => {
    // scripts/test.sh writes the case before the GPU tests; a missing case is a failure, never a silent skip.
    const response = await fetch(`/${GRADIENT_CASE}`);
    if (!response.ok) throw new Error(`no ${GRADIENT_CASE}: run ${GRADIENT_CASE_COMMAND}`);
    const reference = parseSafetensors(new Uint8Array(await response.arrayBuffer()), GRADIENT_CASE);
    const { weights, z, tape } = forward();
    const zError = maxRelativeError(await runtime.read(nhwcToNchw(runtime, z)), reference.float32('output.z'));
    const grads = mffOceTrainingBackward(runtime, tape, input(reference, 'input.dout'));
    const parameters = mffOceTrainableParameters(weights);
    expect(parameters).toHaveLength(48);
    expect([...grads.keys()].sort()).toEqual(parameters.map((p) => p.name).sort());
    const errors: Record<string, number> = {};
    for (const { name, param } of parameters) {
      const grad = grads.get(name);
      expect(grad?.shape, name).toEqual(param.shape);
      const actual = await runtime.read(grad as Tensor);
      const expected = reference.float32(`grad.${name}`);
      // A conv bias that feeds a training-mode BatchNorm has a zero gradient up to roundoff (BN removes the channel
      // mean): measure it against its conv weight's gradient scale, as check_goldens.py does for InstanceNorm.
      const zeroThroughBn = name.startsWith('conv') && name.endsWith('.bias');
      errors[name] = zeroThroughBn
        ? maxAbsoluteError(actual, expected) / maxAbs(reference.float32(`grad.${name.replace(/bias$/, 'weight')}`))
        : maxRelativeError(actual, expected);
    }
    const worst = Object.entries(errors).reduce((a, b) => (b[1] > a[1] ? b : a));
    console.info(`mff_oce_small gradients: ${JSON.stringify({ 'output.z': zError, worst })}`);
    expect(zError, 'output.z').toBeLessThan(1e-4);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(1e-3);
  });

  it('names inputs that are not one image at strides 4, 8, 16', () => {
    const weights = loadMffOceTrainingWeights(runtime, golden, 'param.');
    const f1 = runtime.zeros([2, 16, 16, 64]);
    const f2 = runtime.zeros([2, 8, 8, 128]);
    expect(() => mffOceTrainingForward(runtime, weights, f1, f2, runtime.zeros([2, 3, 4, 256]))).toThrow(
      /strides 4, 8, 16/,
    );
    expect(() => mffOceTrainingForward(runtime, weights, f1, f1, runtime.zeros([2, 4, 4, 256]))).toThrow(/f2 must be/);
  });
});

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i] ?? 0));
  return m;
}
