import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  optionsDifferences,
  readCheckpoint,
  restoreCheckpoint,
  type TrainingRunOptions,
  writeCheckpoint,
} from '../../training/checkpoint.ts';
import { FeatureCache } from '../../training/featureCache.ts';
import { checkTrainingMemory } from '../../training/memory.ts';
import { AdamW, BENCHMARK_OPTIMIZER } from '../../training/optimizer.ts';
import { loadTrainableMambaAD } from '../../training/trainer.ts';
import { runTrainingLoop, type TrainingProgress } from '../../training/trainLoop.ts';
import { exportWeightsFile, initialWeightsFile } from '../../training/weightsFile.ts';
import { createEncoder } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../encoder/onnxGraph.ts';
import { createNodeRuntime } from '../gpu/node.ts';
import { preprocessImage } from '../image/preprocess.ts';
import { parseSafetensors } from '../io/safetensors.ts';
import { type ModelConfig, PAPER_CONFIG } from '../model/config.ts';
import { isScanOrder } from '../model/scanOrders.ts';
import { seededRandom } from '../util/random.ts';
import { readDatasetFolders } from './datasetFolders.ts';

/**
 * `mambaad train --data DIR... --epochs N --out FILE [--from FILE]`: trains MFF_OCE and the decoder on the
 * train/good images of every class under the given MVTec-layout folders, on this machine's GPU (Dawn), with the
 * same training code as the browser worker. Progress goes to stderr; the weights file is written at the end and
 * every --checkpoint-every steps (atomically: a killed run leaves the last complete checkpoint).
 */
export const trainUsage =
  'usage: mambaad train --data DIR [--data DIR...] --epochs N --out FILE [--from FILE] [--batch 16] ' +
  '[--scan hilbert] [--directions 8] [--encoder-weights FILE] [--encoder-backend auto|wasm|webgpu] ' +
  '[--checkpoint-every 50] [--seed 0] [--drop-path 0.2] [--encode-every-step] [--max-seconds S] [--gpu-memory GB] [--resume FILE.ckpt] [--dtype f32|f16]';

function progressLine(p: TrainingProgress): string {
  const width = 30;
  const done = Math.round((p.step / p.steps) * width);
  const eta = Number.isFinite(p.etaSeconds) ? `${Math.round(p.etaSeconds)}s` : '?';
  return (
    `[${'#'.repeat(done)}${'.'.repeat(width - done)}] epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.steps} ` +
    `loss ${p.loss.toFixed(4)} ${p.imagesPerSecond.toFixed(1)} img/s ETA ${eta}`
  );
}

export async function train(args: string[]): Promise<string> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string', multiple: true },
      epochs: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      batch: { type: 'string', default: '16' },
      scan: { type: 'string', default: 'hilbert' },
      directions: { type: 'string', default: '8' },
      'encoder-weights': { type: 'string', default: '../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors' },
      'checkpoint-every': { type: 'string', default: '50' },
      seed: { type: 'string', default: '0' },
      'drop-path': { type: 'string', default: '0.2' },
      'encoder-backend': { type: 'string', default: 'auto' },
      'encode-every-step': { type: 'boolean', default: false },
      'max-seconds': { type: 'string' },
      'gpu-memory': { type: 'string' },
      resume: { type: 'string' },
      dtype: { type: 'string', default: 'f32' },
    },
  });
  if (!values.data?.length || !values.epochs || !values.out) throw new Error(trainUsage);
  const epochs = Number(values.epochs);
  const batch = Number(values.batch);
  const directions = Number(values.directions);
  if (!Number.isInteger(epochs) || epochs < 1)
    throw new Error(`--epochs must be a positive integer, got ${values.epochs}`);
  if (!Number.isInteger(batch) || batch < 2)
    throw new Error(`--batch must be at least 2 (BatchNorm), got ${values.batch}`);
  if (!isScanOrder(values.scan) || (directions !== 2 && directions !== 4 && directions !== 8)) {
    throw new Error(`--scan ${values.scan} --directions ${values.directions}: unknown scan setting`);
  }

  const trainImages = readDatasetFolders(values.data).flatMap((c) => c.train);
  process.stderr.write(`train: ${trainImages.length} normal images from ${values.data.join(', ')}\n`);

  const runtime = await createNodeRuntime();
  const encoderWeights = parseSafetensors(new Uint8Array(readFileSync(values['encoder-weights'])), 'encoder weights');
  const backend = values['encoder-backend'];
  if (backend !== 'auto' && backend !== 'wasm' && backend !== 'webgpu') {
    throw new Error(`--encoder-backend must be auto, wasm or webgpu, got ${backend}`);
  }
  const encoder = await createEncoder({ model: buildResNetEncoderOnnx(encoderWeights, 'resnet18'), backend });
  process.stderr.write(
    `train: GPU ${runtime.adapterName}; encoder on ${encoder.backend} (${encoder.selection.reason})\n`,
  );

  const seed = Number(values.seed);
  const config: ModelConfig = { ...PAPER_CONFIG, encoder: 'resnet18', scan: values.scan, directions };
  const source = values.from
    ? parseSafetensors(new Uint8Array(readFileSync(values.from)), values.from)
    : initialWeightsFile(config, seededRandom(seed));
  // The run as a checkpoint records it; --resume continues one exactly, so its options must be this command's.
  const runOptions: TrainingRunOptions = {
    epochs,
    batch,
    seed,
    lr: BENCHMARK_OPTIMIZER.lr,
    dropPathRate: Number(values['drop-path']),
    images: trainImages,
  };
  const resumed = values.resume
    ? readCheckpoint(new Uint8Array(readFileSync(values.resume)), values.resume)
    : undefined;
  const differences = resumed ? optionsDifferences(resumed.state.options, runOptions) : [];
  if (differences.length > 0)
    throw new Error(`--resume ${values.resume}: this command differs: ${differences.join('; ')}`);
  const { model, optimizer } = resumed
    ? restoreCheckpoint(runtime, resumed, values.resume)
    : (() => {
        const fresh = loadTrainableMambaAD(runtime, source, values.from ?? 'initial weights');
        return { model: fresh, optimizer: new AdamW(runtime, fresh.parameters) };
      })();
  if (resumed) process.stderr.write(`train: resuming ${values.resume} at step ${resumed.state.step}\n`);
  // Refuse a batch that will not fit before any real work, with the batch that would (training/memory.ts).
  const gpuMemoryGb = values['gpu-memory'] ? Number(values['gpu-memory']) : Number.POSITIVE_INFINITY;
  const memoryPlan = await checkTrainingMemory(
    model.config,
    batch,
    values['encode-every-step'] ? 0 : trainImages.length,
    {
      bytes: gpuMemoryGb * 1e9,
      maxStorageBufferBindingSize: runtime.device.limits.maxStorageBufferBindingSize,
      maxBufferSize: runtime.device.limits.maxBufferSize,
    },
  );
  process.stderr.write(
    `train: GPU memory planned ${(memoryPlan.totalBytes / 1e9).toFixed(2)} GB (step ${(memoryPlan.stepBytes / 1e9).toFixed(2)} GB, ` +
      `feature cache ${(memoryPlan.featureCacheBytes / 1e9).toFixed(2)} GB)\n`,
  );

  const out = values.out;
  const started = new Date().toISOString();
  const dtype = values.dtype === 'f16' ? 'F16' : values.dtype === 'f32' ? 'F32' : undefined;
  if (!dtype) throw new Error(`--dtype must be f32 or f16, got ${values.dtype}`);
  // Checkpoints stay float32 (exact to resume from); --dtype applies to the final file.
  const writeAtomically = (path: string, bytes: Uint8Array) => {
    writeFileSync(`${path}.partial`, bytes);
    renameSync(`${path}.partial`, path); // a killed process never leaves a half-written file under the real name
  };
  const writeWeights = async (record: Record<string, unknown>, finalDtype: 'F32' | 'F16' = 'F32') =>
    writeAtomically(out, await exportWeightsFile(runtime, model, record, finalDtype));
  // <out>.ckpt: weights, AdamW state and loop position, for --resume after the process is killed or times out.
  const writeTrainingCheckpoint = async (step: number) =>
    writeAtomically(`${out}.ckpt`, await writeCheckpoint(runtime, model, optimizer, { step, options: runOptions }));
  const baseRecord = {
    data: values.data,
    images: trainImages.length,
    epochs,
    batch,
    seed,
    started,
    from: values.from,
    plannedGpuBytes: memoryPlan.totalBytes,
  };
  // Features are computed once unless asked otherwise (MambaAD trains without augmentation; see FeatureCache).
  const images = {
    count: trainImages.length,
    load: async (i: number) => (await preprocessImage(new Uint8Array(readFileSync(trainImages[i]!)))).tensor,
  };
  const cacheStart = performance.now();
  const featureCache = values['encode-every-step']
    ? undefined
    : await FeatureCache.build(runtime, encoder, images, config.inputSize, {
        batch,
        onProgress: (done, total) => process.stderr.write(`\rtrain: encoding ${done}/${total} images`),
      });
  const featureCacheSeconds = (performance.now() - cacheStart) / 1000;
  if (featureCache) process.stderr.write(` (${featureCacheSeconds.toFixed(1)} s)\n`);
  // A wall-clock bound stops between steps and still writes the weights (the device tool kills at 10 minutes).
  const maxSeconds = values['max-seconds'] ? Number(values['max-seconds']) : undefined;
  const result = await runTrainingLoop(runtime, encoder, model, optimizer, images, {
    epochs,
    featureCache,
    ...(maxSeconds ? { signal: AbortSignal.timeout(maxSeconds * 1000) } : {}),
    batch,
    seed,
    dropPathRate: Number(values['drop-path']),
    startStep: resumed?.state.step ?? 0,
    checkpointEvery: Number(values['checkpoint-every']),
    onProgress: (p) => process.stderr.write(`\r${progressLine(p)}`),
    onCheckpoint: async (step) => {
      await writeWeights({ ...baseRecord, checkpointStep: step });
      await writeTrainingCheckpoint(step);
    },
  });
  if (result.cancelled) await writeTrainingCheckpoint(result.steps);
  process.stderr.write('\n');
  const record = {
    ...baseRecord,
    ...result,
    featureCacheSeconds,
    peakGpuPoolBytes: runtime.pool.stats.peakBytes,
    adapter: runtime.adapterName,
    finished: new Date().toISOString(),
  };
  featureCache?.dispose();
  await writeWeights(record, dtype);
  await encoder.release();
  runtime.destroy();
  return JSON.stringify({ out, ...record });
}
