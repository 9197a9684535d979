import { describe, expect, it } from 'vitest';
import { binary, unary } from '../model/ops/elementwise.ts';
import { DeviceLostError, KernelError } from './errors.ts';
import { GpuHost, type GpuStatus } from './host.ts';
import { loadBundledKernel } from './kernelSources.browser.ts';
import { GpuRuntime } from './runtime.ts';

const brokenKernels = (family: string) => {
  if (family === 'broken') return '@compute @workgroup_size(1) fn main() { let x: f32 = undefined_thing; }';
  return loadBundledKernel(family);
};

describe('GpuRuntime', () => {
  it('reports the adapter and treats SwiftShader as a software adapter', async () => {
    const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
    expect(runtime.adapterName.length).toBeGreaterThan(0);
    expect(runtime.isSoftwareAdapter).toBe(true);
    runtime.destroy();
  });

  it('turns a WGSL compile error into a KernelError that names the kernel and the line', async () => {
    const runtime = await GpuRuntime.create(navigator.gpu, brokenKernels);
    runtime.dispatch({ kernel: { family: 'broken', entryPoint: 'main' }, buffers: [], workgroups: [1] });
    const error = await runtime.flush().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).kernel).toBe('broken');
    expect((error as Error).message).toMatch(/line 1:.*undefined_thing/);
    runtime.destroy();
  });

  it('turns a binding validation error into a KernelError that names the kernel', async () => {
    const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
    const x = runtime.upload([4], new Float32Array(4));
    // relu binds (params, x, y): leaving out y is a validation error.
    runtime.dispatch({
      kernel: { family: 'elementwise', entryPoint: 'relu' },
      params: Uint32Array.of(4),
      buffers: [x],
      workgroups: [1],
    });
    await expect(runtime.flush()).rejects.toThrow(/kernel elementwise\.relu/);
    runtime.destroy();
  });

  it('reuses pooled buffers by size class', async () => {
    const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
    const a = runtime.upload([1000], new Float32Array(1000).fill(1));
    const b = unary(runtime, 'relu', a);
    await runtime.flush();
    const created = runtime.pool.stats.created;
    b.dispose();
    const c = unary(runtime, 'silu', a); // 1000 floats again: same size class as b
    expect(runtime.pool.stats.created).toBe(created);
    expect(runtime.pool.stats.reused).toBeGreaterThan(0);
    expect((await runtime.read(c))[0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
    runtime.destroy();
  });

  it('keeps an upload in batch order when its pooled buffer is still written by recorded work', async () => {
    const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
    const ones = runtime.upload([64], new Float32Array(64).fill(1));
    const sum = binary(runtime, 'add', ones, ones); // recorded, not submitted: will write 2s into sum's buffer
    sum.dispose();
    const uploaded = runtime.upload([64], new Float32Array(64).fill(5)); // reuses sum's buffer
    expect(uploaded.buffer).toBe(sum.buffer);
    expect([...(await runtime.read(uploaded))]).toEqual(new Array(64).fill(5));
    runtime.destroy();
  });

  it('rejects pending work with DeviceLostError when the device is lost, and the host recovers', async () => {
    const host = new GpuHost(() => GpuRuntime.create(navigator.gpu, loadBundledKernel));
    const statuses: GpuStatus['state'][] = [];
    host.onStatus((s) => statuses.push(s.state));
    const first = await host.runtime();
    const x = first.upload([16], new Float32Array(16));
    const pending = first.read(unary(first, 'relu', x));
    first.device.destroy(); // the closest a test can get to a driver reset
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeviceLostError);
    await first.lost;
    expect(statuses).toContain('lost');
    const second = await host.runtime();
    expect(second).not.toBe(first);
    const y = await second.read(unary(second, 'relu', second.upload([2], Float32Array.of(-1, 3))));
    expect([...y]).toEqual([0, 3]);
    expect(statuses.at(-1)).toBe('ready');
    await host.dispose();
  });
});
