import type { GpuRuntime } from '../gpu/runtime.ts';
import { matmul } from '../model/ops/matmul.ts';

/** What one bench run measured, on one host (Node + Dawn, or a browser). Extended by later op families. */
export interface BenchRecord {
  adapter: string;
  softwareAdapter: boolean;
  matmul: MatmulBench[];
}

export interface MatmulBench {
  n: number;
  ms?: number;
  gflops?: number;
  repeats?: number;
  skipped?: string;
}

export interface BenchOptions {
  matmulSizes: number[];
  /** Sizes above this are skipped on a software adapter, where a 4096² matmul takes minutes. */
  softwareMatmulLimit: number;
}

export const defaultBenchOptions: BenchOptions = { matmulSizes: [1024, 4096], softwareMatmulLimit: 1024 };

function randomMatrix(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < m.length; i++) m[i] = Math.random() - 0.5;
  return m;
}

/** Square matmul throughput: warm-ups (the first compiles), then enough repeats in one submission for ~0.5 s. */
async function benchMatmul(runtime: GpuRuntime, n: number): Promise<MatmulBench> {
  const a = runtime.upload([n, n], randomMatrix(n));
  const b = runtime.upload([n, n], randomMatrix(n));
  const timeBatch = async (repeats: number) => {
    const start = performance.now();
    for (let i = 0; i < repeats; i++) matmul(runtime, a, b).dispose();
    await runtime.flush();
    return performance.now() - start;
  };
  await timeBatch(1);
  const warm = await timeBatch(1);
  const repeats = Math.max(1, Math.min(200, Math.round(500 / Math.max(warm, 0.01))));
  const ms = (await timeBatch(repeats)) / repeats;
  a.dispose();
  b.dispose();
  return { n, ms: +ms.toFixed(3), gflops: +((2 * n ** 3) / ms / 1e6).toFixed(1), repeats };
}

export async function runBench(runtime: GpuRuntime, options: BenchOptions = defaultBenchOptions): Promise<BenchRecord> {
  const record: BenchRecord = { adapter: runtime.adapterName, softwareAdapter: runtime.isSoftwareAdapter, matmul: [] };
  for (const n of options.matmulSizes) {
    if (runtime.isSoftwareAdapter && n > options.softwareMatmulLimit) {
      record.matmul.push({ n, skipped: `software adapter: sizes above ${options.softwareMatmulLimit} take minutes` });
      continue;
    }
    record.matmul.push(await benchMatmul(runtime, n));
  }
  return record;
}
