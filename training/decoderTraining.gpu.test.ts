import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import type { SafetensorsFile } from '../src/io/safetensors.ts';
import { DirectionTables, loadHss, loadLss, loadPatchExpand, loadSs2d } from '../src/model/decoder.ts';
import type { ParameterReader } from '../src/model/parameters.ts';
import { loadGolden } from '../src/testing/goldens.ts';
import { createTestRuntime } from '../src/testing/gpu.ts';
import { maxRelativeError } from '../src/testing/reference.ts';
import {
  type BackwardResult,
  hssBackward,
  hssTrainForward,
  lssBackward,
  lssTrainForward,
  patchExpandBackward,
  patchExpandTrainForward,
  ss2dBackward,
  ss2dTrainForward,
} from './decoderTraining.ts';
import { caseValue, compareGradients, goldenCase, goldenScan, loadGoldenWeights } from './goldenGradients.ts';

/** The goldens' tolerances (spec/golden/README.md): outputs 1e-4, gradients 1e-3 relative (max abs err / max abs). */
const OUTPUT_TOLERANCE = 1e-4;
const GRADIENT_TOLERANCE = 1e-3;

/** Every measured error, printed as JSON at the end. */
const errors: Record<string, number> = {};

// The whole small decoder (mambaupnet_*) is checked in decoderTraining.mambaupnet.gpu.test.ts: it alone takes about
// 90 s on SwiftShader.
describe('decoder modules in training mode against the official goldens (forward and every gradient)', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => {
    console.info(`decoder module training errors: ${JSON.stringify(errors, null, 1)}`);
    runtime.destroy();
  });

  const upload = (golden: SafetensorsFile, name: string) =>
    runtime.upload(golden.tensor(name).shape, golden.float32(name), name);

  async function expectClose(label: string, actual: Tensor, expected: Float32Array, tolerance: number) {
    const error = maxRelativeError(await runtime.read(actual), expected);
    errors[label] = error;
    expect(error, label).toBeLessThan(tolerance);
  }

  /**
   * Checks every grad.param.* of the golden and its input gradient (the 1x1-conv biases in front of an InstanceNorm,
   * whose true gradient is 0, against the scale of their weight's gradient: goldenGradients.ts).
   */
  async function expectGradients(name: string, golden: SafetensorsFile, result: BackwardResult) {
    const comparison = await compareGradients(runtime, golden, result.dx, result.grads);
    expect(comparison.missing).toEqual([]);
    expect(comparison.unexpected).toEqual([]);
    for (const [key, error] of Object.entries(comparison.errors)) {
      errors[`${name}/${key}`] = error;
      expect(error, `${name}/${key}`).toBeLessThan(GRADIENT_TOLERANCE);
    }
  }

  /** Loads a module golden's weights and input, runs the training forward, checks it and the backward. */
  async function checkModule<W, T>(
    name: string,
    build: (golden: SafetensorsFile, tables: DirectionTables | undefined) => (r: ParameterReader) => W,
    forward: (w: W, x: Tensor) => { out: Tensor; trace: T },
    backward: (w: W, trace: T, dOut: Tensor) => BackwardResult,
  ) {
    const golden = await loadGolden(name);
    const c = goldenCase(golden);
    const tables = c.scan_type ? new DirectionTables(runtime, goldenScan(c)) : undefined;
    const w = loadGoldenWeights(runtime, golden, name, build(golden, tables));
    const x = upload(golden, 'input.x');
    const { out, trace } = forward(w, x);
    await expectClose(`${name}/output.0`, out, golden.float32('output.0'), OUTPUT_TOLERANCE);
    const dOut = upload(golden, 'dout.0');
    await expectGradients(name, golden, backward(w, trace, dOut));
    for (const t of [x, out, dOut]) t.dispose();
    tables?.dispose();
    return { golden, w };
  }

  const requireTables = (tables: DirectionTables | undefined) => caseValue(tables, 'scan');

  for (const name of ['ss2d_hilbert8_s16_d64', 'ss2d_zigzag8_s16_d32', 'ss2d_scan4_s16_d32', 'ss2d_hilbert2_s8_d32']) {
    it(name, async () => {
      await checkModule(
        name,
        (golden, tables) => (r) =>
          loadSs2d(
            r,
            'param.',
            caseValue(goldenCase(golden).d_model, 'd_model'),
            caseValue(goldenCase(golden).size, 'size'),
            requireTables(tables),
          ),
        (w, x) => ss2dTrainForward(runtime, w, x),
        (w, trace, dOut) => ss2dBackward(runtime, w, trace, dOut),
      );
    });
  }

  it('hss_block_hilbert8_s16_d64, and DropPath with an explicit per-sample mask', async () => {
    const name = 'hss_block_hilbert8_s16_d64';
    const golden = await loadGolden(name);
    const c = goldenCase(golden);
    const tables = new DirectionTables(runtime, goldenScan(c));
    const w = loadGoldenWeights(runtime, golden, name, (r) =>
      loadHss(r, 'param.', caseValue(c.hidden_dim, 'hidden_dim'), caseValue(c.size, 'size'), tables),
    );
    const x = upload(golden, 'input.x');
    const dOut = upload(golden, 'dout.0');
    const evaluation = hssTrainForward(runtime, w, x);
    await expectClose(`${name}/output.0`, evaluation.out, golden.float32('output.0'), OUTPUT_TOLERANCE);
    await expectGradients(name, golden, hssBackward(runtime, w, evaluation.trace, dOut));

    // Sample 0 dropped, sample 1 kept with keep = 0.5 (scale 2). The goldens are eval mode; the branch is linear in
    // its scale s, so per sample out = x + s·(out_eval - x) and dx = dout + s·(dx_eval - dout).
    const scales = Float32Array.of(0, 2);
    const perSample = (evalValues: Float32Array, base: Float32Array) => {
      const n = base.length / scales.length;
      return base.map((b, i) => b + (scales[Math.floor(i / n)] ?? Number.NaN) * ((evalValues[i] ?? Number.NaN) - b));
    };
    const dropped = hssTrainForward(runtime, w, x, { dropPathScales: scales });
    const expectedOut = perSample(golden.float32('output.0'), golden.float32('input.x'));
    await expectClose(`${name}/DropPath [0, 2] output`, dropped.out, expectedOut, OUTPUT_TOLERANCE);
    const droppedResult = hssBackward(runtime, w, dropped.trace, dOut);
    const expectedDx = perSample(golden.float32('grad.input.x'), golden.float32('dout.0'));
    await expectClose(`${name}/DropPath [0, 2] grad.input`, droppedResult.dx, expectedDx, GRADIENT_TOLERANCE);
    expect(() => hssTrainForward(runtime, w, x, { dropPathScales: Float32Array.of(1) })).toThrow(/one finite/);
    for (const t of [x, dOut, evaluation.out, dropped.out, droppedResult.dx, ...droppedResult.grads.values()]) {
      t.dispose();
    }
    tables.dispose();
  });

  it('lss_module_depth2_hilbert8_s16_d64', async () => {
    await checkModule(
      'lss_module_depth2_hilbert8_s16_d64',
      (golden, tables) => (r) => {
        const c = goldenCase(golden);
        const channels = caseValue(c.hidden_dim, 'hidden_dim');
        return loadLss(
          r,
          'param.',
          channels,
          caseValue(c.depth, 'depth'),
          caseValue(c.size, 'size'),
          requireTables(tables),
        );
      },
      (w, x) => lssTrainForward(runtime, w, x),
      (w, trace, dOut) => lssBackward(runtime, w, trace, dOut),
    );
  });

  it('patch_expand_d32', async () => {
    await checkModule(
      'patch_expand_d32',
      (golden) => (r) => loadPatchExpand(r, 'param.', caseValue(goldenCase(golden).dim, 'dim')),
      (w, x) => patchExpandTrainForward(runtime, w, x),
      (w, trace, dOut) => patchExpandBackward(runtime, w, trace, dOut),
    );
  });
});
