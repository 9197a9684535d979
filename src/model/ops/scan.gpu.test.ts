import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { loadGolden } from '../../testing/goldens.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../../testing/reference.ts';
import {
  mergeDirectionsReference,
  type ScanReferenceInput,
  selectiveScanBackwardReference,
  selectiveScanReference,
} from '../../testing/ss2dReference.ts';
import { type DirectionCount, directionTable, scanPermutation } from '../scanOrders.ts';
import {
  GPU_SCAN_BACKWARD_LAUNCH,
  GPU_SCAN_LAUNCH,
  identityDirectionTable,
  mergeDirections,
  packScanParameters,
  type ScanLaunch,
  type SelectiveScanGradients,
  type SelectiveScanInputs,
  SOFTWARE_SCAN_BACKWARD_LAUNCH,
  SOFTWARE_SCAN_LAUNCH,
  SSM_STATES,
  STATE_INTERVAL_UNIT,
  selectiveScanBackward,
  selectiveScanForward,
  uploadDirectionTable,
} from './scan.ts';

const N = SSM_STATES;

describe('selective scan (kernels/scan.wgsl)', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  const upload = (shape: number[], data: ArrayLike<number>) => runtime.upload(shape, Float32Array.from(data));

  // Both thread layouts run everywhere; the adapter only picks the default.
  const launches: [string, ScanLaunch][] = [
    ['split states', GPU_SCAN_LAUNCH],
    ['one thread per channel', SOFTWARE_SCAN_LAUNCH],
  ];
  const backwardLaunches: [string, ScanLaunch][] = [
    ['split states', GPU_SCAN_BACKWARD_LAUNCH],
    ['one thread per channel', SOFTWARE_SCAN_BACKWARD_LAUNCH],
  ];

  /** The official selective_scan golden in the kernel's layout: per-direction u, identity tables, dt rank 0. */
  async function goldenProblem() {
    const golden = await loadGolden('selective_scan');
    const [batch, channelsAll, L] = golden.tensor('input.u').shape as [number, number, number];
    const K = golden.tensor('input.B').shape[1]!;
    const D = channelsAll / K;
    // [b, K·D, L] -> [K, b, L, D]
    const toKbld = (name: string) => {
      const v = golden.float32(name);
      const out = new Float32Array(v.length);
      for (let b = 0; b < batch; b++)
        for (let k = 0; k < K; k++)
          for (let d = 0; d < D; d++)
            for (let l = 0; l < L; l++)
              out[((k * batch + b) * L + l) * D + d] = v[(b * channelsAll + k * D + d) * L + l]!;
      return out;
    };
    // B, C [b, K, N, L] -> proj [b, L, K, 2N] with dt rank 0
    const toProj = (bName: string, cName: string) => {
      const Bs = golden.float32(bName);
      const Cs = golden.float32(cName);
      const proj = new Float32Array(batch * L * K * 2 * N);
      for (let b = 0; b < batch; b++)
        for (let k = 0; k < K; k++)
          for (let n = 0; n < N; n++)
            for (let l = 0; l < L; l++) {
              const row = ((b * L + l) * K + k) * 2 * N;
              proj[row + n] = Bs[((b * K + k) * N + n) * L + l]!;
              proj[row + N + n] = Cs[((b * K + k) * N + n) * L + l]!;
            }
      return proj;
    };
    const channelParams = packScanParameters(runtime, {
      A: upload([K * D, N], golden.float32('input.A')),
      isLog: false,
      deltaBias: upload([K * D], golden.float32('input.delta_bias')),
      Dskip: upload([K * D], golden.float32('input.D')),
    });
    const inputs: SelectiveScanInputs = {
      u: upload([K, batch, L, D], toKbld('input.u')),
      deltaRaw: upload([K, batch, L, D], toKbld('input.delta')),
      proj: upload([batch * L, K * 2 * N], toProj('input.B', 'input.C')),
      dtRank: 0,
      table: uploadDirectionTable(runtime, identityDirectionTable(K, L), K, L),
      channelParams,
    };
    return { golden, K, batch, L, D, inputs, toKbld, toProj };
  }

  it('official golden selective_scan (per-direction u, delta bias above the softplus threshold)', async () => {
    const { inputs, toKbld } = await goldenProblem();
    const expected = toKbld('output.0');
    for (const [what, launch] of launches) {
      const { y } = selectiveScanForward(runtime, inputs, { perDirectionU: true, launch });
      expect(maxRelativeError(await runtime.read(y), expected), what).toBeLessThan(1e-4);
    }
  });

  it('backward: every gradient of the official golden selective_scan', async () => {
    const { golden, K, batch, L, D, inputs, toKbld, toProj } = await goldenProblem();
    const dy = upload([K, batch, L, D], toKbld('dout.0'));
    const expected = {
      du: toKbld('grad.input.u'),
      dDeltaRaw: toKbld('grad.input.delta'),
      dProj: toProj('grad.input.B', 'grad.input.C'),
      dA: golden.float32('grad.input.A'),
      dDeltaBias: golden.float32('grad.input.delta_bias'),
      dDskip: golden.float32('grad.input.D'),
    };
    for (const [layout, launch] of backwardLaunches) {
      // L = 64: the second segment restarts from the first saved state.
      const { saved } = selectiveScanForward(runtime, inputs, { perDirectionU: true, stateInterval: 32 });
      if (!saved) throw new Error('the forward saved no states');
      const grads = selectiveScanBackward(runtime, inputs, dy, saved, {
        perDirectionU: true,
        perDirectionDy: true,
        gradientOfA: true,
        launch,
      });
      await expectGradients(grads, expected, `golden, ${layout}`, 1e-5);
    }
  });

  /** Random problem in the kernel layout; A from A_logs like the official init plus noise. */
  function randomProblem(
    seed: number,
    K: number,
    batch: number,
    L: number,
    D: number,
    dtRank: number,
    table: Uint32Array,
  ): ScanReferenceInput & { ALogs: Float32Array } {
    const random = seededRandom(seed);
    const width = dtRank + 2 * N;
    const ALogs = new Float32Array(K * D * N);
    for (let c = 0; c < K * D; c++)
      for (let n = 0; n < N; n++) ALogs[c * N + n] = Math.log(n + 1) + 0.3 * (random() * 2 - 1);
    const deltaRaw = randomArray(K * batch * L * D, random, 3);
    // A few entries above the softplus threshold of 20 and far below it (Δ ≈ e^δ).
    for (let i = 0; i < deltaRaw.length; i += 97) deltaRaw[i] = i % 2 === 0 ? 24 : -30;
    return {
      batch,
      length: L,
      channels: D,
      directions: K,
      states: N,
      u: randomArray(batch * L * D, random, 2),
      deltaRaw,
      proj: randomArray(batch * L * K * width, random),
      projWidth: width,
      bOffset: dtRank,
      table,
      ALogs,
      A: ALogs.map((a) => -Math.exp(a)),
      deltaBias: randomArray(K * D, random, 2),
      Dskip: randomArray(K * D, random),
    };
  }

  function uploadProblem(problem: ScanReferenceInput & { ALogs: Float32Array }): SelectiveScanInputs {
    const { batch, length: L, channels: D, directions: K, bOffset: dtRank } = problem;
    return {
      u: upload([batch, L, D], problem.u),
      deltaRaw: upload([K, batch, L, D], problem.deltaRaw),
      proj: upload([batch, L, K * problem.projWidth], problem.proj),
      dtRank,
      table: uploadDirectionTable(runtime, Uint32Array.from(problem.table), K, L),
      channelParams: packScanParameters(runtime, {
        A: upload([K * D, N], problem.ALogs),
        isLog: true,
        deltaBias: upload([K, D], problem.deltaBias),
        Dskip: upload([K * D], problem.Dskip),
      }),
    };
  }

  async function checkAgainstReference(
    problem: ScanReferenceInput & { ALogs: Float32Array },
    stateInterval: number,
    what: string,
  ) {
    const K = problem.directions;
    const inputs = uploadProblem(problem);
    const reference = selectiveScanReference(problem, stateInterval);
    const mergedExpected = mergeDirectionsReference(reference.y, K as DirectionCount);
    for (const [layout, launch] of launches) {
      const { y, saved } = selectiveScanForward(runtime, inputs, { stateInterval, launch });
      if (!saved) throw new Error('the forward saved no states');
      const merged = mergeDirections(runtime, y);
      const label = `${what}, ${layout}`;
      expect(maxRelativeError(await runtime.read(y), reference.y), `${label}: y`).toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(saved.states), reference.states), `${label}: states`).toBeLessThan(
        1e-5,
      );
      expect(maxRelativeError(await runtime.read(merged), mergedExpected), `${label}: merged`).toBeLessThan(1e-5);
    }
  }

  it('fused gather/scan/scatter/merge against float64: 8 directions, hilbert and zigzag, D = 37', async () => {
    const [S, D, batch, dtRank] = [8, 37, 2, 3];
    for (const order of ['hilbert', 'zigzag'] as const) {
      const table = directionTable(scanPermutation(order, S), S, 8);
      const problem = randomProblem(order === 'hilbert' ? 1 : 2, 8, batch, S * S, D, dtRank, table);
      await checkAgainstReference(problem, STATE_INTERVAL_UNIT, order);
    }
  });

  /** Direction tables whose rows are random permutations. */
  function randomTables(seed: number, K: number, L: number): Uint32Array {
    const random = seededRandom(seed);
    const table = identityDirectionTable(K, L);
    for (let k = 0; k < K; k++) {
      const row = table.subarray(k * L, (k + 1) * L);
      for (let i = L - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [row[i], row[j]] = [row[j]!, row[i]!];
      }
    }
    return table;
  }

  it('random permutations, a length that is not a multiple of the chunk, 4 directions, D = 70', async () => {
    const [K, L, D, batch, dtRank] = [4, 45, 70, 1, 5];
    // The last state interval is cut short.
    await checkAgainstReference(
      randomProblem(4, K, batch, L, D, dtRank, randomTables(3, K, L)),
      STATE_INTERVAL_UNIT,
      'random permutations',
    );
  });

  async function expectGradients(
    grads: SelectiveScanGradients,
    expected: Record<keyof SelectiveScanGradients, ArrayLike<number>>,
    what: string,
    tolerance: number,
  ) {
    for (const name of Object.keys(expected) as (keyof SelectiveScanGradients)[]) {
      const error = maxRelativeError(await runtime.read(grads[name]), expected[name]);
      expect(error, `${what}: ${name}`).toBeLessThan(tolerance);
    }
  }

  /**
   * The backward of a random problem with a shared u against the float64 reference. dy is shared by the directions
   * (the gradient of the merged output) unless perDirectionDy.
   */
  async function checkBackwardAgainstReference(
    problem: ScanReferenceInput & { ALogs: Float32Array },
    stateInterval: number,
    perDirectionDy: boolean,
    what: string,
  ) {
    const { batch, length: L, channels: D, directions: K } = problem;
    const inputs = uploadProblem(problem);
    const random = seededRandom(L * D);
    const dyValues = randomArray((perDirectionDy ? K : 1) * batch * L * D, random);
    // What each direction's y gets: the merged output's gradient K times over when dy is shared.
    const dyPerDirection = perDirectionDy ? dyValues : new Float32Array(K * batch * L * D);
    if (!perDirectionDy) for (let k = 0; k < K; k++) dyPerDirection.set(dyValues, k * batch * L * D);
    const dy = perDirectionDy ? upload([K, batch, L, D], dyValues) : upload([batch, L, D], dyValues);
    const reference = selectiveScanBackwardReference(problem, dyPerDirection);
    const expected = { ...reference, dA: reference.dA.map((g, i) => g * problem.A[i]!) }; // dA_log = dA·A
    for (const [layout, launch] of backwardLaunches) {
      const { saved } = selectiveScanForward(runtime, inputs, { stateInterval });
      if (!saved) throw new Error('the forward saved no states');
      const grads = selectiveScanBackward(runtime, inputs, dy, saved, { perDirectionDy, launch });
      await expectGradients(grads, expected, `${what}, ${layout}`, 1e-5);
    }
  }

  it('backward against float64: 8 directions, hilbert and zigzag, D = 37, dy of the merged output', async () => {
    const [S, D, batch, dtRank] = [8, 37, 2, 3];
    for (const order of ['hilbert', 'zigzag'] as const) {
      const table = directionTable(scanPermutation(order, S), S, 8);
      const problem = randomProblem(order === 'hilbert' ? 5 : 6, 8, batch, S * S, D, dtRank, table);
      await checkBackwardAgainstReference(problem, STATE_INTERVAL_UNIT, false, order);
    }
  });

  it('backward: L = 101 (not a multiple of the chunk), restarts inside a 64-step state interval, per-direction dy', async () => {
    const [K, L, D, batch, dtRank] = [4, 101, 37, 1, 2];
    // Segments start at 96 (restarting from the state after step 63), 64, 32 (restarting from zero) and 0.
    await checkBackwardAgainstReference(
      randomProblem(7, K, batch, L, D, dtRank, randomTables(8, K, L)),
      2 * STATE_INTERVAL_UNIT,
      true,
      'L = 101',
    );
  });

  it('names bad inputs', () => {
    const [K, L, D] = [2, 16, 4];
    const table = uploadDirectionTable(runtime, identityDirectionTable(K, L), K, L);
    const channelParams = runtime.zeros([K * D, N + 2]);
    const inputs = {
      u: runtime.zeros([1, L, D]),
      deltaRaw: runtime.zeros([K, 1, L, D]),
      proj: runtime.zeros([L, K * 2 * N]),
      dtRank: 0,
      table,
      channelParams,
    };
    expect(() => selectiveScanForward(runtime, { ...inputs, u: runtime.zeros([1, L + 1, D]) })).toThrow(/u must be/);
    expect(() => selectiveScanForward(runtime, { ...inputs, deltaRaw: runtime.zeros([K, 1, L, D + 1]) })).toThrow(
      /delta must be/,
    );
    expect(() => selectiveScanForward(runtime, { ...inputs, dtRank: 2 })).toThrow(/proj/);
    expect(() => selectiveScanForward(runtime, inputs, { stateInterval: STATE_INTERVAL_UNIT + 8 })).toThrow(
      /multiple of/,
    );
    expect(() =>
      selectiveScanForward(runtime, inputs, { launch: { threadsPerChannel: 4, channels: 64, chunk: 32 } }),
    ).toThrow(/launch .* is invalid/);
    expect(() => uploadDirectionTable(runtime, Uint32Array.of(0, 1, 1, 2), 1, 4)).toThrow(/not a permutation/);
    expect(() =>
      packScanParameters(runtime, {
        A: runtime.zeros([K * D, 8]),
        isLog: true,
        deltaBias: runtime.zeros([K * D]),
        Dskip: runtime.zeros([K * D]),
      }),
    ).toThrow(/A must be/);
    expect(() => mergeDirections(runtime, runtime.zeros([3, 1, L, D]))).toThrow(/2, 4 or 8 directions/);

    const saved = { states: runtime.zeros([K, 1, 1, N, D]), stateInterval: STATE_INTERVAL_UNIT };
    const dy = runtime.zeros([1, L, D]);
    expect(() => selectiveScanBackward(runtime, inputs, runtime.zeros([1, L, D + 1]), saved)).toThrow(/dy must be/);
    expect(() => selectiveScanBackward(runtime, inputs, dy, saved, { perDirectionDy: true })).toThrow(/dy must be/);
    expect(() => selectiveScanBackward(runtime, { ...inputs, dtRank: 1 }, dy, saved)).toThrow(/proj/);
    expect(() => selectiveScanBackward(runtime, inputs, dy, { ...saved, stateInterval: 16 })).toThrow(/multiple of/);
    expect(() =>
      selectiveScanBackward(runtime, inputs, dy, { states: runtime.zeros([K, 1, 2, N, D]), stateInterval: 32 }),
    ).toThrow(/saved states .* must be/);
    expect(() =>
      selectiveScanBackward(runtime, inputs, dy, saved, { launch: { threadsPerChannel: 4, channels: 32, chunk: 8 } }),
    ).toThrow(/launch .* is invalid/);
    const threeDirections = uploadDirectionTable(runtime, identityDirectionTable(3, L), 3, L);
    expect(() =>
      selectiveScanBackward(
        runtime,
        {
          ...inputs,
          deltaRaw: runtime.zeros([3, 1, L, D]),
          proj: runtime.zeros([L, 3 * 2 * N]),
          table: threeDirections,
          channelParams: runtime.zeros([3 * D, N + 2]),
        },
        dy,
        { states: runtime.zeros([3, 1, 1, N, D]), stateInterval: 32 },
      ),
    ).toThrow(/2, 4 or 8 directions to sum du/);
  });
  // The whole SS2D (src/model/decoder.ts ss2dForward) runs against every official ss2d golden in `npm run parity`.
});
