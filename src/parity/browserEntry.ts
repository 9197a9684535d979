import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';
import { reportPageResult } from '../testing/pageResult.ts';
import { runParity } from './engineParity.ts';

/** parity.html?cases=<comma-separated repo paths>: the engine's parity checks (driven by scripts/parity.ts). */
async function main() {
  const cases = (new URLSearchParams(location.search).get('cases') ?? '').split(',').filter(Boolean);
  const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
  try {
    return await runParity(runtime, cases);
  } finally {
    runtime.destroy();
  }
}

reportPageResult(main());
