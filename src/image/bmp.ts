/**
 * BMP decoder following PIL 9.4's BmpImagePlugin: OS/2 (12-byte) and Windows (40/64/108/124-byte) headers;
 * 1/4/8-bit palette (a palette index past the palette's end reads as gray (i, i, i), PIL's initial palette ramp),
 * RLE8 and RLE4 (decoded as PIL's BmpRleDecoder does, including its 16-bit alignment on the absolute file offset
 * and its misreading of delta escapes),
 * 16-bit 5-5-5 and 5-6-5, 24-bit, and 32-bit with the bit-field layouts PIL accepts. The fourth byte of a 32-bit
 * pixel is never composited.
 */

import { checkPixelBudget, DecodeError, type ImageInfo, type SinkFactory } from './decode-common.ts';

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

const RAW = 0;
const RLE8 = 1;
const RLE4 = 2;
const BITFIELDS = 3;

interface BmpLayout {
  width: number;
  height: number;
  topDown: boolean;
  bits: number;
  compression: number;
  dataOffset: number;
  palette: Uint8Array | undefined; // 256 RGB entries
  /** PIL's mode: a palette that is exactly black/white or the gray ramp makes it '1' or 'L' (same pixels). */
  mode: 'P' | 'L' | '1' | 'RGB' | 'RGBA';
  /** Byte offsets of R, G, B within a 24/32-bit pixel. */
  rgbOffsets: [number, number, number];
  /** 16-bit pixels: 5-6-5 instead of 5-5-5. */
  is565: boolean;
}

function truncated(what: string): DecodeError {
  return new DecodeError(`truncated BMP: the file ends inside ${what}`);
}

/** PIL's supported 32-bit (r, g, b, a) masks: byte offsets of R, G, B, and whether PIL opens it as RGBA. */
const MASKS_32: Record<string, { offsets: [number, number, number]; alpha: boolean }> = {
  'ff0000,ff00,ff,0': { offsets: [2, 1, 0], alpha: false },
  'ff000000,ff0000,ff00,0': { offsets: [3, 2, 1], alpha: false },
  'ff000000,ff0000,ff00,ff': { offsets: [3, 2, 1], alpha: true },
  'ff,ff00,ff0000,ff000000': { offsets: [0, 1, 2], alpha: true },
  'ff0000,ff00,ff,ff000000': { offsets: [2, 1, 0], alpha: true },
  '0,0,0,0': { offsets: [2, 1, 0], alpha: true },
};

function readLayout(bytes: Uint8Array, maxPixels: number): BmpLayout {
  if (bytes.length < 18) throw truncated('the file header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let dataOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  if (![12, 40, 64, 108, 124].includes(headerSize)) {
    throw new DecodeError(`unsupported BMP: header type of ${headerSize} bytes`);
  }
  if (bytes.length < 14 + headerSize) throw truncated('the bitmap header');
  let width: number;
  let height: number;
  let bits: number;
  let compression = RAW;
  let colors = 0;
  let topDown = false;
  let paletteEntryBytes = 4;
  let masks: number[] | undefined;
  let pos = 14 + headerSize;
  if (headerSize === 12) {
    width = view.getUint16(18, true);
    height = view.getUint16(20, true);
    bits = view.getUint16(24, true);
    paletteEntryBytes = 3;
  } else {
    width = view.getUint32(18, true);
    topDown = bytes[25] === 0xff;
    height = topDown ? 2 ** 32 - view.getUint32(22, true) : view.getUint32(22, true);
    bits = view.getUint16(28, true);
    compression = view.getUint32(30, true);
    colors = view.getUint32(46, true);
    if (compression === BITFIELDS) {
      if (headerSize >= 56) {
        masks = [0, 1, 2, 3].map((i) => view.getUint32(54 + 4 * i, true));
      } else {
        if (bytes.length < pos + 12) throw truncated('the bit-field masks');
        masks = [0, 1, 2].map((i) => view.getUint32(pos + 4 * i, true));
        masks.push(0);
        pos += 12;
      }
    }
  }
  checkPixelBudget('bmp', width, height, maxPixels);
  if (colors === 0) colors = 2 ** bits;
  if (dataOffset === 14 + headerSize && bits <= 8) dataOffset += 4 * colors;
  if (![1, 4, 8, 16, 24, 32].includes(bits)) throw new DecodeError(`unsupported BMP: pixel depth of ${bits} bits`);

  let rgbOffsets: [number, number, number] = [2, 1, 0];
  let is565 = false;
  let mode: BmpLayout['mode'] = 'RGB';
  if (compression === BITFIELDS) {
    const [r = 0, g = 0, b = 0, a = 0] = masks ?? [];
    const key = [r, g, b, a].map((m) => m.toString(16)).join(',');
    const rgbKey = [r, g, b].map((m) => m.toString(16)).join(',');
    const layout32 = MASKS_32[key];
    if (bits === 32 && layout32) {
      rgbOffsets = layout32.offsets;
      if (layout32.alpha) mode = 'RGBA';
    } else if (bits === 24 && rgbKey === 'ff0000,ff00,ff') rgbOffsets = [2, 1, 0];
    else if (bits === 16 && (rgbKey === 'f800,7e0,1f' || rgbKey === '7c00,3e0,1f')) is565 = rgbKey === 'f800,7e0,1f';
    else throw new DecodeError(`unsupported BMP: bit-field layout ${key} at ${bits} bits`);
  } else if (compression !== RAW && compression !== RLE8 && compression !== RLE4) {
    throw new DecodeError(`unsupported BMP: compression type ${compression}`);
  }

  let palette: Uint8Array | undefined;
  if (bits <= 8) {
    if (!(colors > 0 && colors <= 65536)) throw new DecodeError(`unsupported BMP: palette size ${colors}`);
    palette = new Uint8Array(768);
    for (let i = 0; i < 256; i++) palette.fill(i, i * 3, i * 3 + 3);
    const entries = Math.min(colors, 256);
    for (let i = 0; i < entries; i++) {
      const at = pos + i * paletteEntryBytes;
      if (at + 3 > bytes.length) throw truncated('the palette');
      palette[i * 3] = bytes[at + 2] as number;
      palette[i * 3 + 1] = bytes[at + 1] as number;
      palette[i * 3 + 2] = bytes[at] as number;
    }
    const grays = colors === 2 ? [0, 255] : Array.from({ length: entries }, (_, i) => i);
    const isGray = grays.every((v, i) => palette?.subarray(i * 3, i * 3 + 3).every((c) => c === v));
    mode = isGray ? (colors === 2 ? '1' : 'L') : 'P';
  }
  if (dataOffset === 0) dataOffset = pos + (bits <= 8 ? colors * paletteEntryBytes : 0);
  return { width, height, topDown, bits, compression, dataOffset, palette, mode, rgbOffsets, is565 };
}

/** PIL's BmpRleDecoder: palette indices, rows in file order (bottom-up unless the height is negative). */
function decodeRle(bytes: Uint8Array, layout: BmpLayout, rle4: boolean): Uint8Array {
  const { width } = layout;
  const total = width * layout.height;
  const out = new Uint8Array(total);
  let n = 0;
  let x = 0;
  let pos = layout.dataOffset;
  const push = (value: number): void => {
    if (n < total) out[n] = value;
    n++;
  };
  while (n < total) {
    if (pos + 2 > bytes.length) break;
    const count = bytes[pos] as number;
    const byte = bytes[pos + 1] as number;
    pos += 2;
    if (count) {
      const run = x + count > width ? Math.max(0, width - x) : count;
      for (let i = 0; i < run; i++) push(rle4 ? (i % 2 === 0 ? byte >> 4 : byte & 15) : byte);
      x += run;
    } else if (byte === 0) {
      while (n % width !== 0) push(0);
      x = 0;
    } else if (byte === 1) {
      break;
    } else if (byte === 2) {
      // PIL 9.4 reads the two delta bytes, then takes (right, up) from the two bytes AFTER them: reproduced, so
      // that RLE deltas decode as in the reference pipeline.
      if (pos + 4 > bytes.length) throw new DecodeError('truncated BMP: the file ends inside an RLE delta');
      const skip = (bytes[pos + 2] as number) + (bytes[pos + 3] as number) * width;
      pos += 4;
      for (let i = 0; i < skip; i++) push(0);
      x = n % width;
    } else {
      const byteCount = rle4 ? byte >> 1 : byte;
      const available = Math.min(byteCount, bytes.length - pos);
      for (let i = 0; i < available; i++) {
        const b = bytes[pos + i] as number;
        if (rle4) {
          push(b >> 4);
          push(b & 15);
        } else push(b);
      }
      pos += available;
      if (available < byteCount) break;
      x += byte;
      if (pos % 2 !== 0) pos++; // PIL aligns the absolute file offset
    }
  }
  if (n < total) throw new DecodeError(`truncated BMP: the RLE data gives ${n} of ${total} pixels`);
  return out;
}

export async function decodeBmp(bytes: Uint8Array, maxPixels: number, makeSink: SinkFactory): Promise<ImageInfo> {
  if (!isBmp(bytes)) throw new DecodeError('not a BMP file (no "BM" signature)');
  const layout = readLayout(bytes, maxPixels);
  const { width, height, bits, palette, topDown } = layout;
  const info: ImageInfo = {
    format: 'bmp',
    width,
    height,
    channels: 3,
    sourceMode: layout.mode,
  };
  const rle = layout.compression === RLE8 || layout.compression === RLE4;
  const indices = rle ? decodeRle(bytes, layout, layout.compression === RLE4) : undefined;
  const stride = rle ? width : ((width * bits + 31) >> 3) & ~3;
  if (!rle && layout.dataOffset + stride * height > bytes.length) {
    throw new DecodeError(
      `truncated BMP: pixel data needs ${stride * height} bytes from byte ${layout.dataOffset}, the file has ` +
        `${Math.max(0, bytes.length - layout.dataOffset)}`,
    );
  }
  const source = indices ?? bytes;
  const base = indices ? 0 : layout.dataOffset;
  const sink = makeSink(info);
  const out = new Uint8Array(width * 3);
  const lut = palette ?? new Uint8Array(0);
  const [ro, go, bo] = layout.rgbOffsets;
  for (let fileRow = 0; fileRow < height; fileRow++) {
    const at = base + fileRow * stride;
    if (rle || bits === 8) {
      for (let x = 0; x < width; x++) {
        const p = (source[at + x] as number) * 3;
        out.set(lut.subarray(p, p + 3), x * 3);
      }
    } else if (bits < 8) {
      const mask = (1 << bits) - 1;
      for (let x = 0; x < width; x++) {
        const bit = x * bits;
        const p = (((source[at + (bit >> 3)] as number) >> (8 - bits - (bit & 7))) & mask) * 3;
        out.set(lut.subarray(p, p + 3), x * 3);
      }
    } else if (bits === 16) {
      for (let x = 0; x < width; x++) {
        const pixel = (source[at + 2 * x] as number) | ((source[at + 2 * x + 1] as number) << 8);
        if (layout.is565) {
          out[x * 3] = Math.floor((((pixel >> 11) & 31) * 255) / 31);
          out[x * 3 + 1] = Math.floor((((pixel >> 5) & 63) * 255) / 63);
        } else {
          out[x * 3] = Math.floor((((pixel >> 10) & 31) * 255) / 31);
          out[x * 3 + 1] = Math.floor((((pixel >> 5) & 31) * 255) / 31);
        }
        out[x * 3 + 2] = Math.floor(((pixel & 31) * 255) / 31);
      }
    } else {
      const bytesPerPixel = bits >> 3;
      for (let x = 0; x < width; x++) {
        const p = at + x * bytesPerPixel;
        out[x * 3] = source[p + ro] as number;
        out[x * 3 + 1] = source[p + go] as number;
        out[x * 3 + 2] = source[p + bo] as number;
      }
    }
    sink.writeRow(topDown ? fileRow : height - 1 - fileRow, out);
  }
  return info;
}
