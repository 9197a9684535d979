/**
 * The reference input pipeline (spec MAMBAAD.md §9), bit-exact with PIL 9.4 + torchvision:
 *   image: convert('RGB') -> Image.resize((256, 256), BILINEAR) -> ToTensor (/255) -> Normalize(ImageNet)
 *   mask:  convert('L') -> (> 0) * 255 -> resize bilinear -> ToTensor -> > 0.5
 *
 * PIL's BILINEAR resize is a separable triangle filter whose support widens with the downscale factor
 * (antialiasing). For 8-bit images PIL 9.4 (libImaging/Resample.c) turns the float64 weights into 22-bit
 * fixed point, runs the horizontal pass into an 8-bit temporary image, then the vertical pass, rounding and
 * clipping after each. This file does the same, so the 256x256 bytes equal PIL's.
 *
 * The resizer is a RowSink: decoders feed it rows as they decode them, so a large image is reduced to 256 columns
 * on the fly and never held at full size (one full-size buffer at most, where the decoder itself needs one:
 * interlaced PNG, JPEG component planes, WebP).
 */

import {
  DecodeError,
  type DecodeOptions,
  decodeWithSink,
  type ImageInfo,
  type PixelImage,
  type RowSink,
  toRgb8,
} from './decode.ts';

export type { PixelImage };

export const MODEL_INPUT_SIZE = 256;

/** torchvision Normalize constants (ImageNet), as float32 like the tensors torch builds from them. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406].map(Math.fround);
export const IMAGENET_STD = [0.229, 0.224, 0.225].map(Math.fround);

const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Per output position: first input index and number of taps. */
  readonly bounds: Int32Array;
  /** outSize x taps fixed-point weights. */
  readonly weights: Int32Array;
  readonly taps: number;
}

/** Resample.c precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter over the full box. */
function bilinearCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1.0 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * taps);
  const k = new Float64Array(taps);
  const ss = 1.0 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1.0 ? 1.0 - t : 0.0;
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0.0 ? (k[x] as number) / ww : (k[x] as number);
      weights[xx * taps + x] = Math.trunc(w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, weights, taps };
}

function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : Math.min(v, 255);
}

function resampleRow(input: Uint8Array, channels: number, c: Coefficients, out: Uint8Array, outAt: number): void {
  const outSize = c.bounds.length / 2;
  for (let xx = 0; xx < outSize; xx++) {
    const xmin = c.bounds[xx * 2] as number;
    const count = c.bounds[xx * 2 + 1] as number;
    const k = xx * c.taps;
    for (let ch = 0; ch < channels; ch++) {
      let sum = 1 << (PRECISION_BITS - 1);
      for (let x = 0; x < count; x++)
        sum += (input[(x + xmin) * channels + ch] as number) * (c.weights[k + x] as number);
      out[outAt + xx * channels + ch] = clip8(sum);
    }
  }
}

type ImageShape = Pick<ImageInfo, 'width' | 'height' | 'channels'>;

/**
 * Streams rows into PIL's two-pass resize: each incoming row goes through the horizontal pass at once, into a
 * temporary image (output width x rows the vertical pass reads); `finish()` runs the vertical pass.
 */
export class ResizeSink implements RowSink {
  private readonly info: ImageShape;
  private readonly horizontal: Coefficients | undefined;
  private readonly vertical: Coefficients;
  private readonly firstRow: number;
  private readonly rowCount: number;
  private readonly tempWidth: number;
  private readonly temp: Uint8Array;
  private readonly seen: Uint8Array;
  private rowsSeen = 0;

  constructor(
    info: ImageShape,
    outWidth: number,
    private readonly outHeight: number,
    /** Applied to each incoming row first (e.g. mask binarisation); returns the row to resize. */
    private readonly mapRow?: (row: Uint8Array) => Uint8Array,
  ) {
    this.info = info;
    this.horizontal = info.width !== outWidth ? bilinearCoefficients(info.width, outWidth) : undefined;
    this.vertical = bilinearCoefficients(info.height, outHeight);
    const vb = this.vertical.bounds;
    this.firstRow = vb[0] as number;
    this.rowCount = (vb[outHeight * 2 - 2] as number) + (vb[outHeight * 2 - 1] as number) - this.firstRow;
    this.tempWidth = this.horizontal ? outWidth : info.width;
    this.temp = new Uint8Array(this.tempWidth * this.rowCount * info.channels);
    this.seen = new Uint8Array(info.height);
  }

  writeRow(y: number, row: Uint8Array): void {
    if (this.seen[y]) throw new DecodeError(`decoder delivered row ${y} twice`);
    this.seen[y] = 1;
    this.rowsSeen++;
    const r = y - this.firstRow;
    if (r < 0 || r >= this.rowCount) return;
    const input = this.mapRow ? this.mapRow(row) : row;
    const ch = this.info.channels;
    const at = r * this.tempWidth * ch;
    if (this.horizontal) resampleRow(input, ch, this.horizontal, this.temp, at);
    else this.temp.set(input.subarray(0, this.tempWidth * ch), at);
  }

  finish(): PixelImage {
    if (this.rowsSeen !== this.info.height) {
      throw new DecodeError(`decoder delivered ${this.rowsSeen} of ${this.info.height} rows`);
    }
    const ch = this.info.channels;
    if (this.info.height === this.outHeight) {
      return { width: this.tempWidth, height: this.outHeight, channels: ch, data: this.temp };
    }
    const rowBytes = this.tempWidth * ch;
    const out = new Uint8Array(this.outHeight * rowBytes);
    const { bounds, weights, taps } = this.vertical;
    for (let yy = 0; yy < this.outHeight; yy++) {
      const ymin = (bounds[yy * 2] as number) - this.firstRow;
      const count = bounds[yy * 2 + 1] as number;
      const k = yy * taps;
      for (let i = 0; i < rowBytes; i++) {
        let sum = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < count; y++)
          sum += (this.temp[(y + ymin) * rowBytes + i] as number) * (weights[k + y] as number);
        out[yy * rowBytes + i] = clip8(sum);
      }
    }
    return { width: this.tempWidth, height: this.outHeight, channels: ch, data: out };
  }
}

/** PIL `Image.resize((outWidth, outHeight), Image.BILINEAR)` of an 8-bit L or RGB image. */
export function resizeBilinear(image: PixelImage, outWidth: number, outHeight: number): PixelImage {
  const sink = new ResizeSink(image, outWidth, outHeight);
  const rowBytes = image.width * image.channels;
  for (let y = 0; y < image.height; y++) sink.writeRow(y, image.data.subarray(y * rowBytes, (y + 1) * rowBytes));
  return sink.finish();
}

/** Decodes and resizes in one pass over the rows (never holding the full-size image where the format allows). */
export async function decodeResized(
  bytes: Uint8Array,
  outWidth = MODEL_INPUT_SIZE,
  outHeight = MODEL_INPUT_SIZE,
  options: DecodeOptions = {},
): Promise<{ info: ImageInfo; image: PixelImage }> {
  const { info, sink } = await decodeWithSink(bytes, (header) => new ResizeSink(header, outWidth, outHeight), options);
  return { info, image: sink.finish() };
}

/** ToTensor + Normalize: float32 CHW (3 x H x W), computed in float32 steps as torch does. */
export function normalizeImagenet(image: PixelImage): Float32Array {
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = IMAGENET_MEAN[c] as number;
    const std = IMAGENET_STD[c] as number;
    // Only 256 distinct values per channel: compute each once.
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
    const src = image.channels === 3 ? c : 0;
    for (let i = 0; i < plane; i++) out[c * plane + i] = lut[image.data[i * image.channels + src] as number] as number;
  }
  return out;
}

export interface PreprocessedImage {
  /** The source image's header facts (format, size, PIL mode). */
  readonly info: ImageInfo;
  /** 256x256 interleaved RGB8, after the resize and before normalisation. */
  readonly rgb: Uint8Array;
  /** 1 x 3 x 256 x 256 float32, ImageNet-normalised, NCHW. */
  readonly tensor: Float32Array;
}

/** The full image pipeline for one file's bytes. */
export async function preprocessImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<PreprocessedImage> {
  const { info, image } = await decodeResized(bytes, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, options);
  return { info, rgb: toRgb8(image), tensor: normalizeImagenet(image) };
}

/** PIL convert('L') of RGB: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16; ADer then maps L > 0 to 255. */
function binarizeRow(channels: 1 | 3, width: number): (row: Uint8Array) => Uint8Array {
  const out = new Uint8Array(width);
  return (row) => {
    for (let x = 0; x < width; x++) {
      const l =
        channels === 1
          ? (row[x] as number)
          : ((row[3 * x] as number) * 19595 +
              (row[3 * x + 1] as number) * 38470 +
              (row[3 * x + 2] as number) * 7471 +
              0x8000) >>
            16;
      out[x] = l > 0 ? 255 : 0;
    }
    return out;
  };
}

export interface PreprocessedMask {
  readonly info: ImageInfo;
  /** 256x256 of 0/1: the resized binary mask thresholded at > 0.5 (i.e. >= 128 of 255). */
  readonly mask: Uint8Array;
}

/** The ground-truth mask pipeline for one file's bytes. */
export async function preprocessMask(bytes: Uint8Array, options: DecodeOptions = {}): Promise<PreprocessedMask> {
  const { info, sink } = await decodeWithSink(
    bytes,
    (header) =>
      new ResizeSink(
        { ...header, channels: 1 },
        MODEL_INPUT_SIZE,
        MODEL_INPUT_SIZE,
        binarizeRow(header.channels, header.width),
      ),
    options,
  );
  const resized = sink.finish();
  const mask = new Uint8Array(resized.data.length);
  // ToTensor gives v / 255 in float32; v / 255 > 0.5 exactly when v >= 128.
  for (let i = 0; i < mask.length; i++) mask[i] = (resized.data[i] as number) >= 128 ? 1 : 0;
  return { info, mask };
}
