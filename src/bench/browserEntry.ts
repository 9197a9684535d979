import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';
import { fetchShared } from '../testing/goldens.ts';
import { reportPageResult } from '../testing/pageResult.ts';
import { type BenchOptions, defaultBenchOptions, runBench } from './suite.ts';

/** bench.html?options=<json>: runs the suite on this browser's WebGPU (driven by scripts/bench.ts). */
async function main() {
  const param = new URLSearchParams(location.search).get('options');
  const parsed = param ? (JSON.parse(param) as Partial<BenchOptions> & { weightsUrl?: string }) : {};
  const options: BenchOptions = { ...defaultBenchOptions, ...parsed };
  options.encoderWeights = await fetchShared('models/resnet18-imagenet-l1-l3-bnfolded.safetensors');
  if (parsed.weightsUrl) {
    const response = await fetch(parsed.weightsUrl);
    if (!response.ok) throw new Error(`cannot fetch ${parsed.weightsUrl}: HTTP ${response.status}`);
    options.weights = new Uint8Array(await response.arrayBuffer());
  }
  const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
  try {
    return { host: 'chromium', ...(await runBench(runtime, options)) };
  } finally {
    runtime.destroy();
  }
}

reportPageResult(main());
