/**
 * Float64 CPU reference of ADer's `Evaluator.cal_anomaly_map` as MambaAD calls it (MAMBAAD.md §11): per-scale cosine
 * distance, bilinear upsampling with align_corners=True, sum / (scales · Σweights) = 9, scipy's gaussian_filter, max.
 * Pure TypeScript, no GPU: the GPU tests, the metrics and the parity tools share it.
 */

/** A channels-last [B, h, w, C] array, like the engine's feature tensors. */
export interface FeatureMap {
  readonly data: ArrayLike<number>;
  readonly shape: readonly [number, number, number, number];
}

/** Transposes an NCHW array (PyTorch's layout, the goldens') to a channels-last FeatureMap. */
export function featureMapFromNchw(data: ArrayLike<number>, shape: readonly number[]): FeatureMap {
  if (shape.length !== 4) throw new Error(`expected an NCHW shape, got [${shape.join(', ')}]`);
  const [batch, channels, height, width] = shape as [number, number, number, number];
  if (data.length !== batch * channels * height * width) {
    throw new Error(`${data.length} values for NCHW shape [${shape.join(', ')}]`);
  }
  const out = new Float32Array(data.length);
  let source = 0;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < height * width; p++) out[(b * height * width + p) * channels + c] = data[source++]!;
    }
  }
  return { data: out, shape: [batch, height, width, channels] };
}

/** [B, height, width] maps, row-major. */
export interface Maps {
  readonly data: Float64Array;
  readonly batch: number;
  readonly height: number;
  readonly width: number;
}

/** torch.nn.functional.cosine_similarity's default eps. */
export const COSINE_EPS = 1e-8;

/**
 * 1 − cos(f, d) over the channel axis per pixel. Modern torch semantics: ⟨x/max(‖x‖,ε), y/max(‖y‖,ε)⟩, written as
 * ⟨x,y⟩ / (max(‖x‖,ε)·max(‖y‖,ε)) (the same number). Torch before 1.12 clamped the product of the squared norms
 * instead; the two differ only when a norm is below ε.
 */
export function cosineDistanceReference(features: FeatureMap, decoded: FeatureMap): Maps {
  assertSameShape('cosine distance', features.shape, decoded.shape);
  const [batch, height, width, channels] = features.shape;
  const pixels = batch * height * width;
  const out = new Float64Array(pixels);
  for (let p = 0; p < pixels; p++) {
    let xx = 0;
    let yy = 0;
    let xy = 0;
    for (let c = 0, i = p * channels; c < channels; c++, i++) {
      const x = features.data[i]!;
      const y = decoded.data[i]!;
      xx += x * x;
      yy += y * y;
      xy += x * y;
    }
    out[p] = 1 - xy / (Math.max(Math.sqrt(xx), COSINE_EPS) * Math.max(Math.sqrt(yy), COSINE_EPS));
  }
  return { data: out, batch, height, width };
}

/** For one output index: the two source indices and their weights. */
export interface BilinearTap {
  readonly index0: number;
  readonly index1: number;
  readonly weight0: number;
  readonly weight1: number;
}

/**
 * Source taps along one axis, as torch's CPU upsample_bilinear2d computes them (coordinates in double there too).
 * alignCorners true: src = dst·(in−1)/(out−1) (ADer's upsampling). False: half-pixel centres,
 * src = max((dst+0.5)·in/out − 0.5, 0) (torch's default; PIL and OpenCV use the same centres).
 */
export function bilinearTaps(inSize: number, outSize: number, alignCorners: boolean): BilinearTap[] {
  if (!(inSize >= 1 && outSize >= 1))
    throw new Error(`bilinear resize: sizes must be >= 1, got ${inSize} -> ${outSize}`);
  const taps: BilinearTap[] = [];
  for (let dst = 0; dst < outSize; dst++) {
    let src: number;
    if (alignCorners) src = outSize > 1 ? (dst * (inSize - 1)) / (outSize - 1) : 0;
    else src = Math.max(((dst + 0.5) * inSize) / outSize - 0.5, 0);
    const index0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(src - index0, 0), 1);
    taps.push({ index0, index1: Math.min(index0 + 1, inSize - 1), weight0: 1 - lambda, weight1: lambda });
  }
  return taps;
}

export function bilinearResizeReference(maps: Maps, height: number, width: number, alignCorners: boolean): Maps {
  const rows = bilinearTaps(maps.height, height, alignCorners);
  const cols = bilinearTaps(maps.width, width, alignCorners);
  const out = new Float64Array(maps.batch * height * width);
  for (let b = 0; b < maps.batch; b++) {
    const base = b * maps.height * maps.width;
    for (let y = 0; y < height; y++) {
      const r = rows[y]!;
      const row0 = base + r.index0 * maps.width;
      const row1 = base + r.index1 * maps.width;
      for (let x = 0; x < width; x++) {
        const c = cols[x]!;
        const top = maps.data[row0 + c.index0]! * c.weight0 + maps.data[row0 + c.index1]! * c.weight1;
        const bottom = maps.data[row1 + c.index0]! * c.weight0 + maps.data[row1 + c.index1]! * c.weight1;
        out[(b * height + y) * width + x] = top * r.weight0 + bottom * r.weight1;
      }
    }
  }
  return { data: out, batch: maps.batch, height, width };
}

/** scipy.ndimage's radius for a Gaussian: int(truncate·σ + 0.5). */
export function gaussianRadius(sigma: number, truncate: number): number {
  return Math.trunc(truncate * sigma + 0.5);
}

/** scipy.ndimage._gaussian_kernel1d (order 0): exp(−x²/(2σ²)) over x ∈ [−r, r], normalised to sum 1. */
export function gaussianKernel1d(sigma: number, truncate: number): Float64Array {
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new Error(`gaussian blur: sigma must be > 0, got ${sigma}`);
  if (!(truncate > 0) || !Number.isFinite(truncate)) {
    throw new Error(`gaussian blur: truncate must be > 0, got ${truncate}`);
  }
  const radius = gaussianRadius(sigma, truncate);
  const weights = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let x = -radius; x <= radius; x++) {
    const w = Math.exp((-0.5 / (sigma * sigma)) * x * x);
    weights[x + radius] = w;
    sum += w;
  }
  for (let i = 0; i < weights.length; i++) weights[i]! /= sum;
  return weights;
}

/**
 * scipy.ndimage mode 'reflect' (half-sample symmetric, d c b a | a b c d): the extension is periodic with period 2n,
 * so an index more than n outside (a line shorter than the kernel radius) reflects again. scipy's NI_ExtendLine
 * builds exactly this sequence.
 */
export function reflectIndex(index: number, size: number): number {
  const period = 2 * size;
  const m = ((index % period) + period) % period;
  return m < size ? m : period - 1 - m;
}

/** scipy.ndimage.gaussian_filter on each [height, width] map: axis 0 (rows) first, then axis 1, mode 'reflect'. */
export function gaussianFilterReference(maps: Maps, sigma: number, truncate = 4): Maps {
  const weights = gaussianKernel1d(sigma, truncate);
  const radius = (weights.length - 1) / 2;
  const { batch, height, width } = maps;
  const filterAxis = (input: Float64Array, along: 'rows' | 'cols'): Float64Array => {
    const out = new Float64Array(input.length);
    const [size, stride] = along === 'rows' ? [height, width] : [width, 1];
    for (let b = 0; b < batch; b++) {
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const position = along === 'rows' ? y : x;
          const lineStart = b * height * width + (along === 'rows' ? x : y * width);
          let sum = 0;
          for (let k = -radius; k <= radius; k++) {
            sum += weights[k + radius]! * input[lineStart + reflectIndex(position + k, size) * stride]!;
          }
          out[(b * height + y) * width + x] = sum;
        }
      }
    }
    return out;
  };
  return { data: filterAxis(filterAxis(maps.data, 'rows'), 'cols'), batch, height, width };
}

/** Per image: the maximum of its map (ADer's image score with pooling_ks None). */
export function imageScoresReference(maps: Maps): Float64Array {
  const perImage = maps.height * maps.width;
  const scores = new Float64Array(maps.batch).fill(Number.NEGATIVE_INFINITY);
  for (let i = 0; i < maps.data.length; i++) {
    const b = Math.floor(i / perImage);
    scores[b] = Math.max(scores[b]!, maps.data[i]!);
  }
  return scores;
}

export interface AnomalyMapOptions {
  /** [height, width] of the map; ADer uses the input size, 256x256. */
  readonly outputSize?: readonly [number, number];
  /** 0 skips the blur, as ADer does. */
  readonly gaussianSigma?: number;
  readonly gaussianTruncate?: number;
}

export const DEFAULT_ANOMALY_MAP_OPTIONS = {
  outputSize: [256, 256] as const,
  gaussianSigma: 4,
  gaussianTruncate: 4,
};

export interface AnomalyMapReference {
  /** m_i = 1 − cos per scale, at the scale's resolution. */
  readonly distances: Maps[];
  /** m_i upsampled to the output size (align_corners=True). */
  readonly perScale: Maps[];
  /** Σ M_i / (scales · Σweights); with unit weights that is / scales², i.e. / 9 for three scales. */
  readonly mapBeforeBlur: Maps;
  readonly map: Maps;
  readonly scores: Float64Array;
}

/** The whole cal_anomaly_map in float64. */
export function anomalyMapReference(
  features: readonly FeatureMap[],
  decoded: readonly FeatureMap[],
  options: AnomalyMapOptions = {},
): AnomalyMapReference {
  if (features.length === 0 || features.length !== decoded.length) {
    throw new Error(`anomaly map: need one decoded map per feature map, got ${features.length} and ${decoded.length}`);
  }
  const [height, width] = options.outputSize ?? DEFAULT_ANOMALY_MAP_OPTIONS.outputSize;
  const sigma = options.gaussianSigma ?? DEFAULT_ANOMALY_MAP_OPTIONS.gaussianSigma;
  const truncate = options.gaussianTruncate ?? DEFAULT_ANOMALY_MAP_OPTIONS.gaussianTruncate;
  const distances = features.map((f, i) => cosineDistanceReference(f, decoded[i]!));
  const perScale = distances.map((m) => bilinearResizeReference(m, height, width, true));
  const batch = features[0]!.shape[0];
  const sum = new Float64Array(batch * height * width);
  for (const scale of perScale) {
    if (scale.batch !== batch) throw new Error('anomaly map: every scale must have the same batch size');
    for (let i = 0; i < sum.length; i++) sum[i]! += scale.data[i]!;
  }
  const divisor = perScale.length * perScale.length;
  for (let i = 0; i < sum.length; i++) sum[i]! /= divisor;
  const mapBeforeBlur = { data: sum, batch, height, width };
  const map = sigma > 0 ? gaussianFilterReference(mapBeforeBlur, sigma, truncate) : mapBeforeBlur;
  return { distances, perScale, mapBeforeBlur, map, scores: imageScoresReference(map) };
}

function assertSameShape(what: string, a: readonly number[], b: readonly number[]): void {
  if (a.length !== 4 || b.length !== 4 || a.some((d, i) => d !== b[i])) {
    throw new Error(
      `${what}: expected two [B, h, w, C] maps of one shape, got [${a.join(', ')}] and [${b.join(', ')}]`,
    );
  }
}
