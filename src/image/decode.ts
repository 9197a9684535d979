/**
 * Image decoding as the reference pipeline does it: PIL 9.4's `Image.open(f).convert('RGB')`.
 * The format is sniffed from the first bytes (never the file name); PNG, JPEG, WebP and BMP are supported.
 * Pure TypeScript plus libwebp-in-wasm for WebP; runs the same in a browser page, a Web Worker and Node >= 18.
 *
 * Anything that cannot be decoded raises a DecodeError that says what is wrong. Images over `maxPixels` are refused
 * from their header, before any pixel buffer is allocated.
 */

import { decodeBmp, isBmp } from './bmp.ts';
import {
  DEFAULT_MAX_PIXELS,
  DecodeError,
  FullImageSink,
  hex,
  type ImageFormat,
  type ImageInfo,
  type PixelImage,
  type RowSink,
  type SinkFactory,
} from './decode-common.ts';
import { decodeJpeg, isJpeg } from './jpeg.ts';
import { decodePng, isPng } from './png.ts';
import { decodeWebp, isWebp } from './webp.ts';

export {
  DEFAULT_MAX_PIXELS,
  DecodeError,
  type ImageFormat,
  type ImageInfo,
  type PixelImage,
  type RowSink,
  type SinkFactory,
};

export interface DecodeOptions {
  /** Largest width * height accepted; larger images are refused from their header. Default 64 Mi pixels. */
  maxPixels?: number;
}

/** A decoded image with its header facts. */
export interface DecodedImage extends ImageInfo, PixelImage {}

/** Leading bytes of each format's signature (WebP: 'RIFF' + size + 'WEBP'), to tell a cut file from a foreign one. */
const TRUNCATED_SIGNATURES: [string, number[]][] = [
  ['PNG', [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ['JPEG', [0xff, 0xd8, 0xff]],
  ['WebP', [0x52, 0x49, 0x46, 0x46]],
];

export function sniffFormat(bytes: Uint8Array): ImageFormat {
  if (isPng(bytes)) return 'png';
  if (isJpeg(bytes)) return 'jpeg';
  if (isWebp(bytes)) return 'webp';
  if (isBmp(bytes)) return 'bmp';
  if (bytes.length === 0) throw new DecodeError('the file is empty (0 bytes): not a PNG, JPEG, WebP or BMP image');
  const shown = Math.min(bytes.length, 8);
  const prefix = Array.from(bytes.subarray(0, shown));
  for (const [format, signature] of TRUNCATED_SIGNATURES) {
    if (bytes.length < signature.length && prefix.every((b, i) => b === signature[i])) {
      throw new DecodeError(`truncated ${format}: the file is only ${bytes.length} bytes (${hex(bytes, shown)})`);
    }
  }
  const text = String.fromCharCode(...bytes.subarray(0, shown)).replace(/[^\x20-\x7e]/g, '.');
  throw new DecodeError(`file starts with ${hex(bytes, shown)} ("${text}"): not a PNG, JPEG, WebP or BMP image`);
}

const DECODERS: Record<
  ImageFormat,
  (bytes: Uint8Array, maxPixels: number, makeSink: SinkFactory) => Promise<ImageInfo>
> = {
  png: decodePng,
  jpeg: decodeJpeg,
  webp: decodeWebp,
  bmp: decodeBmp,
};

/**
 * Decodes row by row into the sink that `makeSink` returns once the header is known and within budget.
 * Rows may arrive in any order (BMP is bottom-up; interlaced PNG arrives at the end); each arrives once.
 */
export async function decodeImageRows(
  bytes: Uint8Array,
  makeSink: SinkFactory,
  options: DecodeOptions = {},
): Promise<ImageInfo> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  return DECODERS[sniffFormat(bytes)](bytes, maxPixels, makeSink);
}

/** decodeImageRows, handing back the sink that `makeSink` made. */
export async function decodeWithSink<Sink extends RowSink>(
  bytes: Uint8Array,
  makeSink: (info: ImageInfo) => Sink,
  options: DecodeOptions = {},
): Promise<{ info: ImageInfo; sink: Sink }> {
  let sink: Sink | undefined;
  const info = await decodeImageRows(
    bytes,
    (header) => {
      sink = makeSink(header);
      return sink;
    },
    options,
  );
  if (!sink) throw new DecodeError(`${info.format.toUpperCase()} decoder produced no pixels`);
  return { info, sink };
}

/** Decodes the whole image into one buffer. */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<DecodedImage> {
  const { info, sink } = await decodeWithSink(bytes, (header) => new FullImageSink(header), options);
  return { ...info, data: sink.data };
}

/** The image as interleaved RGB8 (gray is replicated), i.e. `np.array(Image.open(f).convert('RGB'))`. */
export function toRgb8(image: PixelImage): Uint8Array {
  if (image.channels === 3) return image.data;
  const rgb = new Uint8Array(image.data.length * 3);
  for (let i = 0; i < image.data.length; i++) {
    const v = image.data[i] as number;
    rgb[3 * i] = v;
    rgb[3 * i + 1] = v;
    rgb[3 * i + 2] = v;
  }
  return rgb;
}
