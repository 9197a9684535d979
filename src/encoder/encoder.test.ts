import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors, type SafetensorsFile } from '../io/safetensors.ts';
import { acceptSharedWriteBufferData, createEncoder, EncoderRuntimeError } from './encoder.ts';
import { featureErrors } from './featureErrors.ts';
import { buildResNetEncoderOnnx } from './onnxGraph.ts';

// The features must match PyTorch (float64, scripts/encoder_reference.py) to this relative error on every layer.
const TOLERANCE = 1e-4;

const repo = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const REFERENCE_SCRIPT = repo('scripts/encoder_reference.py');
const REFERENCE_FILES = [
  'resnet18_folded_reference.safetensors',
  'resnet34_unfolded_weights.safetensors',
  'resnet34_unfolded_reference.safetensors',
].map((name) => repo(`build/encoder/${name}`));

/** (Re)generates the PyTorch reference when it is missing or older than its script. */
function ensureReference(): void {
  const scriptTime = statSync(REFERENCE_SCRIPT).mtimeMs;
  if (REFERENCE_FILES.every((file) => existsSync(file) && statSync(file).mtimeMs >= scriptTime)) return;
  execFileSync('/usr/bin/python3', [REFERENCE_SCRIPT], { stdio: 'pipe' });
}

const load = (path: string): SafetensorsFile => parseSafetensors(new Uint8Array(readFileSync(path)), path);

describe('ResNet encoder on onnxruntime-web in Node (wasm)', () => {
  let resnet18Reference: SafetensorsFile;
  let resnet34Weights: SafetensorsFile;
  let resnet34Reference: SafetensorsFile;

  beforeAll(() => {
    ensureReference();
    [resnet18Reference, resnet34Weights, resnet34Reference] = REFERENCE_FILES.map(load) as [
      SafetensorsFile,
      SafetensorsFile,
      SafetensorsFile,
    ];
  }, 120_000);

  it('ResNet18 (BN-folded ImageNet weights) matches PyTorch on two real 256x256 images', async () => {
    const weights = load(repo('../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors'));
    const encoder = await createEncoder({ model: buildResNetEncoderOnnx(weights, 'resnet18'), backend: 'wasm' });
    expect(encoder.backend).toBe('wasm');
    const features = await encoder.run(resnet18Reference.float32('input'), 2);
    const errors = featureErrors(features, resnet18Reference);
    expect(errors.layer1.shape).toEqual([2, 64, 64, 64]);
    expect(errors.layer2.shape).toEqual([2, 128, 32, 32]);
    expect(errors.layer3.shape).toEqual([2, 256, 16, 16]);
    for (const error of Object.values(errors)) expect(error.maxRelativeError).toBeLessThanOrEqual(TOLERANCE);
    await encoder.release();
  });

  it('ResNet34 (unfolded conv+BatchNorm state dict, net_t. prefix) matches PyTorch batch_norm on 72x88 crops', async () => {
    const model = buildResNetEncoderOnnx(resnet34Weights, 'resnet34', { keyPrefix: 'net_t.' });
    const encoder = await createEncoder({ model, backend: 'wasm' });
    const features = await encoder.run(resnet34Reference.float32('input'), 2, { height: 72, width: 88 });
    const errors = featureErrors(features, resnet34Reference);
    // Odd sizes: 72x88 -> 18x22 -> 9x11 -> 5x6 (each stride-2 stage rounds up).
    expect(errors.layer3.shape).toEqual([2, 256, 5, 6]);
    for (const error of Object.values(errors)) expect(error.maxRelativeError).toBeLessThanOrEqual(TOLERANCE);
    await encoder.release();
  });

  it("'auto' without WebGPU picks wasm and says why; 'webgpu' without navigator.gpu fails naming the fix", async () => {
    const weights = load(repo('../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors'));
    const model = buildResNetEncoderOnnx(weights, 'resnet18');
    const encoder = await createEncoder({ model, backend: 'auto' });
    expect(encoder.backend).toBe('wasm');
    expect(encoder.selection.reason).toMatch(/no navigator\.gpu in Node/);
    await expect(createEncoder({ model, backend: 'webgpu' })).rejects.toThrow(
      /backend 'webgpu' is unavailable: no navigator\.gpu in Node.*'webgpu' package/,
    );
    await expect(encoder.run(new Float32Array(3 * 64 * 64), 2)).rejects.toThrow(EncoderRuntimeError);
    await expect(encoder.run(new Float32Array(3 * 2 * 64 * 48), 2)).rejects.toThrow(/not a square image/);
    await expect(encoder.run(new Float32Array(3 * 64 * 48), 1, { height: 64, width: 64 })).rejects.toThrow(
      /not 1x3x64x64/,
    );
    await encoder.release();
  });

  it("Node WebGPU shim: writeBuffer data in shared memory (ORT's threaded wasm heap) reaches Dawn as a plain copy", () => {
    const calls: unknown[][] = [];
    class FakeQueue {
      writeBuffer(...args: unknown[]): undefined {
        calls.push(args);
      }
    }
    const holder = globalThis as { GPUQueue?: unknown };
    const saved = holder.GPUQueue;
    holder.GPUQueue = FakeQueue;
    try {
      acceptSharedWriteBufferData();
      acceptSharedWriteBufferData(); // idempotent: a second call must not wrap twice
      const queue = new FakeQueue() as unknown as GPUQueue;
      const target = {} as GPUBuffer;
      const shared = new SharedArrayBuffer(16);
      new Uint8Array(shared).forEach((_, i, bytes) => {
        bytes[i] = i;
      });
      queue.writeBuffer(target, 8, shared, 4, 8); // bytes 4..11
      // WebGPU allows views on shared memory; @webgpu/types does not accept Float32Array<SharedArrayBuffer> yet.
      const sharedView = new Float32Array(shared, 4, 3) as unknown as GPUAllowSharedBufferSource;
      queue.writeBuffer(target, 0, sharedView, 1, 2); // elements 1..2 = bytes 8..15
      const plain = new Uint8Array(4);
      queue.writeBuffer(target, 0, plain);
      const [first, second, third] = calls as [unknown[], unknown[], unknown[]];
      expect(first.slice(0, 2)).toEqual([target, 8]);
      expect(first[2]).toBeInstanceOf(Uint8Array);
      expect((first[2] as Uint8Array).buffer).toBeInstanceOf(ArrayBuffer);
      expect([...(first[2] as Uint8Array)]).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
      expect([...(second[2] as Uint8Array)]).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
      expect(third).toEqual([target, 0, plain, undefined, undefined]);
      expect(third[2]).toBe(plain);
      expect(calls).toHaveLength(3);
    } finally {
      holder.GPUQueue = saved;
    }
  });
});
