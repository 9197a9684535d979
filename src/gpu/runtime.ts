import { BufferPool } from './bufferPool.ts';
import { type AcquiredDevice, acquireDevice } from './device.ts';
import { DeviceLostError, GpuOutOfMemoryError, KernelError } from './errors.ts';
import { type KernelRef, KernelRegistry, type KernelSourceLoader, kernelName } from './kernels.ts';
import { Tensor } from './tensor.ts';

/**
 * One dispatch of a kernel. Binding convention for every kernel in kernels/: when `params` is given it is a uniform
 * at @binding(0) and the storage buffers follow from @binding(1) in the order given; otherwise the storage buffers
 * start at @binding(0).
 */
export interface Dispatch {
  readonly kernel: KernelRef;
  readonly params?: ArrayBufferView;
  readonly buffers: readonly (Tensor | GPUBuffer)[];
  /** Workgroup counts, e.g. from workgroupsFor(). */
  readonly workgroups: readonly [number, number?, number?];
}

type PendingCommand =
  | { kind: 'dispatch'; dispatch: Dispatch; paramsOffset: number }
  | { kind: 'clear'; buffer: GPUBuffer; size: number }
  | { kind: 'copy'; from: GPUBuffer; to: GPUBuffer; size: number; fromOffset: number; toOffset: number };

const UNIFORM_ALIGNMENT = 256;

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * The GPU runtime: a device, a buffer pool, the kernel registry, and a command batch. Ops record dispatches
 * synchronously; flush() compiles what is new, encodes the batch, submits it inside error scopes and waits for it.
 * Every wait also watches device loss, so a lost device rejects pending work instead of hanging.
 */
export class GpuRuntime {
  readonly device: GPUDevice;
  readonly adapterName: string;
  readonly isSoftwareAdapter: boolean;
  readonly pool: BufferPool;
  readonly kernels: KernelRegistry;
  /** Resolves when the device is lost, with the reason. Never rejects. */
  readonly lost: Promise<DeviceLostError>;

  private pending: PendingCommand[] = [];
  private paramBytes = new Uint8Array(4096);
  private paramLength = 0;
  private paramBuffer: GPUBuffer | undefined;
  private lostError: DeviceLostError | undefined;
  /** Staging buffers that live until the batch that reads them has run. */
  private transient: GPUBuffer[] = [];
  private placeholderBuffer: GPUBuffer | undefined;

  constructor(acquired: AcquiredDevice, loadSource: KernelSourceLoader) {
    this.device = acquired.device;
    this.adapterName = acquired.adapterName;
    this.isSoftwareAdapter = acquired.isSoftwareAdapter;
    this.pool = new BufferPool(this.device);
    this.kernels = new KernelRegistry(this.device, loadSource);
    this.lost = this.device.lost.then((info) => {
      this.lostError = new DeviceLostError(info.reason ?? 'unknown', info.message);
      return this.lostError;
    });
  }

  static async create(gpu: GPU | undefined, loadSource: KernelSourceLoader): Promise<GpuRuntime> {
    return new GpuRuntime(await acquireDevice(gpu), loadSource);
  }

  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  get maxWorkgroupsPerDimension(): number {
    return this.device.limits.maxComputeWorkgroupsPerDimension;
  }

  /**
   * A small read-only storage buffer to bind where a kernel declares an optional input it will not read (WGSL layouts
   * are static; binding the output there instead would alias a writable buffer).
   */
  get placeholder(): GPUBuffer {
    this.placeholderBuffer ??= this.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE,
      label: 'unused optional input',
    });
    return this.placeholderBuffer;
  }

  // ---- tensors ----

  empty(shape: readonly number[], label?: string): Tensor {
    this.throwIfLost();
    const bytes = Math.max(4, shape.reduce((n, d) => n * d, 1) * 4);
    return new Tensor(shape, this.pool.acquire(bytes, label), (buffer) => this.pool.release(buffer));
  }

  /** A tensor filled with zeros when the batch runs (pooled buffers hold stale data otherwise). */
  zeros(shape: readonly number[], label?: string): Tensor {
    const tensor = this.empty(shape, label);
    this.pending.push({ kind: 'clear', buffer: tensor.buffer, size: tensor.buffer.size });
    return tensor;
  }

  upload(shape: readonly number[], data: Float32Array, label?: string): Tensor {
    const tensor = this.empty(shape, label);
    if (data.length !== tensor.size) {
      tensor.dispose();
      throw new Error(`upload${label ? ` ${label}` : ''}: ${data.length} values for shape [${shape.join(', ')}]`);
    }
    if (this.pending.length === 0) {
      this.device.queue.writeBuffer(tensor.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    } else {
      // queue.writeBuffer would land before the recorded-but-unsubmitted batch, which may still write this pooled
      // buffer under its previous owner; a staged copy keeps the upload in batch order.
      const staging = this.device.createBuffer({
        size: data.byteLength,
        usage: GPUBufferUsage.COPY_SRC,
        mappedAtCreation: true,
        label: `upload ${label ?? ''}`,
      });
      new Float32Array(staging.getMappedRange()).set(data);
      staging.unmap();
      this.pending.push({
        kind: 'copy',
        from: staging,
        to: tensor.buffer,
        size: data.byteLength,
        fromOffset: 0,
        toOffset: 0,
      });
      this.transient.push(staging);
    }
    return tensor;
  }

  /**
   * Copies `size` bytes (default: all of `from`) at the current point of the batch, from byte `fromOffset` of `from`
   * to byte `toOffset` of `to` (offsets and size multiples of 4, as WebGPU requires).
   */
  copy(from: Tensor, to: Tensor, size = from.byteLength, fromOffset = 0, toOffset = 0): void {
    if (fromOffset + size > from.buffer.size || toOffset + size > to.buffer.size) {
      throw new Error(
        `copy: ${size} bytes from offset ${fromOffset} of a ${from.buffer.size}-byte buffer to offset ${toOffset} of a ` +
          `${to.buffer.size}-byte buffer do not fit`,
      );
    }
    this.pending.push({ kind: 'copy', from: from.buffer, to: to.buffer, size, fromOffset, toOffset });
  }

  // ---- dispatch ----

  dispatch(dispatch: Dispatch): void {
    this.throwIfLost();
    let paramsOffset = -1;
    if (dispatch.params) {
      paramsOffset = this.paramLength;
      const bytes = new Uint8Array(dispatch.params.buffer, dispatch.params.byteOffset, dispatch.params.byteLength);
      const end = paramsOffset + align(bytes.byteLength, UNIFORM_ALIGNMENT);
      if (end > this.paramBytes.byteLength) {
        const grown = new Uint8Array(Math.max(end, this.paramBytes.byteLength * 2));
        grown.set(this.paramBytes);
        this.paramBytes = grown;
      }
      this.paramBytes.set(bytes, paramsOffset);
      this.paramLength = end;
    }
    const [x, y = 1, z = 1] = dispatch.workgroups;
    const max = this.maxWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new KernelError(
        kernelName(dispatch.kernel),
        `workgroup count [${x}, ${y}, ${z}] exceeds ${max} per dimension`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    this.pending.push({ kind: 'dispatch', dispatch, paramsOffset });
  }

  /**
   * Workgroup counts that cover `invocations` threads of a 1-D kernel with `workgroupSize` threads per group, split
   * over x and y when there are more groups than one dimension allows. Kernels recover the linear index as
   * `gid.x + gid.y * num_workgroups.x * WORKGROUP_SIZE` and return when it is >= their element count.
   */
  workgroupsFor(invocations: number, workgroupSize: number): [number, number] {
    const groups = Math.ceil(invocations / workgroupSize);
    const max = this.maxWorkgroupsPerDimension;
    if (groups <= max) return [groups, 1];
    const x = max;
    return [x, Math.ceil(groups / x)];
  }

  /** Encodes and submits everything recorded so far and waits until the GPU has finished it. */
  async flush(): Promise<void> {
    this.throwIfLost();
    const commands = this.pending;
    const paramLength = this.paramLength;
    const transient = this.transient;
    this.pending = [];
    this.paramLength = 0;
    this.transient = [];
    if (commands.length === 0) return;
    try {
      await this.submit(commands, paramLength);
    } finally {
      for (const buffer of transient) buffer.destroy();
    }
  }

  private async submit(commands: PendingCommand[], paramLength: number): Promise<void> {
    // Compile what this batch needs (cached after the first time).
    await this.watchLoss(
      Promise.all(commands.flatMap((c) => (c.kind === 'dispatch' ? [this.kernels.pipeline(c.dispatch.kernel)] : []))),
    );

    const device = this.device;
    if (paramLength > 0) {
      if (!this.paramBuffer || this.paramBuffer.size < paramLength) {
        this.paramBuffer?.destroy();
        this.paramBuffer = device.createBuffer({
          size: align(paramLength, 64 * 1024),
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          label: 'dispatch params',
        });
      }
      // Queue order makes this safe even though the previous batch used the same buffer: it has finished.
      device.queue.writeBuffer(this.paramBuffer, 0, this.paramBytes.buffer, 0, paramLength);
    }

    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder({ label: 'batch' });
    const bindErrors: Promise<string | undefined>[] = [];
    let pass: GPUComputePassEncoder | undefined;
    for (const command of commands) {
      if (command.kind !== 'dispatch') {
        pass?.end();
        pass = undefined;
        if (command.kind === 'clear') encoder.clearBuffer(command.buffer, 0, command.size);
        else encoder.copyBufferToBuffer(command.from, command.fromOffset, command.to, command.toOffset, command.size);
        continue;
      }
      const { dispatch, paramsOffset } = command;
      const pipeline = this.kernels.compiled(dispatch.kernel)!;
      const entries: GPUBindGroupEntry[] = [];
      if (paramsOffset >= 0 && this.paramBuffer && dispatch.params) {
        entries.push({
          binding: 0,
          resource: { buffer: this.paramBuffer, offset: paramsOffset, size: dispatch.params.byteLength },
        });
      }
      for (const b of dispatch.buffers) {
        entries.push({ binding: entries.length, resource: { buffer: b instanceof Tensor ? b.buffer : b } });
      }
      // A scope per bind group names the kernel whose bindings are wrong (the most common mistake).
      device.pushErrorScope('validation');
      const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      const name = kernelName(dispatch.kernel);
      bindErrors.push(device.popErrorScope().then((e) => (e ? `${name}: ${e.message}` : undefined)));
      pass ??= encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      const [x, y = 1, z = 1] = dispatch.workgroups;
      pass.dispatchWorkgroups(x, y, z);
    }
    pass?.end();
    device.queue.submit([encoder.finish()]);
    const validation = device.popErrorScope();
    const outOfMemory = device.popErrorScope();

    const [bindMessages, validationError, oomError] = await this.watchLoss(
      Promise.all([Promise.all(bindErrors), validation, outOfMemory]),
    );
    const firstBindError = bindMessages.find((m) => m !== undefined);
    if (firstBindError) throw new KernelError(firstBindError.split(':')[0]!, firstBindError);
    if (validationError) {
      const names = [
        ...new Set(commands.flatMap((c) => (c.kind === 'dispatch' ? [kernelName(c.dispatch.kernel)] : []))),
      ];
      throw new KernelError(
        names.join(', '),
        `validation error in a batch with these kernels: ${validationError.message}`,
      );
    }
    if (oomError) throw new GpuOutOfMemoryError(`GPU out of memory: ${oomError.message}`);
    await this.watchLoss(device.queue.onSubmittedWorkDone());
  }

  /** Runs the pending batch and copies a tensor back to the CPU. */
  async read(tensor: Tensor): Promise<Float32Array> {
    if (tensor.isDisposed) throw new Error('read: the tensor was disposed');
    await this.flush();
    const staging = this.device.createBuffer({
      size: tensor.byteLength,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: 'readback',
    });
    try {
      const encoder = this.device.createCommandEncoder({ label: 'readback' });
      encoder.copyBufferToBuffer(tensor.buffer, 0, staging, 0, tensor.byteLength);
      this.device.queue.submit([encoder.finish()]);
      await this.watchLoss(staging.mapAsync(GPUMapMode.READ));
      return new Float32Array(staging.getMappedRange().slice(0));
    } finally {
      staging.destroy();
    }
  }

  destroy(): void {
    this.pool.trim();
    this.paramBuffer?.destroy();
    this.placeholderBuffer?.destroy();
    this.device.destroy();
  }

  // ---- loss ----

  private throwIfLost(): void {
    if (this.lostError) throw this.lostError;
  }

  private async watchLoss<T>(work: Promise<T>): Promise<T> {
    return Promise.race([
      work,
      this.lost.then((error) => {
        throw error;
      }),
    ]);
  }
}
