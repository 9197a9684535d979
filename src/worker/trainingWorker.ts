/// <reference lib="webworker" />
/**
 * The training worker: trains MambaAD on its own GPU device (navigator.gpu works in dedicated workers) with the
 * frozen encoder on onnxruntime-web, so the studio stays responsive for hours of training. The run is stored in
 * IndexedDB (images once, a checkpoint every few steps) and can continue after a reload; pause keeps everything on
 * the GPU and continues from the next step. Commands arrive from src/worker/trainingClient.ts.
 */
import {
  readCheckpoint,
  restoreCheckpoint,
  type TrainingRunOptions,
  writeCheckpoint,
} from '../../training/checkpoint.ts';
import { FeatureCache } from '../../training/featureCache.ts';
import { checkTrainingMemory, TrainingMemoryError } from '../../training/memory.ts';
import { AdamW } from '../../training/optimizer.ts';
import { loadTrainableMambaAD, type TrainableMambaAD } from '../../training/trainer.ts';
import { runTrainingLoop, TrainingDivergedError, type TrainingImages } from '../../training/trainLoop.ts';
import { exportWeightsFile, initialWeightsFile } from '../../training/weightsFile.ts';
import { createEncoder, type Encoder } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../encoder/onnxGraph.ts';
import { DeviceLostError } from '../gpu/errors.ts';
import { loadBundledKernel } from '../gpu/kernelSources.browser.ts';
import { GpuRuntime } from '../gpu/runtime.ts';
import { parseSafetensors } from '../io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, parseModelConfig } from '../model/config.ts';
import {
  discardSavedRun,
  type LossPoint,
  loadRunCheckpoint,
  loadRunInputs,
  loadSavedRun,
  type SavedTrainingInputs,
  type SavedTrainingRun,
  saveRunCheckpoint,
  saveRunStart,
  type TrainingImageFile,
} from '../storage/trainingCheckpoints.ts';
import { seededRandom } from '../util/random.ts';
import { prepareImage } from './engineImages.ts';
import type { StartTrainingRequest, TrainingCommand, TrainingEnvironment, TrainingEvent } from './trainingProtocol.ts';
import { RunControl } from './trainingRunControl.ts';

/** The encoder whose weights the studio has; the engine runs only models trained on its features. */
const ENCODER = 'resnet18';
const ENCODER_CHANNELS = [64, 128, 256];

function post(event: TrainingEvent, transfer: Transferable[] = []): void {
  self.postMessage(event, transfer);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A request that cannot work: reported as 'refused', with nothing started or stored. */
class RefusedError extends Error {
  override name = 'RefusedError';
}

interface ActiveRun {
  run: SavedTrainingRun;
  runtime: GpuRuntime;
  encoder: Encoder;
  model: TrainableMambaAD;
  optimizer: AdamW;
  images: TrainingImages;
  featureCache?: FeatureCache;
  losses: LossPoint[];
  step: number;
  /** Whether the run is in IndexedDB (a failure can then be resumed). */
  stored: boolean;
  control: RunControl;
}

let encoderLoading: Promise<Encoder> | undefined;
let active: ActiveRun | undefined;
let busy = false;

async function buildEncoder(bytes: Uint8Array, what: string): Promise<Encoder> {
  const model = buildResNetEncoderOnnx(parseSafetensors(bytes, what), ENCODER);
  return createEncoder({ model, backend: 'auto' });
}

async function fetchEncoderWeights(url: string): Promise<Uint8Array> {
  const file = url.slice(url.lastIndexOf('/') + 1);
  const missing = (why: string) =>
    new RefusedError(
      `the encoder weights could not be read (${why}); choose the file ${file} under Advanced › Encoder weights`,
    );
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw missing(message(error));
  }
  if (!response.ok) throw missing(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The encoder, kept between runs; a user-picked weights file replaces it. */
async function encoderFor(source: TrainingEnvironment): Promise<Encoder> {
  if (source.encoderWeights) {
    const previous = encoderLoading;
    encoderLoading = buildEncoder(source.encoderWeights, 'the chosen encoder weights');
    void previous?.then((e) => e.release()).catch(() => undefined);
  }
  const url = source.encoderWeightsUrl;
  encoderLoading ??= fetchEncoderWeights(url).then((bytes) => buildEncoder(bytes, url));
  try {
    return await encoderLoading;
  } catch (error) {
    encoderLoading = undefined;
    throw error instanceof RefusedError
      ? error
      : new RefusedError(`the encoder could not be loaded: ${message(error)}`);
  }
}

function checkTrainable(config: ModelConfig, what: string): void {
  if (config.encoder !== ENCODER || config.encoderChannels.some((c, i) => c !== ENCODER_CHANNELS[i])) {
    throw new RefusedError(
      `${what} is built on ${config.encoder} features, but the studio trains with the ${ENCODER} encoder`,
    );
  }
}

/** What cannot work, refused before any GPU work, in words the user can act on. */
function checkRequest(request: StartTrainingRequest): ModelConfig {
  const { options, images } = request;
  if (!Number.isInteger(options.epochs) || options.epochs < 1) {
    throw new RefusedError(`epochs must be a whole number of at least 1 (got ${options.epochs})`);
  }
  if (!Number.isInteger(options.batch) || options.batch < 2) {
    throw new RefusedError(`the batch must be at least 2 images (BatchNorm needs more than one; got ${options.batch})`);
  }
  if (images.length < options.batch) {
    throw new RefusedError(
      `${images.length} training image${images.length === 1 ? '' : 's'} for a batch of ${options.batch}: ` +
        'choose more images or a smaller batch (every step needs a full batch)',
    );
  }
  if (!Number.isInteger(request.checkpointEvery) || request.checkpointEvery < 1) {
    throw new RefusedError(`checkpoints every ${request.checkpointEvery} steps: expected a whole number of at least 1`);
  }
  if (!(options.lr > 0) || !(options.dropPathRate >= 0 && options.dropPathRate < 1)) {
    throw new RefusedError(`learning rate ${options.lr} / drop path ${options.dropPathRate} out of range`);
  }
  const { source } = request;
  let config: ModelConfig;
  if (source.kind === 'scratch') config = source.config;
  else {
    const json = parseSafetensors(source.weights, source.name).metadata[CONFIG_METADATA_KEY];
    if (json === undefined) throw new RefusedError(`${source.name}: no "${CONFIG_METADATA_KEY}" in its metadata`);
    config = parseModelConfig(json, source.name);
  }
  checkTrainable(config, source.kind === 'scratch' ? 'the model' : source.name);
  return config;
}

function trainingImages(files: readonly TrainingImageFile[], size: number): TrainingImages {
  return {
    count: files.length,
    load: async (index) => {
      const file = files[index];
      if (!file) throw new Error(`no training image ${index}`);
      try {
        return (await prepareImage({ id: String(index), name: file.name, bytes: file.bytes }, size)).tensor;
      } catch (error) {
        throw new RefusedError(`training image ${file.name}: ${message(error)}`);
      }
    },
  };
}

/**
 * Refuses, before anything is uploaded, a batch that does not fit the GPU memory budget (training/memory.ts), and
 * decides whether the images' encoder features can stay on the GPU (FeatureCache) within it.
 */
async function planMemory(run: SavedTrainingRun, runtime: GpuRuntime, budgetBytes: number): Promise<boolean> {
  const budget = {
    bytes: budgetBytes,
    maxStorageBufferBindingSize: runtime.device.limits.maxStorageBufferBindingSize,
    maxBufferSize: runtime.device.limits.maxBufferSize,
  };
  const { config, options } = run;
  try {
    await checkTrainingMemory(config, options.batch, options.images.length, budget);
    return true;
  } catch (error) {
    if (!(error instanceof TrainingMemoryError)) throw error;
  }
  try {
    await checkTrainingMemory(config, options.batch, 0, budget);
    return false;
  } catch (error) {
    throw error instanceof TrainingMemoryError
      ? new RefusedError(`${error.message} (GPU memory budget: set under Advanced)`)
      : error;
  }
}

/** Opens the GPU, loads the encoder, the model (initial, fine-tuned or from the checkpoint) and checks the images. */
async function prepare(
  run: SavedTrainingRun,
  inputs: SavedTrainingInputs,
  checkpoint: Uint8Array | undefined,
  environment: TrainingEnvironment,
): Promise<ActiveRun> {
  post({ type: 'preparing', message: 'Opening the GPU…' });
  const runtime = await GpuRuntime.create(navigator.gpu, loadBundledKernel);
  try {
    post({ type: 'preparing', message: 'Checking that the batch fits in GPU memory…' });
    const useFeatureCache = await planMemory(run, runtime, environment.gpuMemoryBudgetBytes);
    post({ type: 'preparing', message: 'Loading the encoder…' });
    const encoder = await encoderFor(environment);
    let model: TrainableMambaAD;
    let optimizer: AdamW;
    let step = 0;
    if (checkpoint) {
      post({ type: 'preparing', message: `Restoring the checkpoint at step ${run.checkpointStep}…` });
      const parsed = readCheckpoint(checkpoint, 'the stored checkpoint');
      if (parsed.state.options.images.length !== inputs.images.length) {
        throw new Error(
          `the stored checkpoint was trained on ${parsed.state.options.images.length} images, but ${inputs.images.length} are stored`,
        );
      }
      ({ model, optimizer } = restoreCheckpoint(runtime, parsed, 'the stored checkpoint'));
      step = parsed.state.step;
    } else {
      post({ type: 'preparing', message: 'Creating the model…' });
      const source = inputs.initialWeights
        ? parseSafetensors(inputs.initialWeights, run.from)
        : initialWeightsFile(run.config, seededRandom(run.options.seed));
      model = loadTrainableMambaAD(runtime, source, run.from);
      optimizer = new AdamW(runtime, model.parameters);
    }
    const images = trainingImages(inputs.images, run.config.inputSize);
    let featureCache: FeatureCache | undefined;
    if (useFeatureCache) {
      // Encoding every image once also checks that each one decodes, before the first step.
      featureCache = await FeatureCache.build(runtime, encoder, images, run.config.inputSize, {
        batch: run.options.batch,
        onProgress: (done, total) => post({ type: 'preparing', message: `Encoding the images: ${done} of ${total}…` }),
      });
    } else {
      for (let i = 0; i < images.count; i++) {
        if (i % 16 === 0) post({ type: 'preparing', message: `Checking the images: ${i} of ${images.count}…` });
        await images.load(i);
      }
    }
    return {
      run,
      runtime,
      encoder,
      model,
      optimizer,
      images,
      ...(featureCache ? { featureCache } : {}),
      losses: run.losses.filter((p) => p.step <= step),
      step,
      stored: false,
      control: new RunControl(),
    };
  } catch (error) {
    runtime.destroy();
    throw error;
  }
}

async function storeCheckpoint(ctx: ActiveRun, step: number): Promise<void> {
  // At the last step the weights are exported and the stored run discarded right after: no checkpoint needed.
  if (!ctx.stored || step === ctx.run.checkpointStep || step === ctx.run.totalSteps) return;
  try {
    const { run } = ctx;
    const bytes = await writeCheckpoint(ctx.runtime, ctx.model, ctx.optimizer, {
      step,
      options: run.options,
      record: { runId: run.runId, modelName: run.modelName, from: run.from },
    });
    const updated: SavedTrainingRun = {
      ...run,
      checkpointStep: step,
      losses: ctx.losses.filter((p) => p.step <= step),
      updatedAt: new Date().toISOString(),
    };
    await saveRunCheckpoint(updated, bytes);
    ctx.run = updated;
    post({ type: 'checkpoint', step });
  } catch (error) {
    if (error instanceof DeviceLostError) throw error;
    post({
      type: 'warning',
      message:
        `the checkpoint at step ${step} could not be stored (${message(error)}); training goes on, but a reload ` +
        `would go back to step ${ctx.run.checkpointStep}`,
    });
  }
}

function runningEvent(ctx: ActiveRun): TrainingEvent {
  return {
    type: 'running',
    run: { ...ctx.run, losses: ctx.losses },
    step: ctx.step,
    adapterName: ctx.runtime.adapterName,
    encoderBackend: ctx.encoder.backend,
  };
}

/** Runs the loop to the end, through pauses; 'stopped' when asked to stop (the run is then stored at that step). */
async function train(ctx: ActiveRun): Promise<'finished' | 'stopped'> {
  const { run, control } = ctx;
  for (;;) {
    const result = await runTrainingLoop(ctx.runtime, ctx.encoder, ctx.model, ctx.optimizer, ctx.images, {
      epochs: run.options.epochs,
      batch: run.options.batch,
      seed: run.options.seed,
      lr: run.options.lr,
      dropPathRate: run.options.dropPathRate,
      startStep: ctx.step,
      checkpointEvery: run.checkpointEvery,
      ...(ctx.featureCache ? { featureCache: ctx.featureCache } : {}),
      signal: control.signal,
      onProgress: (progress) => {
        ctx.step = progress.step;
        ctx.losses.push({ step: progress.step, loss: progress.loss });
        post({ type: 'progress', progress });
      },
      onCheckpoint: (step) => storeCheckpoint(ctx, step),
    });
    ctx.step = result.steps;
    if (!result.cancelled) return 'finished';
    // Paused or stopped: store the current step, so that a reload from here loses nothing.
    await storeCheckpoint(ctx, ctx.step);
    if (control.current() === 'stopping') return 'stopped';
    // 'running' here: a continue arrived before the pause took effect.
    if (control.current() === 'pausing') {
      post({ type: 'paused', step: ctx.step });
      if ((await control.waitWhilePaused()) === 'stopping') return 'stopped';
    }
    post(runningEvent(ctx));
  }
}

/** The weights file's `mambaad.training` record: what the model was trained on and how. */
function trainingRecord(ctx: ActiveRun, extra: Record<string, unknown>): Record<string, unknown> {
  const { run } = ctx;
  const stepsPerEpoch = Math.floor(run.options.images.length / run.options.batch);
  const epochLosses: number[] = [];
  for (const point of ctx.losses) {
    const epoch = Math.ceil(point.step / stepsPerEpoch) - 1;
    epochLosses[epoch] = (epochLosses[epoch] ?? 0) + point.loss / stepsPerEpoch;
  }
  return {
    runId: run.runId,
    from: run.from,
    images: run.options.images.length,
    imageNames: run.options.images,
    epochs: run.options.epochs,
    batch: run.options.batch,
    seed: run.options.seed,
    lr: run.options.lr,
    dropPathRate: run.options.dropPathRate,
    steps: ctx.step,
    epochLosses,
    adapter: ctx.runtime.adapterName,
    encoderBackend: ctx.encoder.backend,
    started: run.startedAt,
    ...extra,
  };
}

function reportFailure(ctx: ActiveRun, error: unknown): void {
  const where = ctx.stored ? ` The run is stored at step ${ctx.run.checkpointStep}: Resume continues from there.` : '';
  post({
    type: 'failed',
    message: `Training stopped at step ${ctx.step}: ${message(error).replace(/\.$/, '')}.${where}`,
    resumable: ctx.stored,
  });
}

/** A NaN/Inf loss: the loop never applies that step, so the weights on the GPU are the last good ones. */
async function reportDivergence(ctx: ActiveRun, diverged: TrainingDivergedError): Promise<void> {
  let weights: Uint8Array;
  try {
    const record = trainingRecord(ctx, { diverged: diverged.message });
    weights = await exportWeightsFile(ctx.runtime, ctx.model, record, ctx.run.weightsDtype);
  } catch (error) {
    reportFailure(ctx, new Error(`${diverged.message}; the last good weights could not be read: ${message(error)}`));
    return;
  }
  // Resuming would replay the same steps into the same NaN: the run is over.
  await discardSavedRun().catch(() => undefined);
  post({ type: 'diverged', message: diverged.message, step: ctx.step, name: ctx.run.modelName, weights }, [
    weights.buffer as ArrayBuffer,
  ]);
}

async function runAndReport(ctx: ActiveRun): Promise<void> {
  active = ctx;
  try {
    post(runningEvent(ctx));
    const outcome = await train(ctx);
    if (outcome === 'stopped') {
      post({ type: 'stopped', step: ctx.run.checkpointStep });
      return;
    }
    const record = trainingRecord(ctx, { finished: new Date().toISOString() });
    const weights = await exportWeightsFile(ctx.runtime, ctx.model, record, ctx.run.weightsDtype);
    // Discarded first, so that the page finds no unfinished run once it has the weights.
    await discardSavedRun().catch(() => undefined);
    post({ type: 'finished', name: ctx.run.modelName, weights, record }, [weights.buffer as ArrayBuffer]);
  } catch (error) {
    if (error instanceof TrainingDivergedError) await reportDivergence(ctx, error);
    else reportFailure(ctx, error);
  } finally {
    active = undefined;
    ctx.featureCache?.dispose();
    ctx.optimizer.dispose();
    ctx.runtime.destroy();
  }
}

async function startRun(request: StartTrainingRequest, environment: TrainingEnvironment): Promise<void> {
  const config = checkRequest(request);
  const now = new Date().toISOString();
  const options: TrainingRunOptions = { ...request.options, images: request.images.map((i) => i.name) };
  const stepsPerEpoch = Math.floor(request.images.length / options.batch);
  const run: SavedTrainingRun = {
    runId: crypto.randomUUID(),
    modelName: request.modelName,
    from: request.source.kind === 'scratch' ? 'scratch' : request.source.name,
    config,
    options,
    checkpointEvery: request.checkpointEvery,
    weightsDtype: request.weightsDtype,
    totalSteps: stepsPerEpoch * options.epochs,
    checkpointStep: 0,
    losses: [],
    startedAt: now,
    updatedAt: now,
  };
  const inputs: SavedTrainingInputs = {
    runId: run.runId,
    images: request.images,
    ...(request.source.kind === 'fine-tune' ? { initialWeights: request.source.weights } : {}),
  };
  const ctx = await prepare(run, inputs, undefined, environment);
  try {
    await saveRunStart(run, inputs);
    ctx.stored = true;
  } catch (error) {
    post({
      type: 'warning',
      message: `this run cannot continue after a reload: it could not be stored (${message(error)})`,
    });
  }
  await runAndReport(ctx);
}

async function resumeSavedRun(environment: TrainingEnvironment): Promise<void> {
  const run = await loadSavedRun();
  if (!run) throw new RefusedError('there is no stored training run to resume');
  const inputs = await loadRunInputs(run.runId);
  const checkpoint = await loadRunCheckpoint(run.runId);
  const ctx = await prepare(run, inputs, checkpoint, environment);
  ctx.stored = true;
  await runAndReport(ctx);
}

async function handleStart(work: () => Promise<void>): Promise<void> {
  if (busy) {
    post({ type: 'refused', message: 'a training run is already in progress' });
    return;
  }
  busy = true;
  try {
    await work();
  } catch (error) {
    // Errors before training began: nothing was started; a stored run (resume) stays as it was.
    post({ type: 'refused', message: message(error) });
  } finally {
    busy = false;
  }
}

self.onmessage = (event: MessageEvent<TrainingCommand>) => {
  const command = event.data;
  switch (command.type) {
    case 'start':
      void handleStart(() => startRun(command.request, command));
      return;
    case 'resume-saved':
      void handleStart(() => resumeSavedRun(command));
      return;
    case 'pause':
      active?.control.pause();
      return;
    case 'continue':
      active?.control.continue();
      return;
    case 'stop':
      active?.control.stop();
      return;
  }
};
