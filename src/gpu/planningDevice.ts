import type { AcquiredDevice } from './device.ts';

/**
 * A stand-in GPUDevice that runs no GPU work: buffers are sizes without memory, every command is a no-op, readback
 * returns zeros. The runtime's buffer pool behaves exactly as on a real device (it only sees acquire and release), so
 * recording a workload against this device measures the pool's peak — its GPU memory — in milliseconds, anywhere,
 * before any real allocation. Only the members the runtime uses are implemented.
 */
class PlannedBuffer {
  constructor(
    readonly size: number,
    public label: string,
  ) {}
  destroy(): void {}
  unmap(): void {}
  mapAsync(): Promise<void> {
    return Promise.resolve();
  }
  getMappedRange(): ArrayBuffer {
    return new ArrayBuffer(this.size);
  }
}

const noop = () => undefined;
const commandEncoder = {
  beginComputePass: () => ({ setPipeline: noop, setBindGroup: noop, dispatchWorkgroups: noop, end: noop }),
  clearBuffer: noop,
  copyBufferToBuffer: noop,
  finish: () => ({}),
};

export function planningDevice(limits: Partial<GPUSupportedLimits> = {}): AcquiredDevice {
  const device = {
    label: 'memory planning (no GPU work)',
    limits: {
      maxComputeWorkgroupsPerDimension: 65535,
      maxStorageBufferBindingSize: 2 ** 31,
      maxBufferSize: 2 ** 31,
      ...limits,
    },
    lost: new Promise<never>(noop),
    queue: { writeBuffer: noop, submit: noop, onSubmittedWorkDone: () => Promise.resolve() },
    createBuffer: (d: GPUBufferDescriptor) => new PlannedBuffer(d.size, d.label ?? ''),
    createShaderModule: () => ({ getCompilationInfo: () => Promise.resolve({ messages: [] }) }),
    createComputePipelineAsync: () => Promise.resolve({ getBindGroupLayout: () => ({}) }),
    createBindGroup: () => ({}),
    createCommandEncoder: () => commandEncoder,
    pushErrorScope: noop,
    popErrorScope: () => Promise.resolve(null),
    destroy: noop,
  };
  return {
    adapter: {} as GPUAdapter,
    device: device as unknown as GPUDevice,
    adapterName: 'memory planner',
    isSoftwareAdapter: false,
  };
}
