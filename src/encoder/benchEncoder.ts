import type { Encoder, ImageSize } from './encoder.ts';

export interface EncoderTiming {
  readonly backend: string;
  readonly batch: number;
  readonly size: ImageSize;
  /** Median over the timed runs, per image. */
  readonly msPerImage: number;
  readonly minMsPerImage: number;
  readonly timedRuns: number;
  /** The untimed first run (shader compilation, allocations), per batch. */
  readonly firstRunMs: number;
}

/** Times encoder.run on a fixed image-like batch: one untimed warm-up run, then `timedRuns` runs. */
export async function benchEncoder(
  encoder: Encoder,
  batch: number,
  size: ImageSize,
  timedRuns: number,
): Promise<EncoderTiming> {
  const images = new Float32Array(batch * 3 * size.height * size.width);
  for (let i = 0; i < images.length; i++) images[i] = Math.sin(i * 0.0137) * 1.5;
  let start = performance.now();
  await encoder.run(images, batch, size);
  const firstRunMs = performance.now() - start;
  const perImage: number[] = [];
  for (let r = 0; r < timedRuns; r++) {
    start = performance.now();
    await encoder.run(images, batch, size);
    perImage.push((performance.now() - start) / batch);
  }
  perImage.sort((a, b) => a - b);
  const median = perImage.length === 0 ? Number.NaN : perImage[Math.floor((perImage.length - 1) / 2)]!;
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    backend: encoder.backend,
    batch,
    size,
    msPerImage: round(median),
    minMsPerImage: round(perImage[0] ?? Number.NaN),
    timedRuns,
    firstRunMs: round(firstRunMs),
  };
}
