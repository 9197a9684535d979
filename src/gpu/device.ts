import { GpuLimitsError, WebGpuUnavailableError } from './errors.ts';

/**
 * The limits MambaAD needs, and why. The largest storage binding is a stage-3 SS2D activation at batch 16:
 * [16, 8 directions, 128 channels, 4096 positions] f32 = 256 MiB; we ask for the adapter's maximum and require 128 MiB
 * (batch sizes are then chosen to fit).
 */
export const REQUIRED_LIMITS = {
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
  maxBufferSize: 128 * 1024 * 1024,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16 * 1024,
} as const satisfies Partial<Record<keyof GPUSupportedLimits, number>>;

type RequiredLimit = keyof typeof REQUIRED_LIMITS;

export interface AcquiredDevice {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  /** A human-readable adapter name, for the UI and for bench records. */
  readonly adapterName: string;
  /** True for CPU implementations (SwiftShader, lavapipe): callers pick different backends and batch sizes there. */
  readonly isSoftwareAdapter: boolean;
}

export function describeAdapter(adapter: GPUAdapter): { name: string; isSoftware: boolean } {
  const info = adapter.info;
  const parts = [info?.vendor, info?.architecture, info?.device, info?.description].filter((s): s is string => !!s);
  const name = parts.length > 0 ? [...new Set(parts)].join(' ') : 'unnamed adapter';
  const isFallback = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  // Headless Chromium reports empty adapter info for SwiftShader; treat an anonymous adapter as software so that we
  // never pick a GPU-only path on a CPU rasteriser.
  const isSoftware = isFallback || parts.length === 0 || /swiftshader|llvmpipe|lavapipe|software|cpu/i.test(name);
  return { name: parts.length > 0 ? name : 'unnamed adapter (software rasteriser, e.g. SwiftShader)', isSoftware };
}

/**
 * Finds a WebGPU adapter and opens a device with the limits MambaAD needs. `gpu` is navigator.gpu in a browser or a
 * worker, or the object the `webgpu` package creates in Node.
 */
export async function acquireDevice(gpu: GPU | undefined, label = 'mambaad'): Promise<AcquiredDevice> {
  if (!gpu) {
    throw new WebGpuUnavailableError(
      'WebGPU is not available in this browser. Use a current Chrome, Edge or Firefox with WebGPU enabled ' +
        '(chrome://gpu shows its status); images can still be viewed, but models cannot run.',
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new WebGpuUnavailableError(
      'WebGPU is present but no GPU adapter was found (the GPU may be blocklisted or the driver too old).',
    );
  }
  const shortfalls: string[] = [];
  const requiredLimits: Record<string, number> = {};
  for (const [name, needed] of Object.entries(REQUIRED_LIMITS) as [RequiredLimit, number][]) {
    const available = adapter.limits[name];
    if (available < needed) shortfalls.push(`${name} is ${available}, needs ${needed}`);
    // Ask for the adapter's maximum where more helps (buffer sizes), the requirement elsewhere.
    requiredLimits[name] = name === 'maxStorageBufferBindingSize' || name === 'maxBufferSize' ? available : needed;
  }
  if (shortfalls.length > 0) throw new GpuLimitsError(shortfalls);
  const device = await adapter.requestDevice({ label, requiredLimits });
  const { name, isSoftware } = describeAdapter(adapter);
  return { adapter, device, adapterName: name, isSoftwareAdapter: isSoftware };
}
