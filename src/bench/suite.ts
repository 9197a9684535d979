import { planTrainingMemory } from '../../training/memory.ts';
import { AdamW } from '../../training/optimizer.ts';
import { applyGradients, forwardBackward, loadTrainableMambaAD } from '../../training/trainer.ts';
import { initialWeightsFile } from '../../training/weightsFile.ts';
import { anomalyMaps, disposeAnomalyMaps } from '../anomaly/anomalyMap.ts';
import { benchPixelMetrics, type PixelBenchResult } from '../anomaly/metrics.bench.ts';
import { benchEncoder, type EncoderTiming } from '../encoder/benchEncoder.ts';
import { createEncoder, type EncoderBackend } from '../encoder/encoder.ts';
import { buildResNetEncoderOnnx } from '../encoder/onnxGraph.ts';
import type { GpuRuntime } from '../gpu/runtime.ts';
import { parseSafetensors } from '../io/safetensors.ts';
import { type ModelConfig, PAPER_CONFIG, stageGridSize } from '../model/config.ts';
import { loadMambaAD, mambaadForward } from '../model/mambaad.ts';
import { matmul } from '../model/ops/matmul.ts';
import { seededRandom } from '../util/random.ts';

/** What one bench run measured, on one host (Node + Dawn, or a browser). Extended by later op families. */
export interface BenchRecord {
  adapter: string;
  softwareAdapter: boolean;
  matmul: MatmulBench[];
  forward: ForwardBench[];
  /** One training step from features: MFF_OCE (train mode) + decoder forward, 5·ΣMSE, backward, clip, AdamW. */
  training: TrainingBench[];
  /** The ResNet18 encoder through onnxruntime-web, per backend; `auto` records which one it picks here and why. */
  encoder: (EncoderTiming | { backend: string; batch: number; skipped: string })[];
  encoderChoice?: string;
  /** Every pixel metric over a synthetic test set (CPU, float64): 2,000 images at 256² = 131M pixels by default. */
  pixelMetrics?: PixelBenchResult;
}

/** MFF_OCE + decoder + anomaly map + scores read back, from encoder features (the encoder is timed separately). */
export interface ForwardBench {
  batch: number;
  ms?: number;
  imagesPerSecond?: number;
  repeats?: number;
  peakPoolBytes?: number;
  skipped?: string;
}

/**
 * `peakPoolBytes`: every GPU buffer the step needs, weights and AdamW moments included (measured from an empty pool);
 * `plannedPoolBytes`: what training/memory.ts predicts for it without touching the GPU.
 */
export interface TrainingBench {
  batch: number;
  msPerStep?: number;
  imagesPerSecond?: number;
  steps?: number;
  peakPoolBytes?: number;
  plannedPoolBytes?: number;
  skipped?: string;
}

export interface MatmulBench {
  n: number;
  ms?: number;
  gflops?: number;
  repeats?: number;
  skipped?: string;
}

export interface BenchOptions {
  matmulSizes: number[];
  /** A weights file (training/reference/bench_reference.py --weights-out) for the forward timings. */
  weights?: Uint8Array;
  forwardBatches: number[];
  /** Training-step batches (ResNet18 paper config, freshly initialised); skipped on a software adapter. */
  trainingBatches: number[];
  /** Batches above this are skipped on a software adapter. */
  softwareForwardLimit: number;
  /** BN-folded ResNet18 weights (../shared/models) for the encoder timings. */
  encoderWeights?: Uint8Array;
  encoderBatches: number[];
  /** Images of the pixel-metrics bench; 0 skips it. */
  pixelMetricsImages: number;
  /** Sizes above this are skipped on a software adapter, where a 4096² matmul takes minutes. */
  softwareMatmulLimit: number;
}

export const defaultBenchOptions: BenchOptions = {
  matmulSizes: [1024, 4096],
  softwareMatmulLimit: 1024,
  forwardBatches: [1, 16],
  trainingBatches: [16],
  softwareForwardLimit: 1,
  encoderBatches: [1, 16],
  pixelMetricsImages: 2000,
};

function randomMatrix(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < m.length; i++) m[i] = Math.random() - 0.5;
  return m;
}

/** Square matmul throughput: warm-ups (the first compiles), then enough repeats in one submission for ~0.5 s. */
async function benchMatmul(runtime: GpuRuntime, n: number): Promise<MatmulBench> {
  const a = runtime.upload([n, n], randomMatrix(n));
  const b = runtime.upload([n, n], randomMatrix(n));
  const timeBatch = async (repeats: number) => {
    const start = performance.now();
    for (let i = 0; i < repeats; i++) matmul(runtime, a, b).dispose();
    await runtime.flush();
    return performance.now() - start;
  };
  await timeBatch(1);
  const warm = await timeBatch(1);
  const repeats = Math.max(1, Math.min(200, Math.round(500 / Math.max(warm, 0.01))));
  const ms = (await timeBatch(repeats)) / repeats;
  a.dispose();
  b.dispose();
  return { n, ms: +ms.toFixed(3), gflops: +((2 * n ** 3) / ms / 1e6).toFixed(1), repeats };
}

/** Random post-ReLU-like features (uniform [0, 1)) of the encoder's shapes, NHWC. */
function randomFeatures(runtime: GpuRuntime, batch: number, sizes: number[], channels: number[]) {
  return sizes.map((size, i) => {
    const data = new Float32Array(batch * size * size * channels[i]!);
    for (let j = 0; j < data.length; j++) data[j] = Math.random();
    return runtime.upload([batch, size, size, channels[i]!], data);
  });
}

async function benchForward(runtime: GpuRuntime, weights: Uint8Array, batch: number): Promise<ForwardBench> {
  const model = loadMambaAD(runtime, parseSafetensors(weights, 'bench weights'), 'bench weights');
  const grid = stageGridSize(model.config, 0);
  const features = randomFeatures(runtime, batch, [grid * 8, grid * 4, grid * 2], model.config.encoderChannels);
  const once = async () => {
    const { z, decoded } = mambaadForward(runtime, model, features);
    const maps = await anomalyMaps(runtime, features, decoded);
    z.dispose();
    for (const d of decoded) d.dispose();
    disposeAnomalyMaps(maps);
  };
  await once(); // compiles every pipeline and fills the buffer pool
  const warm = performance.now();
  await once();
  const warmMs = performance.now() - warm;
  const repeats = Math.max(1, Math.min(20, Math.round(2000 / warmMs)));
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await once();
  const ms = (performance.now() - start) / repeats;
  for (const f of features) f.dispose();
  return {
    batch,
    ms: +ms.toFixed(2),
    imagesPerSecond: +((batch / ms) * 1000).toPrecision(3),
    repeats,
    peakPoolBytes: runtime.pool.stats.peakBytes,
  };
}

async function benchTraining(runtime: GpuRuntime, batch: number): Promise<TrainingBench> {
  const config: ModelConfig = { ...PAPER_CONFIG, encoder: 'resnet18' };
  // Measure from an empty pool, so the peak is what training at this batch needs, not what earlier benches left.
  runtime.pool.trim();
  runtime.pool.resetPeak();
  const model = loadTrainableMambaAD(runtime, initialWeightsFile(config, seededRandom(0)), 'bench weights');
  const optimizer = new AdamW(runtime, model.parameters);
  const grid = stageGridSize(config, 0);
  const features = randomFeatures(runtime, batch, [grid * 8, grid * 4, grid * 2], config.encoderChannels);
  const step = async () => {
    const { terms, gradients } = forwardBackward(runtime, model, features);
    applyGradients(runtime, model, optimizer, gradients, 1e-4);
    await runtime.read(terms); // the training loop reads every step's loss too
    terms.dispose();
  };
  await step(); // compiles
  const warm = performance.now();
  await step();
  const warmMs = performance.now() - warm;
  const steps = Math.max(2, Math.min(20, Math.round(5000 / warmMs)));
  const start = performance.now();
  for (let i = 0; i < steps; i++) await step();
  const ms = (performance.now() - start) / steps;
  for (const f of features) f.dispose();
  const peakPoolBytes = runtime.pool.stats.peakBytes;
  for (const p of model.parameters) p.param.dispose();
  return {
    batch,
    msPerStep: +ms.toFixed(1),
    imagesPerSecond: +((batch / ms) * 1000).toPrecision(3),
    steps,
    peakPoolBytes,
    plannedPoolBytes: (await planTrainingMemory(config, batch)).stepBytes,
  };
}

/** wasm and WebGPU timings of the encoder; WebGPU on a CPU rasteriser is timed at batch 1 only (~15 s an image). */
async function benchEncoders(runtime: GpuRuntime, weights: Uint8Array, batches: number[], record: BenchRecord) {
  const model = buildResNetEncoderOnnx(parseSafetensors(weights, 'encoder weights'), 'resnet18');
  const size = { height: 256, width: 256 };
  for (const backend of ['wasm', 'webgpu'] as EncoderBackend[]) {
    let encoder: Awaited<ReturnType<typeof createEncoder>>;
    try {
      encoder = await createEncoder({ model, backend });
    } catch (error) {
      for (const batch of batches) record.encoder.push({ backend, batch, skipped: (error as Error).message });
      continue;
    }
    for (const batch of batches) {
      if (backend === 'webgpu' && runtime.isSoftwareAdapter && batch > 1) {
        record.encoder.push({ backend, batch, skipped: 'WebGPU on a software adapter: batch 1 only' });
      } else {
        const slow = backend === 'webgpu' && runtime.isSoftwareAdapter;
        record.encoder.push(await benchEncoder(encoder, batch, size, slow ? 1 : 3));
      }
    }
    await encoder.release();
  }
  const auto = await createEncoder({ model, backend: 'auto' });
  record.encoderChoice = `${auto.backend}: ${auto.selection.reason}`;
  await auto.release();
}

export async function runBench(runtime: GpuRuntime, options: BenchOptions = defaultBenchOptions): Promise<BenchRecord> {
  const record: BenchRecord = {
    adapter: runtime.adapterName,
    softwareAdapter: runtime.isSoftwareAdapter,
    matmul: [],
    forward: [],
    training: [],
    encoder: [],
  };
  for (const n of options.matmulSizes) {
    if (runtime.isSoftwareAdapter && n > options.softwareMatmulLimit) {
      record.matmul.push({ n, skipped: `software adapter: sizes above ${options.softwareMatmulLimit} take minutes` });
      continue;
    }
    record.matmul.push(await benchMatmul(runtime, n));
  }
  for (const batch of options.forwardBatches) {
    if (!options.weights) record.forward.push({ batch, skipped: 'no weights file given' });
    else if (runtime.isSoftwareAdapter && batch > options.softwareForwardLimit) {
      record.forward.push({
        batch,
        skipped: `software adapter: batches above ${options.softwareForwardLimit} take minutes`,
      });
    } else record.forward.push(await benchForward(runtime, options.weights, batch));
  }
  for (const batch of options.trainingBatches) {
    record.training.push(
      runtime.isSoftwareAdapter
        ? { batch, skipped: 'software adapter: a 256² training step takes minutes' }
        : await benchTraining(runtime, batch),
    );
  }
  if (options.encoderWeights) await benchEncoders(runtime, options.encoderWeights, options.encoderBatches, record);
  if (options.pixelMetricsImages > 0) record.pixelMetrics = benchPixelMetrics({ images: options.pixelMetricsImages });
  return record;
}
