import type { GpuRuntime } from '../gpu/runtime.ts';
import {
  mergeDirections,
  packScanParameters,
  type ScanLaunch,
  SSM_STATES,
  scanLaunchFor,
  selectiveScanForward,
  uploadDirectionTable,
} from '../model/ops/scan.ts';
import { directionTable, scanPermutation } from '../model/scanOrders.ts';

/** The selective scan of one SS2D at a given size (default: a stage-3 block of one image, the longest sequence). */
export interface ScanBenchShape {
  size: number;
  channels: number;
  batch: number;
  dtRank: number;
}

export const STAGE3_SCAN: ScanBenchShape = { size: 64, channels: 128, batch: 1, dtRank: 4 };

export interface ScanBench extends ScanBenchShape {
  directions: 8;
  launch: ScanLaunch;
  /** One forward scan of all 8 directions (gather, scan, scatter fused). */
  scanMs: number;
  /** Millions of state updates (K·B·L·D·N) per second. */
  mUpdatesPerSecond: number;
  mergeMs: number;
  repeats: number;
}

function randomValues(length: number, scale: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = (Math.random() * 2 - 1) * scale;
  return values;
}

/** Mean time of `repeats` runs recorded into one submission, after a run that compiles and warms up. */
async function timeRuns(runtime: GpuRuntime, record: () => void, budgetMs: number): Promise<[number, number]> {
  record();
  await runtime.flush();
  let start = performance.now();
  record();
  await runtime.flush();
  const once = performance.now() - start;
  const repeats = Math.max(1, Math.min(100, Math.round(budgetMs / Math.max(once, 0.01))));
  start = performance.now();
  for (let i = 0; i < repeats; i++) record();
  await runtime.flush();
  return [(performance.now() - start) / repeats, repeats];
}

export async function benchSelectiveScan(
  runtime: GpuRuntime,
  shape: ScanBenchShape = STAGE3_SCAN,
  launch: ScanLaunch = scanLaunchFor(runtime),
): Promise<ScanBench> {
  const { size, channels: D, batch: B, dtRank: R } = shape;
  const K = 8;
  const N = SSM_STATES;
  const L = size * size;
  const ALogs = new Float32Array(K * D * N);
  for (let i = 0; i < ALogs.length; i++) ALogs[i] = Math.log((i % N) + 1);
  const inputs = {
    u: runtime.upload([B, L, D], randomValues(B * L * D, 1)),
    deltaRaw: runtime.upload([K, B, L, D], randomValues(K * B * L * D, 2)),
    proj: runtime.upload([B * L, K * (R + 2 * N)], randomValues(B * L * K * (R + 2 * N), 1)),
    dtRank: R,
    table: uploadDirectionTable(runtime, directionTable(scanPermutation('hilbert', size), size, K), K, L),
    channelParams: packScanParameters(runtime, {
      A: runtime.upload([K * D, N], ALogs),
      isLog: true,
      deltaBias: runtime.upload([K * D], randomValues(K * D, 1)),
      Dskip: runtime.upload([K * D], randomValues(K * D, 1)),
    }),
  };
  const scan = () => selectiveScanForward(runtime, inputs, { launch }).y;
  const [scanMs, repeats] = await timeRuns(runtime, () => scan().dispose(), 2000);
  const y = scan();
  const [mergeMs] = await timeRuns(runtime, () => mergeDirections(runtime, y).dispose(), 500);
  for (const tensor of [y, inputs.u, inputs.deltaRaw, inputs.proj, inputs.table.tensor, inputs.channelParams]) {
    tensor.dispose();
  }
  return {
    ...shape,
    directions: K,
    launch,
    scanMs: +scanMs.toFixed(3),
    mUpdatesPerSecond: +((K * B * L * D * N) / scanMs / 1e3).toFixed(1),
    mergeMs: +mergeMs.toFixed(3),
    repeats,
  };
}
