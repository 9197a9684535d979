import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';
import { reportPageResult } from '../testing/pageResult.ts';
import { checkTrainingSteps } from './gradcheck.ts';

/** gradcheck.html?case=<repo path>: the engine's training steps against the reference (driven by scripts/gradcheck.ts). */
async function main() {
  const path = new URLSearchParams(location.search).get('case');
  if (!path) throw new Error('gradcheck.html needs ?case=<path of a make_gradcheck_case.py file>');
  const response = await fetch(`/${path}`);
  if (!response.ok) throw new Error(`cannot read ${path}: HTTP ${response.status}`);
  const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
  try {
    return await checkTrainingSteps(runtime, new Uint8Array(await response.arrayBuffer()), path);
  } finally {
    runtime.destroy();
  }
}

reportPageResult(main());
