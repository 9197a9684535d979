import { planningDevice } from '../src/gpu/planningDevice.ts';
import { GpuRuntime } from '../src/gpu/runtime.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { seededRandom } from '../src/util/random.ts';
import { decoderDropPath } from './decoderTraining.ts';
import { FeatureCache } from './featureCache.ts';
import { AdamW } from './optimizer.ts';
import { applyGradients, forwardBackward, loadTrainableMambaAD } from './trainer.ts';
import { zeroWeightsFile } from './weightsFile.ts';

/**
 * GPU memory of training, known before any allocation: two training steps are recorded against a device that does no
 * work (src/gpu/planningDevice.ts), through the same code and buffer pool as real training, so the pool's peak is what
 * the real run will hold (weights, AdamW moments, activations and gradients). The encoder runs in onnxruntime's own
 * device and is not counted; the feature cache is added from its size.
 */
export interface TrainingMemoryPlan {
  batch: number;
  /** The buffer pool's peak over a training step. */
  stepBytes: number;
  /** The encoder features of every training image (FeatureCache), 0 without the cache. */
  featureCacheBytes: number;
  totalBytes: number;
  /** The largest single buffer: it must fit the adapter's maxStorageBufferBindingSize. */
  largestBufferBytes: number;
}

export async function planTrainingMemory(
  config: ModelConfig,
  batch: number,
  cachedImages = 0,
): Promise<TrainingMemoryPlan> {
  const acquired = planningDevice();
  const runtime = new GpuRuntime(acquired, () => '');
  let largestBufferBytes = 0;
  const createBuffer = acquired.device.createBuffer.bind(acquired.device);
  acquired.device.createBuffer = (descriptor) => {
    largestBufferBytes = Math.max(largestBufferBytes, descriptor.size);
    return createBuffer(descriptor);
  };
  const model = loadTrainableMambaAD(runtime, zeroWeightsFile(config), 'memory plan');
  const optimizer = new AdamW(runtime, model.parameters);
  const grid = config.inputSize / 4;
  const features = config.encoderChannels.map((c, i) => runtime.zeros([batch, grid >> i, grid >> i, c]));
  for (let step = 0; step < 2; step++) {
    const dropPath = decoderDropPath(config.depths, batch, seededRandom(step));
    const { terms, gradients } = forwardBackward(runtime, model, features, dropPath);
    applyGradients(runtime, model, optimizer, gradients, 1e-4);
    await runtime.read(terms);
    terms.dispose();
  }
  const stepBytes = runtime.pool.stats.peakBytes;
  const featureCacheBytes = cachedImages * FeatureCache.bytesPerImage(config.inputSize, config.encoderChannels);
  return { batch, stepBytes, featureCacheBytes, totalBytes: stepBytes + featureCacheBytes, largestBufferBytes };
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

export interface MemoryBudget {
  /** GPU memory the run may use (WebGPU cannot report the adapter's memory: the host or the user sets this). */
  bytes: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

export class TrainingMemoryError extends Error {
  override name = 'TrainingMemoryError';
}

function fits(plan: TrainingMemoryPlan, budget: MemoryBudget): boolean {
  const largest = Math.min(budget.maxStorageBufferBindingSize, budget.maxBufferSize);
  return plan.totalBytes <= budget.bytes && plan.largestBufferBytes <= largest;
}

/**
 * Refuses, before training starts, a batch whose plan does not fit the budget, with what would fit: the largest
 * batch (at least 2, BatchNorm) that does. Returns the plan when it fits.
 */
export async function checkTrainingMemory(
  config: ModelConfig,
  batch: number,
  cachedImages: number,
  budget: MemoryBudget,
): Promise<TrainingMemoryPlan> {
  const plan = await planTrainingMemory(config, batch, cachedImages);
  if (fits(plan, budget)) return plan;
  // Memory grows with the batch, so a binary search finds the largest batch that fits in a few plans.
  let fitting: TrainingMemoryPlan | undefined;
  let [low, high] = [2, batch - 1];
  while (low <= high) {
    const middle = Math.floor((low + high) / 2);
    const candidate = await planTrainingMemory(config, middle, cachedImages);
    if (fits(candidate, budget)) {
      fitting = candidate;
      low = middle + 1;
    } else high = middle - 1;
  }
  const reason =
    plan.totalBytes > budget.bytes
      ? `needs ${gb(plan.totalBytes)} of GPU memory (training step ${gb(plan.stepBytes)}, cached encoder features ` +
        `${gb(plan.featureCacheBytes)}) and the budget is ${gb(budget.bytes)}`
      : `needs a ${gb(plan.largestBufferBytes)} buffer and this adapter binds at most ` +
        gb(Math.min(budget.maxStorageBufferBindingSize, budget.maxBufferSize));
  const advice = fitting
    ? `batch ${fitting.batch} fits (${gb(fitting.totalBytes)})`
    : 'no batch of 2 or more fits; use a smaller model config or fewer cached images';
  throw new TrainingMemoryError(`training at batch ${batch} ${reason}: ${advice}`);
}
