import type { Encoder } from '../src/encoder/encoder.ts';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { encodeBatch } from '../src/inference/features.ts';
import { seededRandom } from '../src/util/random.ts';
import { decoderDropPath } from './decoderTraining.ts';
import type { FeatureCache } from './featureCache.ts';
import { type AdamW, BENCHMARK_OPTIMIZER, stepLearningRate } from './optimizer.ts';
import { applyGradients, forwardBackward, type TrainableMambaAD } from './trainer.ts';

/**
 * The training loop shared by the Node CLI and the browser worker: batches of normal images through the frozen
 * encoder, one optimiser step per batch, progress after every step, checkpoints every few steps, cancellation
 * between steps. One GPU submission per step keeps each piece of work short (the browser's GPU watchdog kills long
 * ones).
 */

/** Where the images come from: preprocessed, ImageNet-normalised 3×S×S tensors (decoded by the host). */
export interface TrainingImages {
  readonly count: number;
  load(index: number): Promise<Float32Array>;
}

export interface TrainingProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  loss: number;
  imagesPerSecond: number;
  etaSeconds: number;
}

export interface TrainLoopOptions {
  epochs: number;
  batch: number;
  /** Base rate; ×0.1 at 80% of the steps (MAMBAAD.md §10). */
  lr?: number;
  seed?: number;
  /** Stochastic depth's largest rate (0.2 in the paper; 0 turns DropPath off). */
  dropPathRate?: number;
  /** Steps already done (resuming from a checkpoint): the loop continues from there. */
  startStep?: number;
  checkpointEvery?: number;
  /** The images' encoder features computed once (FeatureCache.build); without it every step runs the encoder. */
  featureCache?: FeatureCache;
  onProgress?(progress: TrainingProgress): void;
  onCheckpoint?(step: number): Promise<void>;
  signal?: AbortSignal;
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
}

/** A seeded Fisher-Yates order per epoch, so a resumed run sees the same batches as an uninterrupted one. */
function epochOrder(count: number, seed: number, epoch: number): number[] {
  const random = seededRandom(seed * 1_000_003 + epoch);
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

export interface TrainLoopResult {
  steps: number;
  /** Mean loss of each epoch that ran. */
  epochLosses: number[];
  seconds: number;
  imagesPerSecond: number;
  cancelled: boolean;
}

async function encodeImages(
  runtime: GpuRuntime,
  encoder: Encoder,
  images: TrainingImages,
  indices: readonly number[],
  perImage: number,
) {
  const pixels = new Float32Array(indices.length * perImage);
  for (const [i, index] of indices.entries()) pixels.set(await images.load(index), i * perImage);
  return encodeBatch(runtime, encoder, pixels, indices.length);
}

export async function runTrainingLoop(
  runtime: GpuRuntime,
  encoder: Encoder,
  model: TrainableMambaAD,
  optimizer: AdamW,
  images: TrainingImages,
  options: TrainLoopOptions,
): Promise<TrainLoopResult> {
  const { epochs, batch } = options;
  // drop_last, as the benchmark's loader: every step sees a full batch (BatchNorm needs more than one sample).
  const stepsPerEpoch = Math.floor(images.count / batch);
  if (stepsPerEpoch === 0) {
    throw new Error(`training needs at least ${batch} images for a batch of ${batch}, got ${images.count}`);
  }
  const totalSteps = stepsPerEpoch * epochs;
  const seed = options.seed ?? 0;
  const baseLr = options.lr ?? BENCHMARK_OPTIMIZER.lr;
  const size = model.config.inputSize;
  const perImage = 3 * size * size;
  const epochLosses: number[] = [];
  const start = performance.now();
  let imagesDone = 0;
  let step = options.startStep ?? 0;
  for (let epoch = Math.floor(step / stepsPerEpoch); epoch < epochs; epoch++) {
    const order = epochOrder(images.count, seed, epoch);
    let lossSum = 0;
    let lossCount = 0;
    for (let s = step % stepsPerEpoch; s < stepsPerEpoch; s++) {
      if (options.signal?.aborted) {
        const seconds = (performance.now() - start) / 1000;
        return { steps: step, epochLosses, seconds, imagesPerSecond: imagesDone / seconds, cancelled: true };
      }
      const indices = order.slice(s * batch, (s + 1) * batch);
      const features = options.featureCache
        ? options.featureCache.batch(indices)
        : await encodeImages(runtime, encoder, images, indices, perImage);
      const random = seededRandom(seed * 7919 + step);
      const dropPath =
        (options.dropPathRate ?? 0.2) > 0
          ? decoderDropPath(model.config.depths, batch, random, options.dropPathRate ?? 0.2)
          : undefined;
      const { terms, gradients } = forwardBackward(runtime, model, features, dropPath);
      const loss = (await runtime.read(terms)).reduce((a, b) => a + b, 0);
      terms.dispose();
      if (!Number.isFinite(loss)) {
        for (const g of gradients) g.dispose();
        for (const f of features) f.dispose();
        throw new TrainingDivergedError(
          `the loss became ${loss} at step ${step + 1} (epoch ${epoch + 1}); training stopped and the weights are ` +
            'those before that step',
        );
      }
      applyGradients(runtime, model, optimizer, gradients, stepLearningRate(baseLr, step, totalSteps));
      await runtime.flush();
      for (const f of features) f.dispose();
      step++;
      imagesDone += batch;
      lossSum += loss;
      lossCount++;
      const seconds = (performance.now() - start) / 1000;
      const imagesPerSecond = imagesDone / seconds;
      options.onProgress?.({
        epoch: epoch + 1,
        epochs,
        step,
        steps: totalSteps,
        loss,
        imagesPerSecond,
        etaSeconds: ((totalSteps - step) * batch) / imagesPerSecond,
      });
      if (options.checkpointEvery && step % options.checkpointEvery === 0) await options.onCheckpoint?.(step);
    }
    epochLosses.push(lossSum / Math.max(1, lossCount));
  }
  const seconds = (performance.now() - start) / 1000;
  return { steps: step, epochLosses, seconds, imagesPerSecond: imagesDone / seconds, cancelled: false };
}
