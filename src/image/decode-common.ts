/**
 * Types shared by the format decoders (PNG, JPEG, BMP, WebP) and the resizer.
 *
 * Every decoder produces the pixels PIL 9.4 would give for `Image.open(f).convert('RGB')`, as rows handed to a
 * RowSink in any order, each exactly once. Gray sources (PIL modes 1, L, LA, I) are delivered as one channel: their
 * RGB is (v, v, v), and resizing one channel is bit-identical to resizing three equal ones.
 */

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'bmp';

export class DecodeError extends Error {
  override name = 'DecodeError';
}

export interface ImageInfo {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  /** 1: gray, meaning R = G = B; 3: RGB. */
  readonly channels: 1 | 3;
  /** The mode PIL opens the file as ('L', 'I', 'P', 'RGB', 'RGBA', 'CMYK', ...), before convert('RGB'). */
  readonly sourceMode: string;
}

/** Pixels in one buffer: `channels` bytes per pixel (1: gray, R = G = B; 3: RGB), row-major. */
export interface PixelImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
  readonly data: Uint8Array;
}

/** Receives decoded rows: `row` holds width * channels bytes and is only valid during the call. */
export interface RowSink {
  writeRow(y: number, row: Uint8Array): void;
}

/** Called once the header is read and the pixel budget checked, before any pixel buffer is allocated. */
export type SinkFactory = (info: ImageInfo) => RowSink;

export const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024;

function megapixels(pixels: number): string {
  return `${(pixels / 1e6).toFixed(1)} Mpx`;
}

/** Refuses an image before anything of its size is allocated. */
export function checkPixelBudget(format: ImageFormat, width: number, height: number, maxPixels: number): void {
  if (!(width >= 1 && height >= 1 && Number.isInteger(width) && Number.isInteger(height))) {
    throw new DecodeError(`${format.toUpperCase()} header gives an invalid size ${width}x${height}`);
  }
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw new DecodeError(
      `${format.toUpperCase()} image is ${width}x${height} (${megapixels(pixels)}), over the limit of ` +
        `${megapixels(maxPixels)} (${maxPixels} pixels); raise maxPixels to decode it`,
    );
  }
}

/** A sink that keeps the whole image: the plain decode path. */
export class FullImageSink implements RowSink {
  readonly data: Uint8Array;
  private readonly rowBytes: number;

  constructor(info: ImageInfo) {
    this.rowBytes = info.width * info.channels;
    this.data = new Uint8Array(this.rowBytes * info.height);
  }

  writeRow(y: number, row: Uint8Array): void {
    this.data.set(row.subarray(0, this.rowBytes), y * this.rowBytes);
  }
}

export function hex(bytes: Uint8Array, count: number): string {
  return Array.from(bytes.subarray(0, count), (b) => b.toString(16).padStart(2, '0')).join(' ');
}
