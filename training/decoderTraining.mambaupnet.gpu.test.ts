import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { loadDecoder } from '../src/model/decoder.ts';
import { nchwToNhwc, nhwcToNchw } from '../src/model/ops/layout.ts';
import { loadGolden } from '../src/testing/goldens.ts';
import { createTestRuntime } from '../src/testing/gpu.ts';
import { maxRelativeError } from '../src/testing/reference.ts';
import { decoderBackward, decoderTrainForward } from './decoderTraining.ts';
import { caseValue, compareGradients, goldenCase, goldenScan, loadGoldenWeights } from './goldenGradients.ts';

/** The goldens' tolerances (spec/golden/README.md): outputs 1e-4, gradients 1e-3 relative (max abs err / max abs). */
const OUTPUT_TOLERANCE = 1e-4;
const GRADIENT_TOLERANCE = 1e-3;

let runtime: GpuRuntime;
beforeAll(async () => {
  runtime = await createTestRuntime();
});
afterAll(() => runtime.destroy());

// About 90 s on SwiftShader (the stage-3 SS2Ds at L = 4096 dominate), hence a file of its own.
it('mambaupnet_dims64-32-16-8_depths2222_hilbert8: the whole small decoder, outputs and every gradient', async () => {
  const name = 'mambaupnet_dims64-32-16-8_depths2222_hilbert8';
  const golden = await loadGolden(name);
  const c = goldenCase(golden);
  const zNchw = runtime.upload(golden.tensor('input.z').shape, golden.float32('input.z'));
  const z = nchwToNhwc(runtime, zNchw); // the golden is NCHW, the engine channels-last
  zNchw.dispose();
  const w = loadGoldenWeights(runtime, golden, name, (r) =>
    loadDecoder(
      r,
      'param.',
      caseValue(c.dims_decoder, 'dims_decoder'),
      caseValue(c.depths_decoder, 'depths_decoder'),
      caseValue(z.shape[1], 'grid size'),
      goldenScan(c),
    ),
  );
  const errors: Record<string, number> = {};
  const { outputs, trace } = decoderTrainForward(runtime, w, z);
  expect(outputs).toHaveLength(3);
  for (const [i, output] of outputs.entries()) {
    const nchw = nhwcToNchw(runtime, output);
    errors[`output.${i}`] = maxRelativeError(await runtime.read(nchw), golden.float32(`output.${i}`));
    nchw.dispose();
  }
  const dOutputs = outputs.map((_, i) => {
    const nchw = runtime.upload(golden.tensor(`dout.${i}`).shape, golden.float32(`dout.${i}`));
    const nhwc = nchwToNhwc(runtime, nchw);
    nchw.dispose();
    return nhwc;
  });
  const result = decoderBackward(runtime, w, trace, dOutputs);
  for (const output of outputs) expect(output.isDisposed, 'the backward frees the outputs').toBe(true);
  const dz = nhwcToNchw(runtime, result.dx);
  result.dx.dispose();
  const comparison = await compareGradients(runtime, golden, dz, result.grads);
  Object.assign(errors, comparison.errors);
  console.info(`${name} training errors: ${JSON.stringify(errors, null, 1)}`);
  expect(comparison.missing).toEqual([]);
  expect(comparison.unexpected).toEqual([]);
  for (const [key, error] of Object.entries(errors)) {
    expect(error, key).toBeLessThan(key.startsWith('output.') ? OUTPUT_TOLERANCE : GRADIENT_TOLERANCE);
  }
  for (const t of [z, ...dOutputs]) t.dispose();
  w.tables.dispose();
});
