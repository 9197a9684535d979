import type { GpuRuntime } from '../gpu/runtime.ts';
import { assertShape, shapeToString, type Tensor } from '../gpu/tensor.ts';
import {
  type AnomalyMapOptions,
  bilinearTaps,
  COSINE_EPS,
  DEFAULT_ANOMALY_MAP_OPTIONS,
  gaussianKernel1d,
} from './anomalyMap.reference.ts';

export type { AnomalyMapOptions } from './anomalyMap.reference.ts';

/** kernels/anomaly.wgsl: 1-D kernels use WORKGROUP_SIZE threads; cosine_distance reduces one pixel per REDUCE_SIZE. */
const family = 'anomaly';
const WORKGROUP_SIZE = 256;
const REDUCE_SIZE = 64;

/** The GPU outputs of the anomaly map, all [B, height, width] except the per-scale distances and the scores. */
export interface AnomalyMapTensors {
  /** m_i = 1 − cos(f_i, d_i) at each scale's resolution, [B, h_i, w_i]. */
  readonly distances: Tensor[];
  /** m_i upsampled to the output size with align_corners=True. */
  readonly perScale: Tensor[];
  /** Σ_i M_i / scales² (ADer divides by len(list)·Σweights, 9 for three scales). */
  readonly mapBeforeBlur: Tensor;
  /** The blurred map; the same tensor as mapBeforeBlur when gaussianSigma is 0. */
  readonly map: Tensor;
  /** [B] maxima of `map`; NaN for an image whose map holds a non-finite value. */
  readonly scores: Tensor;
}

export interface AnomalyMaps extends Omit<AnomalyMapTensors, 'scores'> {
  readonly scores: Float32Array;
}

function validSize(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got ${n}`);
  return n;
}

function mapDims(what: string, maps: Tensor): [number, number, number] {
  if (maps.shape.length !== 3 || maps.size === 0) {
    throw new Error(`${what}: expected a non-empty [B, height, width] map, got ${shapeToString(maps.shape)}`);
  }
  return maps.shape as [number, number, number];
}

function featureDims(features: Tensor, decoded: Tensor): [number, number, number, number] {
  if (features.shape.length !== 4 || features.size === 0) {
    throw new Error(`cosine distance: expected non-empty [B, h, w, C] features, got ${shapeToString(features.shape)}`);
  }
  assertShape('cosine distance: decoded features', decoded.shape, features.shape);
  return features.shape as [number, number, number, number];
}

/** m = 1 − cos over the last (channel) axis of two [B, h, w, C] tensors: a new [B, h, w] tensor. */
export function cosineDistance(runtime: GpuRuntime, features: Tensor, decoded: Tensor): Tensor {
  const [batch, height, width, channels] = featureDims(features, decoded);
  const pixels = batch * height * width;
  const out = runtime.empty([batch, height, width], 'cosine distance');
  const params = new Uint32Array(3);
  params.set([pixels, channels]);
  new Float32Array(params.buffer)[2] = COSINE_EPS;
  runtime.dispatch({
    kernel: { family, entryPoint: 'cosine_distance', constants: { REDUCE_SIZE } },
    params,
    buffers: [features, decoded, out],
    // One workgroup per pixel.
    workgroups: runtime.workgroupsFor(pixels, 1),
  });
  return out;
}

/** Row taps then column taps as the kernel's `Tap` structs: {index0: u32, index1: u32, weight0: f32, weight1: f32}. */
function uploadTaps(
  runtime: GpuRuntime,
  input: readonly [number, number],
  output: readonly [number, number],
  alignCorners: boolean,
): Tensor {
  const taps = [...bilinearTaps(input[0], output[0], alignCorners), ...bilinearTaps(input[1], output[1], alignCorners)];
  const words = new Float32Array(taps.length * 4);
  const indices = new Uint32Array(words.buffer);
  taps.forEach((tap, i) => {
    indices[4 * i] = tap.index0;
    indices[4 * i + 1] = tap.index1;
    // torch keeps λ in the tensor's dtype and forms 1 − λ from it.
    const lambda = Math.fround(tap.weight1);
    words[4 * i + 2] = 1 - lambda;
    words[4 * i + 3] = lambda;
  });
  return runtime.upload([taps.length, 4], words, 'bilinear taps');
}

function resizeParams(
  batch: number,
  input: readonly [number, number],
  output: readonly [number, number],
  accumulate: boolean,
  divisor: number,
): Uint32Array {
  const params = new Uint32Array(7);
  params.set([batch, input[0], input[1], output[0], output[1], accumulate ? 1 : 0]);
  new Float32Array(params.buffer)[6] = divisor;
  return params;
}

/**
 * Bilinear resize of [B, h, w] maps to [B, height, width]. alignCorners true is ADer's upsampling; false uses
 * half-pixel centres (see resizeForDisplay).
 */
export function bilinearResize(
  runtime: GpuRuntime,
  maps: Tensor,
  height: number,
  width: number,
  alignCorners: boolean,
): Tensor {
  const [batch, inHeight, inWidth] = mapDims('bilinear resize', maps);
  const output = [validSize('bilinear resize: height', height), validSize('bilinear resize: width', width)] as const;
  const out = runtime.empty([batch, height, width], 'resized map');
  const taps = uploadTaps(runtime, [inHeight, inWidth], output, alignCorners);
  runtime.dispatch({
    kernel: { family, entryPoint: 'resize', constants: { WORKGROUP_SIZE } },
    params: resizeParams(batch, [inHeight, inWidth], output, false, 1),
    buffers: [taps, maps, out],
    workgroups: runtime.workgroupsFor(out.size, WORKGROUP_SIZE),
  });
  taps.dispose();
  return out;
}

/**
 * Resamples final maps to an original image size for display. Convention: half-pixel centres (torch
 * align_corners=False, src = (dst + 0.5)·in/out − 0.5), the geometry of the PIL resize that made the 256x256 model
 * input, so map pixels land on the image pixels they came from. No antialiasing when shrinking: display only, never
 * used for metrics (those use the 256x256 map, as ADer does).
 */
export function resizeForDisplay(runtime: GpuRuntime, map: Tensor, height: number, width: number): Tensor {
  return bilinearResize(runtime, map, height, width, false);
}

/**
 * One axis after the other of scipy.ndimage.gaussian_filter (axis 0 first, 'reflect' borders) on [B, H, W] maps, in
 * f32 with scipy's float64 weights rounded once.
 */
export function gaussianBlur(runtime: GpuRuntime, maps: Tensor, sigma: number, truncate = 4): Tensor {
  const [batch, height, width] = mapDims('gaussian blur', maps);
  const weights64 = gaussianKernel1d(sigma, truncate);
  const radius = (weights64.length - 1) / 2;
  const weights = runtime.upload([weights64.length], Float32Array.from(weights64), 'gaussian weights');
  const alongRows = runtime.empty(maps.shape, 'blurred along axis 0');
  const out = runtime.empty(maps.shape, 'blurred map');
  for (const [axis, input, output] of [
    [0, maps, alongRows],
    [1, alongRows, out],
  ] as const) {
    runtime.dispatch({
      kernel: { family, entryPoint: 'gaussian_blur', constants: { WORKGROUP_SIZE } },
      params: Uint32Array.of(batch, height, width, axis, radius),
      buffers: [weights, input, output],
      workgroups: runtime.workgroupsFor(maps.size, WORKGROUP_SIZE),
    });
  }
  weights.dispose();
  alongRows.dispose();
  return out;
}

/** [B] per-image maxima of [B, H, W] maps; NaN where an image holds a NaN or an infinity. */
export function imageMax(runtime: GpuRuntime, maps: Tensor): Tensor {
  const [batch, height, width] = mapDims('image max', maps);
  const scores = runtime.empty([batch], 'image scores');
  runtime.dispatch({
    kernel: { family, entryPoint: 'image_max', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(batch, height * width),
    buffers: [maps, scores],
    workgroups: runtime.workgroupsFor(batch, 1),
  });
  return scores;
}

/**
 * Records ADer's cal_anomaly_map (MAMBAAD.md §11) for channels-last encoder features f_i and decoder outputs d_i,
 * [B, h_i, w_i, C_i] per scale, without waiting for the GPU. The caller owns (and disposes) every returned tensor.
 */
export function recordAnomalyMaps(
  runtime: GpuRuntime,
  features: readonly Tensor[],
  decoded: readonly Tensor[],
  options: AnomalyMapOptions = {},
): AnomalyMapTensors {
  if (features.length === 0 || features.length !== decoded.length) {
    throw new Error(
      `anomaly map: need one decoded tensor per feature tensor (at least one scale), got ${features.length} feature and ${decoded.length} decoded tensors`,
    );
  }
  const [outHeight, outWidth] = options.outputSize ?? DEFAULT_ANOMALY_MAP_OPTIONS.outputSize;
  validSize('anomaly map: output height', outHeight);
  validSize('anomaly map: output width', outWidth);
  const sigma = options.gaussianSigma ?? DEFAULT_ANOMALY_MAP_OPTIONS.gaussianSigma;
  const truncate = options.gaussianTruncate ?? DEFAULT_ANOMALY_MAP_OPTIONS.gaussianTruncate;
  if (!(sigma >= 0 && Number.isFinite(sigma))) {
    throw new Error(`anomaly map: gaussianSigma must be >= 0, got ${sigma}`);
  }
  // Every check before the first allocation, so a bad call leaves nothing behind.
  const batch = features[0]?.shape[0] ?? 0;
  features.forEach((f, i) => {
    featureDims(f, decoded[i]!);
    if (f.shape[0] !== batch) throw new Error(`anomaly map: scale ${i} has batch ${f.shape[0]}, scale 0 has ${batch}`);
  });
  if (sigma > 0) gaussianKernel1d(sigma, truncate);

  const distances = features.map((f, i) => cosineDistance(runtime, f, decoded[i]!));
  const mapBeforeBlur = runtime.empty([batch, outHeight, outWidth], 'anomaly map before blur');
  // ADer: anomaly_map (zeros) += a_map per scale, then /= len(list) · Σweights with unit weights.
  const divisor = distances.length * distances.length;
  const perScale = distances.map((m, i) => {
    const [, h, w] = m.shape as [number, number, number];
    const upsampled = runtime.empty([batch, outHeight, outWidth], `upsampled scale ${i}`);
    const taps = uploadTaps(runtime, [h, w], [outHeight, outWidth], true);
    const last = i === distances.length - 1;
    runtime.dispatch({
      kernel: { family, entryPoint: 'resize_accumulate', constants: { WORKGROUP_SIZE } },
      params: resizeParams(batch, [h, w], [outHeight, outWidth], i > 0, last ? divisor : 1),
      buffers: [taps, m, upsampled, mapBeforeBlur],
      workgroups: runtime.workgroupsFor(upsampled.size, WORKGROUP_SIZE),
    });
    taps.dispose();
    return upsampled;
  });
  const map = sigma > 0 ? gaussianBlur(runtime, mapBeforeBlur, sigma, truncate) : mapBeforeBlur;
  return { distances, perScale, mapBeforeBlur, map, scores: imageMax(runtime, map) };
}

/** recordAnomalyMaps, then reads the image scores back. Rejects maps that hold NaN or infinite values. */
export async function anomalyMaps(
  runtime: GpuRuntime,
  features: readonly Tensor[],
  decoded: readonly Tensor[],
  options: AnomalyMapOptions = {},
): Promise<AnomalyMaps> {
  const { scores: scoreTensor, ...maps } = recordAnomalyMaps(runtime, features, decoded, options);
  let scores: Float32Array;
  try {
    scores = await runtime.read(scoreTensor);
  } catch (error) {
    disposeAnomalyMaps(maps);
    throw error;
  } finally {
    scoreTensor.dispose();
  }
  const bad = scores.findIndex((s) => Number.isNaN(s));
  if (bad >= 0) {
    disposeAnomalyMaps(maps);
    throw new Error(`anomaly map: image ${bad} has NaN or infinite values (non-finite features or decoder outputs)`);
  }
  return { ...maps, scores };
}

export function disposeAnomalyMaps(maps: Omit<AnomalyMapTensors, 'scores'>): void {
  for (const t of [...maps.distances, ...maps.perScale, maps.mapBeforeBlur, maps.map]) t.dispose();
}
