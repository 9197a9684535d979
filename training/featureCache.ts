import type { Encoder } from '../src/encoder/encoder.ts';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import { encodeBatch } from '../src/inference/features.ts';
import type { TrainingImages } from './trainLoop.ts';

/**
 * The frozen encoder's features of every training image, kept on the GPU. MambaAD trains without augmentation, so an
 * image's features are the same every epoch: encoding them once instead of every step takes the encoder (and the
 * image decoding, and the CPU round trip of onnxruntime's separate device) out of the training loop.
 * Per image and scale one NHWC tensor; a step's batch is assembled with buffer copies.
 */
export class FeatureCache {
  private constructor(
    private readonly runtime: GpuRuntime,
    /** perImage[i][scale]: [1, h, w, c]. */
    private readonly perImage: Tensor[][],
  ) {}

  /** GPU bytes one image's features take: the cache holds count times this. */
  static bytesPerImage(inputSize: number, encoderChannels: readonly number[]): number {
    // layer1..3 of a ResNet: strides 4, 8, 16.
    return encoderChannels.reduce((sum, c, i) => sum + (inputSize / 2 ** (i + 2)) ** 2 * c * 4, 0);
  }

  static async build(
    runtime: GpuRuntime,
    encoder: Encoder,
    images: TrainingImages,
    inputSize: number,
    options: { batch: number; signal?: AbortSignal; onProgress?(done: number, total: number): void },
  ): Promise<FeatureCache> {
    const perImageValues = 3 * inputSize * inputSize;
    const perImage: Tensor[][] = [];
    try {
      for (let first = 0; first < images.count; first += options.batch) {
        options.signal?.throwIfAborted();
        const count = Math.min(options.batch, images.count - first);
        const pixels = new Float32Array(count * perImageValues);
        for (let i = 0; i < count; i++) pixels.set(await images.load(first + i), i * perImageValues);
        const features = await encodeBatch(runtime, encoder, pixels, count);
        for (let i = 0; i < count; i++) {
          perImage.push(
            features.map((f) => {
              const one = runtime.empty([1, ...f.shape.slice(1)], 'cached encoder feature');
              runtime.copy(f, one, one.byteLength, i * one.byteLength, 0);
              return one;
            }),
          );
        }
        for (const f of features) f.dispose();
        await runtime.flush();
        options.onProgress?.(first + count, images.count);
      }
    } catch (error) {
      for (const tensors of perImage) for (const t of tensors) t.dispose();
      throw error;
    }
    return new FeatureCache(runtime, perImage);
  }

  get count(): number {
    return this.perImage.length;
  }

  /** The features of `indices` as one batch per scale ([B, h, w, c] each); the caller disposes them. */
  batch(indices: readonly number[]): Tensor[] {
    const first = this.perImage[0];
    if (!first) throw new Error('feature cache: empty');
    return first.map((scale, s) => {
      const out = this.runtime.empty([indices.length, ...scale.shape.slice(1)], 'encoder feature batch');
      indices.forEach((index, b) => {
        const source = this.perImage[index]?.[s];
        if (!source) throw new Error(`feature cache: no image ${index} (holds ${this.perImage.length})`);
        this.runtime.copy(source, out, source.byteLength, 0, b * source.byteLength);
      });
      return out;
    });
  }

  dispose(): void {
    for (const tensors of this.perImage) for (const t of tensors) t.dispose();
    this.perImage.length = 0;
  }
}
