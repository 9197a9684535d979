import { kernelsFromDisk } from './kernelSources.node.ts';
import { GpuRuntime } from './runtime.ts';

/**
 * The runtime in Node on Dawn (the `webgpu` package). Dawn aborts the process if the object from create() is
 * garbage-collected while a device is alive, so it is pinned on globalThis for the life of the process.
 */
export async function createNodeRuntime(kernelsDir?: string): Promise<GpuRuntime> {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const pinned = globalThis as { __mambaadDawn?: GPU };
  pinned.__mambaadDawn ??= create([]);
  // onnxruntime-web's WebGPU backend looks for navigator.gpu only (Node 20 has no navigator global).
  const global = globalThis as { navigator?: { gpu?: GPU } };
  if (!global.navigator) global.navigator = { gpu: pinned.__mambaadDawn };
  else if (!global.navigator.gpu) Object.defineProperty(global.navigator, 'gpu', { value: pinned.__mambaadDawn });
  return GpuRuntime.create(pinned.__mambaadDawn, kernelsFromDisk(kernelsDir));
}
