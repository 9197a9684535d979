import { beforeAll, describe, expect, it } from 'vitest';
import weightsUrl from '../../../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors?url';
import { parseSafetensors, type SafetensorsFile } from '../io/safetensors.ts';
import { createEncoder } from './encoder.ts';
import { featureErrors } from './featureErrors.ts';
import { buildResNetEncoderOnnx } from './onnxGraph.ts';

// Same bound as the Node test: max |ORT - PyTorch float64| / max |PyTorch| per layer.
const TOLERANCE = 1e-4;
const REFERENCE_URL = '/build/encoder/resnet18_folded_reference.safetensors';

async function fetchSafetensors(url: string, hint: string): Promise<SafetensorsFile> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}. ${hint}`);
  try {
    return parseSafetensors(new Uint8Array(await response.arrayBuffer()), url);
  } catch (error) {
    throw new Error(`${url}: ${String(error)}. ${hint}`);
  }
}

describe('ResNet18 encoder on onnxruntime-web in Chromium', () => {
  let model: Uint8Array;
  let reference: SafetensorsFile;

  beforeAll(async () => {
    const weights = await fetchSafetensors(weightsUrl, 'the shared ResNet18 weights are missing');
    model = buildResNetEncoderOnnx(weights, 'resnet18');
    reference = await fetchSafetensors(
      REFERENCE_URL,
      'Generate the PyTorch reference first: /usr/bin/python3 scripts/encoder_reference.py (the unit tests also do)',
    );
  });

  it('wasm: matches PyTorch on two real 256x256 images, loading ORT only from our origin', async () => {
    const encoder = await createEncoder({ model, backend: 'wasm' });
    const features = await encoder.run(reference.float32('input'), 2);
    const errors = featureErrors(features, reference);
    expect(errors.layer3.shape).toEqual([2, 256, 16, 16]);
    for (const error of Object.values(errors)) expect(error.maxRelativeError).toBeLessThanOrEqual(TOLERANCE);
    await encoder.release();
    const foreign = performance
      .getEntriesByType('resource')
      .map((entry) => entry.name)
      .filter((url) => new URL(url).origin !== location.origin);
    expect(foreign).toEqual([]);
  });

  // One image only: SwiftShader runs ORT's WebGPU convs at about 15 s per 256x256 image on 2 cores.
  it('webgpu: matches PyTorch on the first image (SwiftShader here)', async () => {
    const encoder = await createEncoder({ model, backend: 'webgpu' });
    expect(encoder.backend).toBe('webgpu');
    const features = await encoder.run(reference.float32('input').subarray(0, 3 * 256 * 256), 1);
    const errors = featureErrors(features, reference, 1);
    expect(errors.layer1.shape).toEqual([1, 64, 64, 64]);
    for (const error of Object.values(errors)) expect(error.maxRelativeError).toBeLessThanOrEqual(TOLERANCE);
    await encoder.release();
  });

  it("'auto' picks wasm on a software adapter without measuring, and says so", async () => {
    const encoder = await createEncoder({ model, backend: 'auto' });
    expect(encoder.backend).toBe('wasm');
    expect(encoder.selection.reason).toMatch(/software adapter/);
    await encoder.release();
  });
});
