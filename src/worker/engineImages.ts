/**
 * Turns one dropped file into the model's input, inside the engine worker. Every failure becomes an Error whose
 * message says what is wrong with the file, so the studio can show it on that image and carry on with the others.
 */
import { DEFAULT_MAX_PIXELS, DecodeError, toRgb8 } from '../image/decode.ts';
import { decodeResized, normalizeImagenet } from '../image/preprocess.ts';
import type { AnalyzeInput } from './engineProtocol.ts';

/** Larger files are refused before they are read: no image the decoder accepts (64 Mpx) needs more. */
export const MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024;

export interface PreparedImage {
  readonly input: AnalyzeInput;
  readonly width: number;
  readonly height: number;
  /** 3 x size x size, ImageNet-normalised (NCHW without the batch axis). */
  readonly tensor: Float32Array;
  /** size x size RGB8, the resized image before normalisation. */
  readonly modelInput: Uint8Array;
  readonly decodeMs: number;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

async function readBytes(input: AnalyzeInput): Promise<Uint8Array> {
  const { bytes } = input;
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes.size > MAX_IMAGE_FILE_BYTES) {
    throw new DecodeError(
      `the file is ${megabytes(bytes.size)}, more than the ${megabytes(MAX_IMAGE_FILE_BYTES)} an image may have here`,
    );
  }
  try {
    return new Uint8Array(await bytes.arrayBuffer());
  } catch (error) {
    throw new Error(`the file could not be read (${(error as Error).message}); was it moved or deleted?`);
  }
}

/**
 * Decodes and resizes to size x size in one pass over the rows (a large image is never held at full size where
 * the format allows); images over 64 Mpx are refused from their header, before any pixel buffer exists.
 */
export async function prepareImage(input: AnalyzeInput, size: number): Promise<PreparedImage> {
  const started = performance.now();
  const bytes = await readBytes(input);
  try {
    const { info, image } = await decodeResized(bytes, size, size, { maxPixels: DEFAULT_MAX_PIXELS });
    return {
      input,
      width: info.width,
      height: info.height,
      tensor: normalizeImagenet(image),
      modelInput: toRgb8(image),
      decodeMs: performance.now() - started,
    };
  } catch (error) {
    if (error instanceof DecodeError) {
      // The decoder's advice is for programmers; the studio's user can only make the image smaller.
      const text = error.message.replace(/; raise maxPixels to decode it$/, '; make the image smaller to analyse it');
      throw new DecodeError(text);
    }
    // Anything else (e.g. a RangeError from an allocation) is still this file's problem, not the session's.
    throw new Error(`the image could not be decoded: ${(error as Error).message}`);
  }
}
