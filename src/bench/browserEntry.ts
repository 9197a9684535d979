import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';
import { type BenchOptions, defaultBenchOptions, runBench } from './suite.ts';

/** bench.html?options=<json>: runs the suite on this browser's WebGPU and leaves the record on window.benchResult. */
declare global {
  interface Window {
    benchResult?: { ok: true; record: unknown } | { ok: false; error: string };
  }
}

async function main() {
  const param = new URLSearchParams(location.search).get('options');
  const options: BenchOptions = param ? { ...defaultBenchOptions, ...JSON.parse(param) } : defaultBenchOptions;
  const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
  try {
    return await runBench(runtime, options);
  } finally {
    runtime.destroy();
  }
}

main().then(
  (record) => {
    window.benchResult = { ok: true, record };
    document.getElementById('result')!.textContent = JSON.stringify(record, null, 2);
  },
  (error: Error) => {
    window.benchResult = { ok: false, error: error.message };
  },
);
