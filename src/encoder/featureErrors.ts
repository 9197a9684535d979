import type { SafetensorsFile } from '../io/safetensors.ts';
import type { EncoderFeatures } from './encoder.ts';
import { ENCODER_OUTPUTS, type EncoderOutputName } from './onnxGraph.ts';

export interface FeatureError {
  readonly shape: readonly number[];
  readonly expectedShape: readonly number[];
  /** max |actual - expected| / max |expected| over the whole map (NaN if the shapes differ). */
  readonly maxRelativeError: number;
}

/**
 * Compares encoder features with reference tensors named layer1..layer3 (e.g. from scripts/encoder_reference.py);
 * `batch` limits the comparison to the reference's first images.
 */
export function featureErrors(
  features: EncoderFeatures,
  reference: SafetensorsFile,
  batch?: number,
): Record<EncoderOutputName, FeatureError> {
  const errors = {} as Record<EncoderOutputName, FeatureError>;
  for (const name of ENCODER_OUTPUTS) {
    const { data, shape } = features[name];
    const [referenceBatch = 0, ...perImage] = reference.tensor(name).shape;
    const images = batch ?? referenceBatch;
    const expectedShape = [images, ...perImage];
    const expected = reference.float32(name).subarray(0, images * perImage.reduce((n, d) => n * d, 1));
    let maxRelativeError = Number.NaN;
    if (shape.length === expectedShape.length && shape.every((d, i) => d === expectedShape[i])) {
      let maxError = 0;
      let maxExpected = 0;
      for (let i = 0; i < expected.length; i++) {
        // A NaN in the output must fail the comparison, so it is propagated rather than skipped by Math.max.
        const error = Math.abs(data[i]! - expected[i]!);
        maxError = Number.isNaN(error) ? Number.NaN : Math.max(maxError, error);
        maxExpected = Math.max(maxExpected, Math.abs(expected[i]!));
      }
      maxRelativeError = maxError / maxExpected;
    }
    errors[name] = { shape: [...shape], expectedShape, maxRelativeError };
  }
  return errors;
}
