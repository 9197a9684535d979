/**
 * The frozen ResNet encoder (an ONNX model from buildResNetEncoderOnnx) on onnxruntime-web, in a browser or in Node.
 *
 * ORT builds used:
 * - browser: the package's default bundle (JSEP), one runtime with both the wasm and the WebGPU execution providers;
 *   its .wasm is served from our own origin.
 * - Node, backend 'wasm': the package's Node build (wasm EP only), which finds its files in node_modules itself.
 * - Node, backend 'webgpu': the browser JSEP bundle (`onnxruntime-web/all`), fed its .wasm from node_modules, on the
 *   WebGPU implementation the caller puts on globalThis.navigator.gpu (e.g. Dawn from the `webgpu` package).
 *
 * ORT's runtime settings (threads, wasm location) are global and fixed by the first session; later encoders share them.
 */

import { describeAdapter } from '../gpu/device.ts';
import { ENCODER_INPUT, ENCODER_OUTPUTS, type EncoderOutputName } from './onnxGraph.ts';

type Ort = typeof import('onnxruntime-web');

export type EncoderBackend = 'wasm' | 'webgpu';

export interface ImageSize {
  readonly height: number;
  readonly width: number;
}

export interface CreateEncoderOptions {
  /** ONNX model bytes, from buildResNetEncoderOnnx. */
  readonly model: Uint8Array;
  /** 'auto' picks per adapter (the rule is at createAutoEncoder). */
  readonly backend: EncoderBackend | 'auto';
  /**
   * wasm threads. In a browser more than 1 needs cross-origin isolation (COOP/COEP headers); without it ORT falls
   * back to 1. Default: ORT's choice (min(4, ceil(cores / 2))). Fixed by the first session ORT creates.
   */
  readonly numThreads?: number;
  /** 'auto' on a hardware adapter times one image of this size on each backend. Default 256x256. */
  readonly probeSize?: ImageSize;
}

export interface FeatureMap {
  readonly data: Float32Array;
  /** [batch, channels, height, width] */
  readonly shape: readonly [number, number, number, number];
}

export type EncoderFeatures = Record<EncoderOutputName, FeatureMap>;

export interface BackendSelection {
  readonly backend: EncoderBackend;
  /** Why this backend, in words, for logs and bench records. */
  readonly reason: string;
  readonly adapterName?: string;
  /** Best of the timed probe runs, ms per image, when the choice was measured. */
  readonly probeMs?: Readonly<Partial<Record<EncoderBackend, number>>>;
}

export interface Encoder {
  readonly backend: EncoderBackend;
  readonly selection: BackendSelection;
  /**
   * Runs the encoder on `batch` ImageNet-normalised images, NCHW float32. The size defaults to square images.
   * Calls are queued: ORT runs one at a time per session.
   */
  run(images: Float32Array, batch: number, size?: ImageSize): Promise<EncoderFeatures>;
  release(): Promise<void>;
}

export class EncoderRuntimeError extends Error {
  override name = 'EncoderRuntimeError';
}

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** Specifiers the browser build must not see (Node-only modules), hence imported through variables. */
const NODE_MODULE = 'node:module';
const NODE_FS = 'node:fs/promises';
const NODE_WEBGPU_ORT = 'onnxruntime-web/all';
const JSEP_WASM = 'onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm';

interface LoadedRuntime {
  readonly ort: Ort;
  /** The thread count the caller asked for when ORT was first configured; undefined when ORT chose. */
  readonly numThreads: number | undefined;
}

const runtimes = new Map<string, Promise<LoadedRuntime>>();

/** Loads and configures one ORT build, once; a later request for a different thread count is an error. */
async function loadRuntime(backend: EncoderBackend, requestedThreads: number | undefined): Promise<Ort> {
  const key = isNode && backend === 'webgpu' ? 'node-webgpu' : isNode ? 'node-wasm' : 'browser';
  // The Node WebGPU runtime always runs one wasm thread (below), whatever the wasm backend was given.
  const numThreads = key === 'node-webgpu' ? undefined : requestedThreads;
  let loading = runtimes.get(key);
  if (!loading) {
    loading = importRuntime(key, numThreads).then((ort) => ({ ort, numThreads }));
    runtimes.set(key, loading);
    loading.catch(() => runtimes.delete(key));
  }
  const runtime = await loading;
  if (numThreads !== undefined && runtime.numThreads !== numThreads) {
    throw new EncoderRuntimeError(
      `onnxruntime-web is already set up with numThreads=${runtime.numThreads ?? 'default'}; it cannot change to ${numThreads} in this page/process`,
    );
  }
  return runtime.ort;
}

async function importRuntime(key: string, numThreads: number | undefined): Promise<Ort> {
  if (key === 'browser') {
    const ort = await import('onnxruntime-web');
    // Vite serves this file from node_modules in dev and copies it into dist/assets at build time (it handles
    // `new URL(literal, import.meta.url)`), so ORT loads it from our origin, never a CDN. The default bundle embeds
    // its JS glue, so the .wasm is the only file it fetches. Node bundlers leave the expression alone.
    const wasm = new URL('../../node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm', import.meta.url);
    ort.env.wasm.wasmPaths = { wasm: wasm.href };
    if (numThreads !== undefined) ort.env.wasm.numThreads = numThreads;
    return ort;
  }
  if (key === 'node-wasm') {
    const ort = await import('onnxruntime-web');
    if (numThreads !== undefined) ort.env.wasm.numThreads = numThreads;
    return ort;
  }
  // The browser bundle in Node: it cannot start its web-worker threads or fetch file: URLs, so one thread and the
  // binary handed over directly.
  acceptSharedWriteBufferData();
  const ort = (await import(/* @vite-ignore */ NODE_WEBGPU_ORT)) as Ort;
  const { createRequire } = (await import(/* @vite-ignore */ NODE_MODULE)) as typeof import('node:module');
  const { readFile } = (await import(/* @vite-ignore */ NODE_FS)) as typeof import('node:fs/promises');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmBinary = await readFile(createRequire(import.meta.url).resolve(JSEP_WASM));
  return ort;
}

const SHARED_DATA_PATCH = Symbol.for('mambaad.writeBufferAcceptsSharedData');

/**
 * ORT uploads straight from its wasm heap, a SharedArrayBuffer in the threaded build, but Dawn's Node binding (the
 * `webgpu` package) rejects shared memory in queue.writeBuffer ("no overload matched for writeBuffer"). Copy such
 * data into an ordinary buffer first; other data passes through untouched.
 */
export function acceptSharedWriteBufferData(): void {
  const queueClass = (globalThis as { GPUQueue?: { prototype: GPUQueue } }).GPUQueue;
  if (!queueClass) {
    throw new EncoderRuntimeError(
      `backend 'webgpu' in Node needs the WebGPU globals (GPUQueue, ...). ${NODE_GPU_HINT}`,
    );
  }
  const proto = queueClass.prototype as GPUQueue & { [SHARED_DATA_PATCH]?: true };
  if (proto[SHARED_DATA_PATCH]) return;
  const writeBuffer = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buffer, bufferOffset, data, dataOffset, size) {
    const view = ArrayBuffer.isView(data) ? data : undefined;
    const backing = view ? view.buffer : data;
    if (!(backing instanceof SharedArrayBuffer)) {
      return writeBuffer.call(this, buffer, bufferOffset, data, dataOffset, size);
    }
    // dataOffset and size count elements for a typed array, bytes otherwise (WebGPU spec).
    const unit = view && !(view instanceof DataView) ? (view as Uint8Array).BYTES_PER_ELEMENT : 1;
    const start = (view?.byteOffset ?? 0) + (dataOffset ?? 0) * unit;
    const length =
      size === undefined ? (view?.byteLength ?? backing.byteLength) - (dataOffset ?? 0) * unit : size * unit;
    const copy = new Uint8Array(length);
    copy.set(new Uint8Array(backing, start, length));
    return writeBuffer.call(this, buffer, bufferOffset, copy);
  };
  proto[SHARED_DATA_PATCH] = true;
}

function webGpuOf(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

const NODE_GPU_HINT =
  "In Node, ORT's WebGPU EP needs the WebGPU globals and navigator.gpu, e.g. from the 'webgpu' package (Dawn): " +
  "import { create, globals } from 'webgpu'; Object.assign(globalThis, globals); then define navigator.gpu = " +
  'create([]) (createNodeRuntime in src/gpu/node.ts does this).';

/** The adapter ORT's WebGPU EP will get (it calls requestAdapter() with default options), or why there is none. */
async function probeAdapter(): Promise<{ adapter: GPUAdapter } | { missing: string }> {
  const gpu = webGpuOf();
  if (!gpu) {
    return {
      missing: isNode ? `no navigator.gpu in Node. ${NODE_GPU_HINT}` : 'this browser has no WebGPU (navigator.gpu)',
    };
  }
  const adapter = await gpu.requestAdapter();
  return adapter ? { adapter } : { missing: 'navigator.gpu.requestAdapter() found no adapter' };
}

async function createSession(
  ort: Ort,
  model: Uint8Array,
  backend: EncoderBackend,
): Promise<import('onnxruntime-web').InferenceSession> {
  try {
    return await ort.InferenceSession.create(model, { executionProviders: [backend], graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new EncoderRuntimeError(
      `onnxruntime-web could not create a ${backend} session for the encoder: ${String(error)}`,
    );
  }
}

function checkedSize(images: Float32Array, batch: number, size: ImageSize | undefined): ImageSize {
  if (!Number.isInteger(batch) || batch < 1)
    throw new EncoderRuntimeError(`batch must be a positive integer, got ${batch}`);
  const pixels = images.length / (3 * batch);
  if (!Number.isInteger(pixels) || pixels === 0) {
    throw new EncoderRuntimeError(
      `${images.length} values are not ${batch} RGB images (expected a multiple of ${3 * batch})`,
    );
  }
  if (size) {
    if (size.height * size.width !== pixels) {
      throw new EncoderRuntimeError(
        `${images.length} values are not ${batch}x3x${size.height}x${size.width} (${batch * 3 * size.height * size.width})`,
      );
    }
    return size;
  }
  const side = Math.round(Math.sqrt(pixels));
  if (side * side !== pixels) {
    throw new EncoderRuntimeError(`${pixels} pixels per image is not a square image; pass the size explicitly`);
  }
  return { height: side, width: side };
}

function wrapSession(
  ort: Ort,
  session: import('onnxruntime-web').InferenceSession,
  selection: BackendSelection,
): Encoder {
  let queue: Promise<unknown> = Promise.resolve();
  const runOnce = async (images: Float32Array, batch: number, size: ImageSize): Promise<EncoderFeatures> => {
    const input = new ort.Tensor('float32', images, [batch, 3, size.height, size.width]);
    const outputs = await session.run({ [ENCODER_INPUT]: input });
    const features = {} as Record<EncoderOutputName, FeatureMap>;
    for (const name of ENCODER_OUTPUTS) {
      const tensor = outputs[name];
      if (!tensor || !(tensor.data instanceof Float32Array) || tensor.dims.length !== 4) {
        throw new EncoderRuntimeError(`the encoder model gave no float32 NCHW output "${name}"`);
      }
      const [n, c, h, w] = tensor.dims;
      features[name] = { data: tensor.data, shape: [n!, c!, h!, w!] };
    }
    return features;
  };
  return {
    backend: selection.backend,
    selection,
    async run(images, batch, size) {
      const checked = checkedSize(images, batch, size);
      const result = queue.then(() => runOnce(images, batch, checked));
      queue = result.catch(() => undefined);
      return result;
    },
    release: () => queue.then(() => session.release()),
  };
}

/** A fixed, image-like probe input (values of ImageNet-normalised magnitude), so timings are repeatable. */
function probeImage(size: ImageSize): Float32Array {
  const data = new Float32Array(3 * size.height * size.width);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.0137) * 1.5;
  return data;
}

async function timeProbe(encoder: Encoder, size: ImageSize): Promise<number> {
  const image = probeImage(size);
  await encoder.run(image, 1, size); // warm-up: shader compilation, allocations
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 2; i++) {
    const start = performance.now();
    await encoder.run(image, 1, size);
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

/**
 * Backend decision rule for 'auto':
 * 1. no WebGPU or no adapter: wasm.
 * 2. a software adapter (SwiftShader, lavapipe, fallback or anonymous adapter): wasm without measuring; on
 *    SwiftShader ORT's WebGPU EP took ~17 s per 256x256 image against 0.16-0.5 s for its wasm EP (30-100x).
 * 3. a hardware adapter: time one probe image on both backends and keep the faster; the losing session is released.
 * The result says why (selection.reason) so that a caller can cache the choice per adapter name.
 */
async function createAutoEncoder(options: CreateEncoderOptions): Promise<Encoder> {
  const probe = await probeAdapter();
  if ('missing' in probe) return createFixedEncoder(options, 'wasm', `auto: ${probe.missing}`);
  const { name: adapterName, isSoftware } = describeAdapter(probe.adapter);
  if (isSoftware) {
    return createFixedEncoder(
      options,
      'wasm',
      `auto: software adapter (${adapterName}); ORT's WebGPU convs run far slower there than wasm`,
      adapterName,
    );
  }
  const size = options.probeSize ?? { height: 256, width: 256 };
  const wasm = await createFixedEncoder(options, 'wasm', 'probe');
  const wasmMs = await timeProbe(wasm, size);
  let webgpu: Encoder;
  try {
    webgpu = await createFixedEncoder(options, 'webgpu', 'probe');
  } catch (error) {
    const reason = `auto: the WebGPU session failed on ${adapterName} (${String(error)})`;
    return wrapSelection(wasm, { backend: 'wasm', reason, adapterName, probeMs: { wasm: wasmMs } });
  }
  const webgpuMs = await timeProbe(webgpu, size);
  const probeMs = { wasm: wasmMs, webgpu: webgpuMs };
  const [winner, loser, backend] =
    webgpuMs < wasmMs ? [webgpu, wasm, 'webgpu' as const] : [wasm, webgpu, 'wasm' as const];
  await loser.release();
  const timings = `webgpu ${webgpuMs.toFixed(1)} ms vs wasm ${wasmMs.toFixed(1)} ms per ${size.height}x${size.width} image`;
  return wrapSelection(winner, {
    backend,
    reason: `auto: measured on ${adapterName}: ${timings}`,
    adapterName,
    probeMs,
  });
}

function wrapSelection(encoder: Encoder, selection: BackendSelection): Encoder {
  return { ...encoder, selection };
}

async function createFixedEncoder(
  options: CreateEncoderOptions,
  backend: EncoderBackend,
  reason: string,
  adapterName?: string,
): Promise<Encoder> {
  if (backend === 'webgpu') {
    const probe = await probeAdapter();
    if ('missing' in probe) throw new EncoderRuntimeError(`backend 'webgpu' is unavailable: ${probe.missing}`);
    adapterName ??= describeAdapter(probe.adapter).name;
  }
  const ort = await loadRuntime(backend, options.numThreads);
  const session = await createSession(ort, options.model, backend);
  return wrapSession(ort, session, { backend, reason, ...(adapterName ? { adapterName } : {}) });
}

export async function createEncoder(options: CreateEncoderOptions): Promise<Encoder> {
  if (options.backend === 'auto') return createAutoEncoder(options);
  if (options.backend !== 'wasm' && options.backend !== 'webgpu') {
    throw new EncoderRuntimeError(`unknown backend "${String(options.backend)}"; expected 'wasm', 'webgpu' or 'auto'`);
  }
  return createFixedEncoder(options, options.backend, 'requested');
}
