/** Errors the GPU runtime raises. Each message says what went wrong and, where it can, what to do about it. */

export class WebGpuUnavailableError extends Error {
  override name = 'WebGpuUnavailableError';
}

export class GpuLimitsError extends Error {
  override name = 'GpuLimitsError';
  constructor(readonly shortfalls: readonly string[]) {
    super(`This GPU's limits are too small for MambaAD: ${shortfalls.join('; ')}`);
  }
}

/** A WGSL compile error, a pipeline validation error, or a validation error raised by a dispatch of this kernel. */
export class KernelError extends Error {
  override name = 'KernelError';
  constructor(
    readonly kernel: string,
    message: string,
  ) {
    super(`kernel ${kernel}: ${message}`);
  }
}

export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
  constructor(
    readonly reason: GPUDeviceLostReason | 'unknown',
    detail: string,
  ) {
    super(`The GPU device was lost (${reason}${detail ? `: ${detail}` : ''}).`);
  }
}

export class GpuOutOfMemoryError extends Error {
  override name = 'GpuOutOfMemoryError';
}
