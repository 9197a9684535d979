import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';

/** One runtime per test file, on the browser's WebGPU (SwiftShader in CI). */
export function createTestRuntime(): Promise<GpuRuntime> {
  return GpuRuntime.create(navigator.gpu, loadBundledKernel);
}
