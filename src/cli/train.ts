import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { AdamW } from '../../training/optimizer.ts';
import { loadTrainableMambaAD } from '../../training/trainer.ts';
import { runTrainingLoop, type TrainingProgress } from '../../training/trainLoop.ts';
import { exportWeightsFile, initialWeightsFile } from '../../training/weightsFile.ts';
import { parseMvtecLayout } from '../data/mvtecLayout.ts';
import { createEncoder } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../encoder/onnxGraph.ts';
import { createNodeRuntime } from '../gpu/node.ts';
import { preprocessImage } from '../image/preprocess.ts';
import { parseSafetensors } from '../io/safetensors.ts';
import { type ModelConfig, PAPER_CONFIG } from '../model/config.ts';
import { isScanOrder } from '../model/scanOrders.ts';
import { seededRandom } from '../util/random.ts';

/**
 * `mambaad train --data DIR... --epochs N --out FILE [--from FILE]`: trains MFF_OCE and the decoder on the
 * train/good images of every class under the given MVTec-layout folders, on this machine's GPU (Dawn), with the
 * same training code as the browser worker. Progress goes to stderr; the weights file is written at the end and
 * every --checkpoint-every steps (atomically: a killed run leaves the last complete checkpoint).
 */
export const trainUsage =
  'usage: mambaad train --data DIR [--data DIR...] --epochs N --out FILE [--from FILE] [--batch 16] ' +
  '[--scan hilbert] [--directions 8] [--encoder-weights FILE] [--encoder-backend auto|wasm|webgpu] ' +
  '[--checkpoint-every 50] [--seed 0] [--drop-path 0.2]';

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

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

  const trainImages = values.data.flatMap((dir) => {
    if (!existsSync(dir)) throw new Error(`--data ${dir}: no such folder`);
    const files = walk(dir);
    const dataset = parseMvtecLayout(files.map((f) => `${relative(join(dir, '..'), f)}`));
    return dataset.classes.flatMap((c) => c.train.map((p) => join(dir, '..', p)));
  });
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
  const model = loadTrainableMambaAD(runtime, source, values.from ?? 'initial weights');
  const optimizer = new AdamW(runtime, model.parameters);

  const out = values.out;
  const started = new Date().toISOString();
  const writeWeights = async (record: Record<string, unknown>) => {
    const bytes = await exportWeightsFile(runtime, model, record);
    writeFileSync(`${out}.partial`, bytes);
    renameSync(`${out}.partial`, out); // a killed process never leaves a half-written file under the real name
  };
  const baseRecord = { data: values.data, images: trainImages.length, epochs, batch, seed, started, from: values.from };
  const result = await runTrainingLoop(
    runtime,
    encoder,
    model,
    optimizer,
    {
      count: trainImages.length,
      load: async (i) => (await preprocessImage(new Uint8Array(readFileSync(trainImages[i]!)))).tensor,
    },
    {
      epochs,
      batch,
      seed,
      dropPathRate: Number(values['drop-path']),
      checkpointEvery: Number(values['checkpoint-every']),
      onProgress: (p) => process.stderr.write(`\r${progressLine(p)}`),
      onCheckpoint: (step) => writeWeights({ ...baseRecord, checkpointStep: step }),
    },
  );
  process.stderr.write('\n');
  const record = { ...baseRecord, ...result, adapter: runtime.adapterName, finished: new Date().toISOString() };
  await writeWeights(record);
  await encoder.release();
  runtime.destroy();
  return JSON.stringify({ out, ...record });
}
