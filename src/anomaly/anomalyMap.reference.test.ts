import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors } from '../io/safetensors.ts';
import { maxAbsoluteError } from '../testing/reference.ts';
import {
  anomalyMapReference,
  bilinearTaps,
  cosineDistanceReference,
  type FeatureMap,
  featureMapFromNchw,
  gaussianFilterReference,
  reflectIndex,
} from './anomalyMap.reference.ts';

const golden = parseSafetensors(
  new Uint8Array(readFileSync(new URL('../../../shared/spec/golden/anomaly_map.safetensors', import.meta.url))),
  'anomaly_map',
);

/** The golden stores features NCHW; the engine (and the reference) are channels-last. */
function nhwc(name: string): FeatureMap {
  return featureMapFromNchw(golden.float32(name), golden.tensor(name).shape);
}

function float64(name: string): Float64Array {
  return Float64Array.from(golden.tensor(name).data, Number);
}

describe('anomaly map float64 reference', () => {
  it('reproduces every stage of the official golden (ADer cal_anomaly_map, scipy float64 blur)', () => {
    const scales = [0, 1, 2];
    const ref = anomalyMapReference(
      scales.map((i) => nhwc(`input.ft${i}`)),
      scales.map((i) => nhwc(`input.fs${i}`)),
    );
    const upsampled = float64('output.per_scale_upsampled');
    const planeSize = upsampled.length / 3;
    scales.forEach((i) => {
      // The golden per-scale maps are torch float32: their own rounding is the difference.
      const expected = upsampled.subarray(i * planeSize, (i + 1) * planeSize);
      expect(maxAbsoluteError(ref.perScale[i]!.data, expected), `scale ${i}`).toBeLessThan(1e-6);
    });
    expect(maxAbsoluteError(ref.mapBeforeBlur.data, float64('output.map_before_blur'))).toBeLessThan(1e-6);
    expect(maxAbsoluteError(ref.map.data, float64('output.map'))).toBeLessThan(1e-6);
    expect(maxAbsoluteError(ref.scores, float64('output.image_score'))).toBeLessThan(1e-6);
  });

  it('blurs the golden pre-blur map exactly as scipy.ndimage.gaussian_filter(sigma=4) does', () => {
    const [batch, height, width] = golden.tensor('output.map').shape as [number, number, number];
    const blurred = gaussianFilterReference({ data: float64('output.map_before_blur'), batch, height, width }, 4);
    expect(maxAbsoluteError(blurred.data, float64('output.map'))).toBeLessThan(1e-15);
  });

  it('matches scipy on maps smaller than the kernel, where the reflection wraps several times', () => {
    // scipy 1.10.1: gaussian_filter(np.arange(15.).reshape(3, 5), sigma=4).ravel()
    const wrappedSigma4 = [
      6.918812021247633, 6.949563613762878, 6.999328589268943, 7.049093564775007, 7.079845157290252, 6.919483431978692,
      6.950235024493938, 7.0000000000000036, 7.049764975506068, 7.080516568021313, 6.920154842709752, 6.950906435224997,
      7.000671410731061, 7.050436386237125, 7.08118797875237,
    ];
    const ramp = { data: Float64Array.from({ length: 15 }, (_, i) => i), batch: 1, height: 3, width: 5 };
    expect(maxAbsoluteError(gaussianFilterReference(ramp, 4).data, wrappedSigma4)).toBeLessThan(1e-13);
    // scipy 1.10.1: gaussian_filter(np.array([[3, -1], [.5, 2], [7, 1], [-2, 4]]), sigma=1.5).ravel() (radius 6)
    const wrappedSigma15 = [
      1.5821800643503339, 1.4577365419852577, 1.8015177610084612, 1.7189496375442856, 1.9699600912578732,
      1.9620418860901627, 1.9742149202682482, 2.033399097495378,
    ];
    const small = { data: Float64Array.of(3, -1, 0.5, 2, 7, 1, -2, 4), batch: 1, height: 4, width: 2 };
    expect(maxAbsoluteError(gaussianFilterReference(small, 1.5).data, wrappedSigma15)).toBeLessThan(1e-13);
  });

  it('reflects half-sample symmetrically and periodically (d c b a | a b c d | d c b a)', () => {
    const indices = Array.from({ length: 17 }, (_, i) => reflectIndex(i - 7, 3));
    expect(indices).toEqual([0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2]);
    expect(reflectIndex(-5, 1)).toBe(0);
  });

  it('clamps each norm to eps separately, as torch does', () => {
    // torch 1.13: F.cosine_similarity(torch.full((1, 4), 1e-9), torch.ones(1, 4), dim=1) == 0.2; zeros give 0.
    const tiny: FeatureMap = { data: [1e-9, 1e-9, 1e-9, 1e-9, 0, 0, 0, 0], shape: [1, 1, 2, 4] };
    const ones: FeatureMap = { data: new Float64Array(8).fill(1), shape: [1, 1, 2, 4] };
    const m = cosineDistanceReference(tiny, ones).data;
    expect(m[0]).toBeCloseTo(0.8, 12);
    expect(m[1]).toBe(1);
  });

  it('places align-corners and half-pixel taps like torch', () => {
    const corners = bilinearTaps(3, 5, true);
    expect(corners.map((t) => t.index0 + t.weight1)).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(corners[4]).toEqual({ index0: 2, index1: 2, weight0: 1, weight1: 0 });
    const centres = bilinearTaps(2, 4, false);
    // src = max((dst + 0.5) * 2 / 4 - 0.5, 0) = 0, 0.25, 0.75, 1.25 (clamped into the last pixel)
    expect(centres.map((t) => [t.index0, t.index1, t.weight1])).toEqual([
      [0, 1, 0],
      [0, 1, 0.25],
      [0, 1, 0.75],
      [1, 1, 0.25],
    ]);
    expect(() => bilinearTaps(0, 4, true)).toThrow(/sizes must be >= 1/);
  });

  it('rejects mismatched inputs with a clear error', () => {
    const a: FeatureMap = { data: new Float32Array(8), shape: [1, 2, 2, 2] };
    const b: FeatureMap = { data: new Float32Array(8), shape: [1, 2, 1, 4] };
    expect(() => cosineDistanceReference(a, b)).toThrow(/one shape, got \[1, 2, 2, 2\] and \[1, 2, 1, 4\]/);
    expect(() => anomalyMapReference([a], [])).toThrow(/one decoded map per feature map/);
  });
});
