import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { disposeAnomalyMaps, recordAnomalyMaps } from '../anomaly/anomalyMap.ts';
import { type ClassMetrics, MetricsAccumulator } from '../anomaly/metrics.ts';
import { createEncoder } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx, resNetArch } from '../encoder/onnxGraph.ts';
import { createNodeRuntime } from '../gpu/node.ts';
import { MODEL_INPUT_SIZE, preprocessImage, preprocessMask } from '../image/preprocess.ts';
import { encodeBatch } from '../inference/features.ts';
import { parseSafetensors } from '../io/safetensors.ts';
import { loadMambaAD, mambaadForward } from '../model/mambaad.ts';
import { readDatasetFolders } from './datasetFolders.ts';

/**
 * `mambaad eval --data DIR... --weights FILE`: the model on every test image of the given MVTec-layout folders, then
 * the seven metrics and mAD per class and their mean (src/anomaly/metrics.ts, the benchmark's definitions), as JSON.
 */
export const evalUsage =
  'usage: mambaad eval --data DIR [--data DIR...] --weights FILE [--batch 16] [--encoder-weights FILE] ' +
  '[--encoder-backend auto|wasm|webgpu]';

function roundMetrics(metrics: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, Math.round(v * 1000) / 10]));
}

export async function evaluate(args: string[]): Promise<string> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string', multiple: true },
      weights: { type: 'string' },
      batch: { type: 'string', default: '16' },
      'encoder-weights': { type: 'string', default: '../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors' },
      'encoder-backend': { type: 'string', default: 'auto' },
    },
  });
  if (!values.data?.length || !values.weights) throw new Error(evalUsage);
  const batch = Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got ${values.batch}`);
  const backend = values['encoder-backend'];
  if (backend !== 'auto' && backend !== 'wasm' && backend !== 'webgpu') {
    throw new Error(`--encoder-backend must be auto, wasm or webgpu, got ${backend}`);
  }
  const classes = readDatasetFolders(values.data);

  const runtime = await createNodeRuntime();
  const model = loadMambaAD(runtime, parseSafetensors(new Uint8Array(readFileSync(values.weights)), values.weights));
  const encoderWeights = parseSafetensors(new Uint8Array(readFileSync(values['encoder-weights'])), 'encoder weights');
  const encoder = await createEncoder({
    model: buildResNetEncoderOnnx(encoderWeights, resNetArch(model.config.encoder)),
    backend,
  });
  const metrics = new MetricsAccumulator({ width: MODEL_INPUT_SIZE, height: MODEL_INPUT_SIZE });
  const pixels = MODEL_INPUT_SIZE * MODEL_INPUT_SIZE;
  const start = performance.now();
  let images = 0;
  for (const c of classes) {
    for (let first = 0; first < c.test.length; first += batch) {
      const chunk = c.test.slice(first, first + batch);
      const inputs = new Float32Array(chunk.length * 3 * pixels);
      const masks = await Promise.all(
        chunk.map(async (t, i) => {
          inputs.set((await preprocessImage(new Uint8Array(readFileSync(t.path)))).tensor, i * 3 * pixels);
          return t.maskPath
            ? (await preprocessMask(new Uint8Array(readFileSync(t.maskPath)))).mask
            : new Uint8Array(pixels);
        }),
      );
      const features = await encodeBatch(runtime, encoder, inputs, chunk.length);
      const { z, decoded } = mambaadForward(runtime, model, features);
      const { scores, ...maps } = recordAnomalyMaps(runtime, features, decoded);
      const values = await runtime.read(maps.map);
      for (const t of [z, ...decoded, ...features, scores]) t.dispose();
      disposeAnomalyMaps(maps);
      chunk.forEach((_, i) => {
        const map = values.subarray(i * pixels, (i + 1) * pixels);
        // The benchmark's image label is max(mask) of the resized mask (MAMBAAD.md §12), not the folder name: a
        // tiny defect can vanish at 256² (one magnetic-tile image does).
        const mask = masks[i]!;
        metrics.add(map, mask, mask.includes(1) ? 1 : 0, c.name);
      });
      images += chunk.length;
      process.stderr.write(`\reval: ${c.name} ${Math.min(first + batch, c.test.length)}/${c.test.length}`);
    }
    process.stderr.write('\n');
  }
  const inferenceSeconds = (performance.now() - start) / 1000;
  const result = metrics.finalize();
  await encoder.release();
  runtime.destroy();
  const perClass = (m: ClassMetrics) => ({
    images: m.images,
    ...roundMetrics({ ...m.paper }),
    standard: roundMetrics({ pixelF1Max: m.pixel.f1Max, auproMvtec: m.auproMvtec }),
  });
  return JSON.stringify({
    weights: values.weights,
    adapter: runtime.adapterName,
    encoderBackend: encoder.backend,
    images,
    inferenceSeconds: Math.round(inferenceSeconds * 10) / 10,
    imagesPerSecond: Math.round((images / inferenceSeconds) * 10) / 10,
    classes: Object.fromEntries(result.classes.map((m) => [m.className, perClass(m)])),
    mean: roundMetrics({ ...result.mean }),
  });
}
