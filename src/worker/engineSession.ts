/**
 * The inference engine that lives in the worker: one GPU runtime (replaced after device loss), the frozen encoder on
 * onnxruntime-web, and the loaded MambaAD. The worker entry (engineWorker.ts) feeds it messages one at a time.
 */

import { TRAINING_RECORD_KEY } from '../../training/weightsFile.ts';
import { anomalyMaps, disposeAnomalyMaps } from '../anomaly/anomalyMap.ts';
import { createEncoder, type Encoder } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../encoder/onnxGraph.ts';
import { DeviceLostError } from '../gpu/errors.ts';
import { GpuHost } from '../gpu/host.ts';
import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';
import { Tensor } from '../gpu/tensor.ts';
import { encodeBatch } from '../inference/features.ts';
import { parseSafetensors, type SafetensorsFile } from '../io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, parseModelConfig } from '../model/config.ts';
import { modelParameters } from '../model/initialization.ts';
import { loadMambaAD, type MambaAD, mambaadForward } from '../model/mambaad.ts';
import { type PreparedImage, prepareImage } from './engineImages.ts';
import {
  type AnalyzeInput,
  type AnalyzeResult,
  type DeviceLossTiming,
  type EngineStatus,
  EVALUATION_RECORD_KEY,
  INITIAL_ENGINE_STATUS,
  type ModelSummary,
  THRESHOLD_METADATA_KEY,
} from './engineProtocol.ts';

/** The encoder whose weights the studio has (../shared/models); models for other encoders cannot run here. */
const SUPPORTED_ENCODER = 'resnet18';
const SUPPORTED_ENCODER_CHANNELS = [64, 128, 256];
/** Images per GPU batch on a hardware adapter; a software adapter runs one at a time (it is CPU-bound anyway). */
const HARDWARE_BATCH = 8;

export interface EngineOptions {
  debug: boolean;
  /** False when the page itself has no navigator.gpu: the worker then behaves as a browser without WebGPU. */
  pageHasWebGpu: boolean;
  encoderWeightsUrl: string;
}

interface AcceptedModel {
  readonly bytes: Uint8Array;
  readonly summary: ModelSummary;
}

interface ModelOnRuntime {
  readonly runtime: GpuRuntime;
  readonly bytes: Uint8Array;
  readonly model: Promise<MambaAD>;
}

export interface AnalyzeJob {
  /** The next inputs (up to `count`); an empty list when there are no more. */
  pull(count: number): Promise<AnalyzeInput[]>;
  emit(result: AnalyzeResult): void;
  readonly cancelled: () => boolean;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Frees every GPU tensor reachable from a loaded model's weights (the model has no dispose of its own). */
function disposeTensors(value: unknown, seen = new Set<object>()): void {
  if (value instanceof Tensor) {
    value.dispose();
    return;
  }
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  const children = value instanceof Map ? [...value.values()] : Object.values(value);
  for (const child of children) disposeTensors(child, seen);
}

function parameterCount(config: ModelConfig): number {
  return modelParameters(config)
    .filter((p) => p.trainable)
    .reduce((n, p) => n + p.shape.reduce((m, d) => m * d, 1), 0);
}

function jsonObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function summarize(file: SafetensorsFile, name: string, config: ModelConfig): ModelSummary {
  const summary: ModelSummary = { name, config, parameterCount: parameterCount(config) };
  const record = jsonObject(file.metadata[TRAINING_RECORD_KEY]);
  if (record) summary.trainingRecord = record;
  const evaluation = jsonObject(file.metadata[EVALUATION_RECORD_KEY]);
  if (evaluation) summary.evaluationRecord = evaluation;
  const threshold = Number(file.metadata[THRESHOLD_METADATA_KEY]);
  if (file.metadata[THRESHOLD_METADATA_KEY] !== undefined && Number.isFinite(threshold)) summary.threshold = threshold;
  return summary;
}

/** The config, checked against what this studio can run, before anything is uploaded. */
function runnableConfig(file: SafetensorsFile, name: string): ModelConfig | undefined {
  const json = file.metadata[CONFIG_METADATA_KEY];
  if (json === undefined) return undefined; // loadMambaAD explains what is missing
  const config = parseModelConfig(json, name);
  if (
    config.encoder !== SUPPORTED_ENCODER ||
    config.encoderChannels.some((c, i) => c !== SUPPORTED_ENCODER_CHANNELS[i])
  ) {
    throw new Error(
      `${name}: the model was trained on ${config.encoder} features (channels ${config.encoderChannels.join(', ')}), ` +
        `but this studio runs the ${SUPPORTED_ENCODER} encoder (channels ${SUPPORTED_ENCODER_CHANNELS.join(', ')})`,
    );
  }
  return config;
}

function lostMessage(error: DeviceLostError): string {
  return `${error.message} This image was not analysed; the studio re-opened the GPU: analyse it again.`;
}

export class InferenceEngine {
  private status: EngineStatus = INITIAL_ENGINE_STATUS;
  private host: GpuHost | undefined;
  private options: EngineOptions | undefined;
  private encoder: Promise<Encoder> | undefined;
  private accepted: AcceptedModel | undefined;
  private onRuntime: ModelOnRuntime | undefined;
  private recovering = false;
  private pendingDeviceLoss = false;

  constructor(private readonly publish: (status: EngineStatus) => void) {}

  init(options: EngineOptions): void {
    if (this.host) return;
    this.options = options;
    const gpu = options.pageHasWebGpu ? navigator.gpu : undefined;
    this.host = new GpuHost(() => GpuRuntime.create(gpu, loadBundledKernel));
    this.host.onStatus((status) => {
      switch (status.state) {
        case 'starting':
          if (!this.recovering) this.update({ gpu: { state: 'starting' } });
          return;
        case 'ready':
          if (!this.recovering) this.update({ gpu: status });
          return;
        case 'failed':
          this.recovering = false;
          this.update({ gpu: { state: 'failed', message: status.error.message } });
          return;
        case 'lost':
          void this.recover(status.error);
          return;
      }
    });
    void this.runtime().catch(() => undefined);
    this.encoder = this.loadEncoderFrom(options.encoderWeightsUrl);
    this.encoder.catch(() => undefined);
  }

  // ---- status ----

  private update(change: Partial<EngineStatus>): void {
    this.status = { ...this.status, ...change };
    this.publish(this.status);
  }

  private runtime(): Promise<GpuRuntime> {
    if (!this.host) return Promise.reject(new Error('the engine was not initialised'));
    return this.host.runtime();
  }

  /** After device loss: open a new device and re-load the model from the kept bytes, then report ready. */
  private async recover(error: DeviceLostError): Promise<void> {
    this.recovering = true;
    this.update({
      gpu: { state: 'recovering', message: error.message },
      lastDeviceLoss: { message: error.message, at: Date.now() },
    });
    try {
      const runtime = await this.runtime();
      if (this.accepted) await this.modelOn(runtime);
      this.recovering = false;
      this.update({
        gpu: { state: 'ready', adapterName: runtime.adapterName, isSoftwareAdapter: runtime.isSoftwareAdapter },
      });
    } catch (failure) {
      this.recovering = false;
      // A loss during recovery starts another recovery through the host; anything else is final.
      if (!(failure instanceof DeviceLostError)) {
        this.update({ gpu: { state: 'failed', message: `recovery after device loss failed: ${message(failure)}` } });
      }
    }
  }

  // ---- encoder ----

  private async loadEncoderFrom(url: string): Promise<Encoder> {
    this.update({ encoder: { state: 'loading' } });
    let response: Response | undefined;
    try {
      response = await fetch(url);
    } catch {
      response = undefined;
    }
    // A single-page server answers unknown paths with index.html, so HTML means "not there" too.
    const isHtml = response?.headers.get('content-type')?.includes('text/html') ?? false;
    if (!response?.ok || isHtml) {
      const missing =
        `The encoder weights (ResNet18, ${url.slice(url.lastIndexOf('/') + 1)}) were not found at ${url}. ` +
        'Choose the file to run models.';
      this.update({ encoder: { state: 'missing', message: missing } });
      throw new Error(missing);
    }
    return this.createEncoderFrom(new Uint8Array(await response.arrayBuffer()), url);
  }

  private async createEncoderFrom(bytes: Uint8Array, name: string): Promise<Encoder> {
    this.update({ encoder: { state: 'loading' } });
    try {
      const model = buildResNetEncoderOnnx(parseSafetensors(bytes, name), SUPPORTED_ENCODER);
      const backend = this.options?.pageHasWebGpu === false ? 'wasm' : 'auto';
      const encoder = await createEncoder({ model, backend });
      this.update({
        encoder: { state: 'ready', backend: encoder.backend, reason: encoder.selection.reason },
      });
      return encoder;
    } catch (error) {
      this.update({ encoder: { state: 'failed', message: message(error) } });
      throw error;
    }
  }

  /** The user picked the encoder weights file (when the served one is missing or broken). */
  async setEncoderWeights(bytes: Uint8Array, name: string): Promise<void> {
    const before = this.status.encoder;
    const next = this.createEncoderFrom(bytes, name);
    try {
      await next;
    } catch (error) {
      // Whatever was there stays: a working encoder, or the explanation of what is missing (the caller shows why
      // this file was refused).
      this.update({ encoder: before });
      throw error;
    }
    const previous = this.encoder;
    this.encoder = next;
    (await previous?.catch(() => undefined))?.release();
  }

  private async readyEncoder(): Promise<Encoder> {
    if (!this.encoder) throw new Error('the engine was not initialised');
    try {
      return await this.encoder;
    } catch (error) {
      throw new Error(`the encoder is not available: ${message(error)}`);
    }
  }

  // ---- model ----

  /** The accepted model's weights on `runtime`, loading them once per runtime (again after device loss). */
  private modelOn(runtime: GpuRuntime): Promise<MambaAD> {
    const accepted = this.accepted;
    if (!accepted) return Promise.reject(new Error('No model loaded: load a weights file in Models first.'));
    const current = this.onRuntime;
    if (current && current.runtime === runtime && current.bytes === accepted.bytes) return current.model;
    const model = (async () => {
      const loaded = loadMambaAD(
        runtime,
        parseSafetensors(accepted.bytes, accepted.summary.name),
        accepted.summary.name,
      );
      await runtime.flush();
      return loaded;
    })();
    this.onRuntime = { runtime, bytes: accepted.bytes, model };
    return model;
  }

  /**
   * Checks and uploads a weights file. On any problem this throws the loader's message and the previous model stays
   * loaded and running.
   */
  async loadModel(bytes: Uint8Array, name: string): Promise<ModelSummary> {
    const runtime = await this.runtime();
    const file = parseSafetensors(bytes, name);
    const checked = runnableConfig(file, name);
    const model = loadMambaAD(runtime, file, name);
    const config = checked ?? model.config;
    await runtime.flush();
    const previous = this.onRuntime;
    this.accepted = { bytes, summary: summarize(file, name, config) };
    this.onRuntime = { runtime, bytes, model: Promise.resolve(model) };
    if (previous?.runtime === runtime) void previous.model.then(disposeTensors, () => undefined);
    this.update({ model: { name } });
    return this.accepted.summary;
  }

  // ---- analysis ----

  async analyze(job: AnalyzeJob): Promise<void> {
    const encoder = await this.readyEncoder();
    if (!this.accepted) throw new Error('No model loaded: load a weights file in Models first.');
    while (!job.cancelled()) {
      const runtime = await this.runtime();
      const batch = runtime.isSoftwareAdapter ? 1 : HARDWARE_BATCH;
      const inputs = await job.pull(batch);
      if (inputs.length === 0) return;
      const size = this.accepted.summary.config.inputSize;
      const prepared: PreparedImage[] = [];
      for (const input of inputs) {
        try {
          prepared.push(await prepareImage(input, size));
        } catch (error) {
          job.emit({ id: input.id, name: input.name, ok: false, error: message(error) });
        }
      }
      if (prepared.length === 0) continue;
      try {
        for (const result of await this.inferBatch(encoder, prepared, size)) job.emit(result);
      } catch (error) {
        const text = error instanceof DeviceLostError ? lostMessage(error) : `analysis failed: ${message(error)}`;
        for (const p of prepared) job.emit({ id: p.input.id, name: p.input.name, ok: false, error: text });
      }
    }
  }

  private async inferBatch(encoder: Encoder, images: PreparedImage[], size: number): Promise<AnalyzeResult[]> {
    const runtime = await this.runtime();
    const model = await this.modelOn(runtime);
    const plane = 3 * size * size;
    const tensor = new Float32Array(images.length * plane);
    for (const [i, image] of images.entries()) tensor.set(image.tensor, i * plane);
    this.update({ busy: true });
    try {
      const encoderStarted = performance.now();
      const features = await encodeBatch(runtime, encoder, tensor, images.length);
      const modelStarted = performance.now();
      try {
        const { z, decoded } = mambaadForward(runtime, model, features);
        z.dispose();
        try {
          if (this.pendingDeviceLoss) {
            // Debug hook (?debug): the device goes away with this batch recorded but not yet run.
            this.pendingDeviceLoss = false;
            runtime.device.destroy();
          }
          const maps = await anomalyMaps(runtime, features, decoded, { outputSize: [size, size] });
          try {
            const all = await runtime.read(maps.map);
            const encoderMs = modelStarted - encoderStarted;
            const modelMs = performance.now() - modelStarted;
            return images.map((image, i) => ({
              id: image.input.id,
              name: image.input.name,
              ok: true as const,
              score: maps.scores[i]!,
              width: image.width,
              height: image.height,
              map: all.slice(i * size * size, (i + 1) * size * size),
              size,
              modelInput: image.modelInput,
              timing: { decodeMs: image.decodeMs, encoderMs, modelMs, batch: images.length },
            }));
          } finally {
            disposeAnomalyMaps(maps);
          }
        } finally {
          for (const d of decoded) d.dispose();
        }
      } finally {
        for (const f of features) f.dispose();
      }
    } finally {
      this.update({ busy: false });
    }
  }

  // ---- debug ----

  async loseDevice(when: DeviceLossTiming): Promise<void> {
    if (!this.options?.debug)
      throw new Error('device loss can only be simulated when the studio is opened with ?debug');
    if (when === 'next-image') {
      this.pendingDeviceLoss = true;
      return;
    }
    (await this.runtime()).device.destroy();
  }
}
