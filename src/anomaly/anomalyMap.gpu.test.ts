import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../gpu/runtime.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { loadGolden } from '../testing/goldens.ts';
import { createTestRuntime } from '../testing/gpu.ts';
import { maxAbsoluteError, randomArray, seededRandom } from '../testing/reference.ts';
import {
  anomalyMapReference,
  bilinearResizeReference,
  type FeatureMap,
  featureMapFromNchw,
} from './anomalyMap.reference.ts';
import {
  type AnomalyMapOptions,
  anomalyMaps,
  disposeAnomalyMaps,
  gaussianBlur,
  recordAnomalyMaps,
  resizeForDisplay,
} from './anomalyMap.ts';

// The goldens' README: maps within 1e-5 absolute.
const MAP_TOLERANCE = 1e-5;

function upload(runtime: GpuRuntime, map: FeatureMap): Tensor {
  return runtime.upload(map.shape, Float32Array.from(map.data), 'features');
}

async function readAll(runtime: GpuRuntime, tensors: readonly Tensor[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of tensors) out.push(await runtime.read(t));
  return out;
}

describe('anomaly map on the GPU', () => {
  let runtime: GpuRuntime;
  let golden: SafetensorsFile;
  beforeAll(async () => {
    runtime = await createTestRuntime();
    golden = await loadGolden('anomaly_map');
  });
  afterAll(() => runtime.destroy());

  const float64 = (name: string) => Float64Array.from(golden.tensor(name).data, Number);
  const goldenFeatures = (prefix: 'ft' | 'fs') =>
    [0, 1, 2].map((i) =>
      featureMapFromNchw(golden.float32(`input.${prefix}${i}`), golden.tensor(`input.${prefix}${i}`).shape),
    );

  it('matches the official golden at every stage (ADer cal_anomaly_map)', async () => {
    const features = goldenFeatures('ft');
    const decoded = goldenFeatures('fs');
    const result = await anomalyMaps(
      runtime,
      features.map((f) => upload(runtime, f)),
      decoded.map((d) => upload(runtime, d)),
    );
    expect(result.map.shape).toEqual([2, 256, 256]);
    // The golden has no low-resolution maps; the float64 reference on the same inputs stands in.
    const reference = anomalyMapReference(features, decoded);
    const distances = await readAll(runtime, result.distances);
    const perScale = await readAll(runtime, result.perScale);
    const [beforeBlur, map] = await readAll(runtime, [result.mapBeforeBlur, result.map]);
    const upsampled = float64('output.per_scale_upsampled');
    const plane = upsampled.length / 3;

    // The blur alone, on the golden's own float64 pre-blur map rounded to f32.
    const goldenBeforeBlur = float64('output.map_before_blur');
    const blurredAlone = await runtime.read(
      gaussianBlur(runtime, runtime.upload([2, 256, 256], Float32Array.from(goldenBeforeBlur)), 4),
    );

    const errors = {
      distancesVsFloat64Reference: distances.map((d, i) => maxAbsoluteError(d, reference.distances[i]!.data)),
      perScaleUpsampled: perScale.map((p, i) => maxAbsoluteError(p, upsampled.subarray(i * plane, (i + 1) * plane))),
      mapBeforeBlur: maxAbsoluteError(beforeBlur!, goldenBeforeBlur),
      map: maxAbsoluteError(map!, float64('output.map')),
      blurOnlyOnGoldenInput: maxAbsoluteError(blurredAlone, float64('output.map')),
      imageScores: maxAbsoluteError(result.scores, float64('output.image_score')),
    };
    console.log(JSON.stringify({ golden: 'anomaly_map', adapter: runtime.adapterName, maxAbsoluteError: errors }));
    for (const [stage, error] of Object.entries(errors)) {
      for (const e of [error].flat()) expect(e, stage).toBeLessThanOrEqual(MAP_TOLERANCE);
    }
    disposeAnomalyMaps(result);
  });

  interface ReferenceCase {
    readonly name: string;
    readonly batch: number;
    /** [h, w, C] per scale. */
    readonly scales: readonly (readonly [number, number, number])[];
    readonly options: AnomalyMapOptions;
    /** Post-ReLU-like features with decoded = features + small noise: 1 − cos near 0, where cancellation bites. */
    readonly nearlyEqual?: boolean;
  }
  const referenceCases: ReferenceCase[] = [
    {
      name: 'three scales 7x9, 4x3, 1x2 to 33x20',
      batch: 2,
      scales: [
        [7, 9, 5],
        [4, 3, 70],
        [1, 2, 13],
      ],
      options: { outputSize: [33, 20] },
    },
    {
      // Radius 16 on a 5x3 map: the reflection wraps several times on both axes.
      name: 'two scales to 5x3, smaller than the 33-tap kernel',
      batch: 2,
      scales: [
        [7, 9, 3],
        [2, 2, 129],
      ],
      options: { outputSize: [5, 3] },
    },
    {
      name: 'sigma 1.5, truncate 3 (radius 5) to 11x6',
      batch: 2,
      scales: [[3, 4, 64]],
      options: { outputSize: [11, 6], gaussianSigma: 1.5, gaussianTruncate: 3 },
    },
    {
      name: 'no blur (sigma 0) to 1x6',
      batch: 2,
      scales: [[2, 5, 7]],
      options: { outputSize: [1, 6], gaussianSigma: 0 },
    },
    {
      name: 'MambaAD sizes (64ch 64x64, 128ch 32x32, 256ch 16x16) to 256x256, nearly equal features',
      batch: 1,
      scales: [
        [64, 64, 64],
        [32, 32, 128],
        [16, 16, 256],
      ],
      options: {},
      nearlyEqual: true,
    },
  ];

  for (const { name, batch, scales, options, nearlyEqual } of referenceCases) {
    it(`matches the float64 reference: ${name}`, async () => {
      const random = seededRandom(name.length);
      const features: FeatureMap[] = scales.map(([h, w, c]) => {
        const data = randomArray(batch * h * w * c, random);
        return { data: nearlyEqual ? data.map(Math.abs) : data, shape: [batch, h, w, c] };
      });
      const decoded: FeatureMap[] = features.map(({ data, shape }) => {
        const noise = randomArray(data.length, random, nearlyEqual ? 0.05 : 1);
        return { data: nearlyEqual ? noise.map((n, i) => data[i]! + n) : noise, shape };
      });
      // Pixel 0 of image 0: a zero feature vector (cos = 0) at scale 0, and a tiny one (norm below eps) at the last.
      (features[0]!.data as Float32Array).fill(0, 0, scales[0]![2]);
      (features.at(-1)!.data as Float32Array).fill(1e-10, 0, scales.at(-1)![2]);
      const result = await anomalyMaps(
        runtime,
        features.map((f) => upload(runtime, f)),
        decoded.map((d) => upload(runtime, d)),
        options,
      );
      const reference = anomalyMapReference(features, decoded, options);
      const distances = await readAll(runtime, result.distances);
      const perScale = await readAll(runtime, result.perScale);
      const [beforeBlur, map] = await readAll(runtime, [result.mapBeforeBlur, result.map]);
      const errors = {
        distances: distances.map((d, i) => maxAbsoluteError(d, reference.distances[i]!.data)),
        perScale: perScale.map((p, i) => maxAbsoluteError(p, reference.perScale[i]!.data)),
        mapBeforeBlur: maxAbsoluteError(beforeBlur!, reference.mapBeforeBlur.data),
        map: maxAbsoluteError(map!, reference.map.data),
        scores: maxAbsoluteError(result.scores, reference.scores),
      };
      console.log(JSON.stringify({ case: name, maxAbsoluteErrorVsFloat64: errors }));
      for (const [stage, error] of Object.entries(errors)) {
        for (const e of [error].flat()) expect(e, stage).toBeLessThan(MAP_TOLERANCE);
      }
      if (options.gaussianSigma === 0) expect(result.map).toBe(result.mapBeforeBlur);
      disposeAnomalyMaps(result);
    });
  }

  it('resamples a map to original image sizes for display (half-pixel centres)', async () => {
    const random = seededRandom(7);
    const [batch, height, width] = [2, 256, 256];
    const source = randomArray(batch * height * width, random);
    const map = runtime.upload([batch, height, width], source);
    const errors: Record<string, number> = {};
    for (const [h, w] of [
      [900, 900],
      [768, 1024],
      [37, 100],
    ] as const) {
      const resized = await runtime.read(resizeForDisplay(runtime, map, h, w));
      const expected = bilinearResizeReference({ data: Float64Array.from(source), batch, height, width }, h, w, false);
      errors[`${h}x${w}`] = maxAbsoluteError(resized, expected.data);
      expect(errors[`${h}x${w}`], `${h}x${w}`).toBeLessThan(1e-6);
    }
    console.log(JSON.stringify({ displayResizeMaxAbsoluteError: errors }));
  });

  it('rejects bad input with a clear error', async () => {
    const a = runtime.upload([1, 2, 2, 3], new Float32Array(12));
    const b = runtime.upload([1, 2, 3, 2], new Float32Array(12));
    const c = runtime.upload([2, 2, 2, 3], new Float32Array(24));
    const flat = runtime.upload([12], new Float32Array(12));
    expect(() => recordAnomalyMaps(runtime, [a], [b])).toThrow(/expected shape \[1, 2, 2, 3\], got \[1, 2, 3, 2\]/);
    expect(() => recordAnomalyMaps(runtime, [a, c], [a, c])).toThrow(/scale 1 has batch 2, scale 0 has 1/);
    expect(() => recordAnomalyMaps(runtime, [a], [])).toThrow(/one decoded tensor per feature tensor/);
    expect(() => recordAnomalyMaps(runtime, [flat], [flat])).toThrow(/expected non-empty \[B, h, w, C\]/);
    expect(() => recordAnomalyMaps(runtime, [a], [a], { outputSize: [0, 4] })).toThrow(/output height must be/);
    expect(() => recordAnomalyMaps(runtime, [a], [a], { gaussianSigma: -1 })).toThrow(/gaussianSigma must be >= 0/);
    expect(() => recordAnomalyMaps(runtime, [a], [a], { gaussianTruncate: 0 })).toThrow(/truncate must be > 0/);
    expect(() => resizeForDisplay(runtime, a, 10, 10)).toThrow(/\[B, height, width\] map/);
    const withNaN = new Float32Array(12).fill(1);
    withNaN[4] = Number.NaN;
    const nan = runtime.upload([1, 2, 2, 3], withNaN);
    await expect(anomalyMaps(runtime, [nan], [a])).rejects.toThrow(/image 0 has NaN or infinite values/);
  });
});
