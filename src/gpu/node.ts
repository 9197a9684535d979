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
  return GpuRuntime.create(pinned.__mambaadDawn, kernelsFromDisk(kernelsDir));
}
