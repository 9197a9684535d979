/**
 * PNG decoder matching PIL 9.4's PngImagePlugin + convert('RGB'):
 * - gray 1/2/4 bit is scaled to 0..255 (x255, x85, x17); 16-bit gray opens as mode I and convert('RGB') CLIPS it to
 *   0..255 (it does not scale: 1000 -> 255);
 * - 16-bit RGB, RGBA and gray+alpha keep the most significant byte;
 * - alpha and tRNS are dropped, never composited;
 * - a palette index past the end of PLTE reads as gray (i, i, i), PIL's initial palette ramp.
 * Every chunk's CRC is checked (PIL skips the IDAT CRCs). The zlib stream is inflated with the platform's
 * DecompressionStream and unfiltered row by row, so a non-interlaced image never exists in memory as a whole.
 */

import { checkPixelBudget, DecodeError, type ImageInfo, type SinkFactory } from './decode-common.ts';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

let crcTable: Uint32Array | undefined;

function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const table = crcTable;
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = (table[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

/** Samples per pixel and allowed bit depths for each colour type (PNG spec table 11.1). */
const COLOR_TYPES: Record<number, { samples: number; depths: readonly number[]; name: string }> = {
  0: { samples: 1, depths: [1, 2, 4, 8, 16], name: 'gray' },
  2: { samples: 3, depths: [8, 16], name: 'RGB' },
  3: { samples: 1, depths: [1, 2, 4, 8], name: 'palette' },
  4: { samples: 2, depths: [8, 16], name: 'gray+alpha' },
  6: { samples: 4, depths: [8, 16], name: 'RGBA' },
};

/** The mode PIL 9.4 opens each (colour type, depth) as. */
function pilMode(colorType: number, bitDepth: number): string {
  if (colorType === 0) return bitDepth === 1 ? '1' : bitDepth === 16 ? 'I' : 'L';
  if (colorType === 2) return 'RGB';
  if (colorType === 3) return 'P';
  if (colorType === 4) return bitDepth === 16 ? 'RGBA' : 'LA';
  return 'RGBA';
}

interface PngChunks {
  header: PngHeader;
  palette: Uint8Array | undefined;
  idat: Uint8Array[];
}

function chunkType(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + 4));
}

function readChunks(bytes: Uint8Array, maxPixels: number): PngChunks {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: PngHeader | undefined;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let pos = 8;
  let sawEnd = false;
  while (pos < bytes.length) {
    if (pos + 8 > bytes.length) {
      throw new DecodeError(`truncated PNG: the file ends inside a chunk header at byte ${pos}`);
    }
    const length = view.getUint32(pos);
    const type = chunkType(bytes, pos + 4);
    if (!/^[A-Za-z]{4}$/.test(type)) {
      throw new DecodeError(`corrupt PNG: invalid chunk type ${JSON.stringify(type)} at byte ${pos}`);
    }
    const dataStart = pos + 8;
    const dataEnd = dataStart + length;
    if (dataEnd + 4 > bytes.length) {
      throw new DecodeError(
        `truncated PNG: chunk ${type} at byte ${pos} declares ${length} data bytes but the file ends ` +
          `${bytes.length - dataStart} bytes later`,
      );
    }
    const stored = view.getUint32(dataEnd);
    const computed = crc32(bytes, pos + 4, dataEnd);
    if (stored !== computed) {
      throw new DecodeError(
        `corrupt PNG: CRC mismatch in chunk ${type} at byte ${pos} (stored 0x${stored.toString(16)}, ` +
          `computed 0x${computed.toString(16)})`,
      );
    }
    if (!header && type !== 'IHDR') throw new DecodeError(`corrupt PNG: first chunk is ${type}, not IHDR`);
    const data = bytes.subarray(dataStart, dataEnd);
    if (type === 'IHDR') {
      header = parseHeader(data);
      checkPixelBudget('png', header.width, header.height, maxPixels);
    } else if (type === 'PLTE') {
      if (length % 3 !== 0 || length > 768 || length === 0) {
        throw new DecodeError(`corrupt PNG: PLTE chunk has ${length} bytes (needs 3 per entry, 1..256 entries)`);
      }
      palette = data;
    } else if (type === 'IDAT') idat.push(data);
    pos = dataEnd + 4;
    if (type === 'IEND') {
      sawEnd = true;
      break;
    }
  }
  if (!header) throw new DecodeError('corrupt PNG: no IHDR chunk');
  if (idat.length === 0) {
    throw new DecodeError(`${sawEnd ? 'corrupt' : 'truncated'} PNG: no IDAT (image data) chunk`);
  }
  if (header.colorType === 3 && !palette) throw new DecodeError('corrupt PNG: palette image without a PLTE chunk');
  return { header, palette, idat };
}

function parseHeader(data: Uint8Array): PngHeader {
  if (data.length !== 13) throw new DecodeError(`corrupt PNG: IHDR has ${data.length} bytes, not 13`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const width = view.getUint32(0);
  const height = view.getUint32(4);
  const bitDepth = data[8] as number;
  const colorType = data[9] as number;
  const kind = COLOR_TYPES[colorType];
  if (!kind) throw new DecodeError(`corrupt PNG: unknown colour type ${colorType}`);
  if (!kind.depths.includes(bitDepth)) {
    throw new DecodeError(`corrupt PNG: bit depth ${bitDepth} is not allowed for ${kind.name} images`);
  }
  if (data[10] !== 0 || data[11] !== 0) {
    throw new DecodeError(`corrupt PNG: unknown compression (${data[10]}) or filter method (${data[11]})`);
  }
  if (data[12] !== 0 && data[12] !== 1) throw new DecodeError(`corrupt PNG: unknown interlace method ${data[12]}`);
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new DecodeError(`corrupt PNG: invalid size ${width}x${height}`);
  }
  return { width, height, bitDepth, colorType, interlaced: data[12] === 1 };
}

/** Turns one unfiltered scanline of `count` pixels into `channels`-byte pixels, as PIL's convert('RGB'). */
type RowConverter = (raw: Uint8Array, count: number, out: Uint8Array) => void;

function makeConverter(header: PngHeader, palette: Uint8Array | undefined): RowConverter {
  const { bitDepth: depth, colorType } = header;
  if (depth < 8) {
    const mask = (1 << depth) - 1;
    const sample = (raw: Uint8Array, i: number): number => {
      const bit = i * depth;
      return ((raw[bit >> 3] as number) >> (8 - depth - (bit & 7))) & mask;
    };
    if (colorType === 0) {
      const scale = 255 / mask;
      return (raw, count, out) => {
        for (let i = 0; i < count; i++) out[i] = sample(raw, i) * scale;
      };
    }
    const lut = paletteLut(palette);
    return (raw, count, out) => {
      for (let i = 0; i < count; i++) {
        const p = sample(raw, i) * 3;
        out[i * 3] = lut[p] as number;
        out[i * 3 + 1] = lut[p + 1] as number;
        out[i * 3 + 2] = lut[p + 2] as number;
      }
    };
  }
  if (colorType === 3) {
    const lut = paletteLut(palette);
    return (raw, count, out) => {
      for (let i = 0; i < count; i++) {
        const p = (raw[i] as number) * 3;
        out[i * 3] = lut[p] as number;
        out[i * 3 + 1] = lut[p + 1] as number;
        out[i * 3 + 2] = lut[p + 2] as number;
      }
    };
  }
  const bytesPerSample = depth / 8;
  const stride = (COLOR_TYPES[colorType]?.samples ?? 1) * bytesPerSample;
  if (colorType === 0 && depth === 16) {
    // Mode I -> RGB clips to 0..255.
    return (raw, count, out) => {
      for (let i = 0; i < count; i++) out[i] = raw[i * 2] === 0 ? (raw[i * 2 + 1] as number) : 255;
    };
  }
  const colours = colorType === 0 || colorType === 4 ? 1 : 3;
  // 8-bit: the sample itself; 16-bit: its most significant (first) byte.
  return (raw, count, out) => {
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < colours; c++) out[i * colours + c] = raw[i * stride + c * bytesPerSample] as number;
    }
  };
}

function paletteLut(palette: Uint8Array | undefined): Uint8Array {
  const lut = new Uint8Array(768);
  for (let i = 0; i < 256; i++) lut.fill(i, i * 3, i * 3 + 3);
  if (palette) lut.set(palette);
  return lut;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function unfilter(filter: number, cur: Uint8Array, prev: Uint8Array, bpp: number, rowLabel: string): void {
  const n = cur.length;
  switch (filter) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) cur[i] = (cur[i] as number) + (cur[i - bpp] as number);
      return;
    case 2:
      for (let i = 0; i < n; i++) cur[i] = (cur[i] as number) + (prev[i] as number);
      return;
    case 3:
      for (let i = 0; i < bpp; i++) cur[i] = (cur[i] as number) + ((prev[i] as number) >> 1);
      for (let i = bpp; i < n; i++) {
        cur[i] = (cur[i] as number) + (((cur[i - bpp] as number) + (prev[i] as number)) >> 1);
      }
      return;
    case 4:
      for (let i = 0; i < bpp; i++) cur[i] = (cur[i] as number) + (prev[i] as number);
      for (let i = bpp; i < n; i++) {
        cur[i] = (cur[i] as number) + paeth(cur[i - bpp] as number, prev[i] as number, prev[i - bpp] as number);
      }
      return;
    default:
      throw new DecodeError(`corrupt PNG: ${rowLabel} uses unknown filter type ${filter}`);
  }
}

interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  width: number;
  height: number;
}

function passesOf(header: PngHeader): Pass[] {
  const { width, height } = header;
  const adam7 = header.interlaced
    ? [
        [0, 0, 8, 8],
        [4, 0, 8, 8],
        [0, 4, 4, 8],
        [2, 0, 4, 4],
        [0, 2, 2, 4],
        [1, 0, 2, 2],
        [0, 1, 1, 2],
      ]
    : [[0, 0, 1, 1]];
  return adam7
    .map(([x0 = 0, y0 = 0, dx = 1, dy = 1]) => ({
      x0,
      y0,
      dx,
      dy,
      width: Math.ceil((width - x0) / dx),
      height: Math.ceil((height - y0) / dy),
    }))
    .filter((p) => p.width > 0 && p.height > 0);
}

/**
 * Consumes the inflated byte stream scanline by scanline (filter byte + data), unfilters, converts and emits rows.
 * Interlaced images are assembled in one full-size buffer, since their rows only complete in the last pass.
 */
class ScanlineReader {
  private readonly passes: Pass[];
  private readonly bitsPerPixel: number;
  private readonly bpp: number;
  private readonly convert: RowConverter;
  private readonly channels: number;
  private readonly outRow: Uint8Array;
  private readonly interlacedImage: Uint8Array | undefined;
  private passIndex = 0;
  private rowInPass = 0;
  private filled = -1; // bytes of the current scanline received; -1 = waiting for its filter byte
  private filter = 0;
  private cur: Uint8Array;
  private prev: Uint8Array;
  rowsDone = 0;
  readonly rowsTotal: number;

  constructor(
    private readonly header: PngHeader,
    palette: Uint8Array | undefined,
    info: ImageInfo,
    private readonly sink: ReturnType<SinkFactory>,
  ) {
    this.passes = passesOf(header);
    this.rowsTotal = this.passes.reduce((n, p) => n + p.height, 0);
    this.bitsPerPixel = (COLOR_TYPES[header.colorType]?.samples ?? 1) * header.bitDepth;
    this.bpp = Math.max(1, this.bitsPerPixel >> 3);
    this.convert = makeConverter(header, palette);
    this.channels = info.channels;
    this.outRow = new Uint8Array(header.width * this.channels);
    this.interlacedImage = header.interlaced ? new Uint8Array(header.width * header.height * this.channels) : undefined;
    const firstPass = this.passes[0] as Pass;
    this.cur = new Uint8Array(this.stride(firstPass));
    this.prev = new Uint8Array(this.cur.length);
  }

  get done(): boolean {
    return this.passIndex >= this.passes.length;
  }

  private stride(pass: Pass): number {
    return Math.ceil((pass.width * this.bitsPerPixel) / 8);
  }

  /** Returns true once every row is complete (the rest of the stream is ignored, as PIL does). */
  consume(chunk: Uint8Array): boolean {
    let at = 0;
    while (at < chunk.length && !this.done) {
      if (this.filled < 0) {
        this.filter = chunk[at++] as number;
        this.filled = 0;
        continue;
      }
      const take = Math.min(this.cur.length - this.filled, chunk.length - at);
      this.cur.set(chunk.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === this.cur.length) this.finishScanline();
    }
    return this.done;
  }

  private finishScanline(): void {
    const pass = this.passes[this.passIndex] as Pass;
    const y = pass.y0 + this.rowInPass * pass.dy;
    unfilter(this.filter, this.cur, this.prev, this.bpp, `row ${y}`);
    this.convert(this.cur, pass.width, this.outRow);
    if (this.interlacedImage) {
      const ch = this.channels;
      for (let i = 0; i < pass.width; i++) {
        const dst = (y * this.header.width + pass.x0 + i * pass.dx) * ch;
        for (let c = 0; c < ch; c++) this.interlacedImage[dst + c] = this.outRow[i * ch + c] as number;
      }
    } else {
      this.sink.writeRow(y, this.outRow);
    }
    this.rowsDone++;
    [this.cur, this.prev] = [this.prev, this.cur];
    this.filled = -1;
    this.rowInPass++;
    if (this.rowInPass === pass.height) {
      this.rowInPass = 0;
      this.passIndex++;
      const next = this.passes[this.passIndex];
      if (next) {
        this.cur = new Uint8Array(this.stride(next));
        this.prev = new Uint8Array(this.cur.length);
      } else if (this.interlacedImage) {
        const rowBytes = this.header.width * this.channels;
        for (let row = 0; row < this.header.height; row++) {
          this.sink.writeRow(row, this.interlacedImage.subarray(row * rowBytes, (row + 1) * rowBytes));
        }
      }
    }
  }
}

/** Feeds the zlib stream through DecompressionStream('deflate'); stops reading once `consume` says it is done. */
async function inflate(parts: readonly Uint8Array[], consume: (chunk: Uint8Array) => boolean): Promise<void> {
  const stream = new DecompressionStream('deflate');
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const writing = (async () => {
    // The DOM typings want ArrayBuffer-backed views; file bytes never live in a SharedArrayBuffer.
    for (const part of parts) await writer.write(part as Uint8Array<ArrayBuffer>);
    await writer.close();
  })();
  // A write fails only when the stream has failed or was cancelled; the reader reports that.
  writing.catch(() => undefined);
  for (;;) {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new DecodeError(`corrupt PNG: the compressed image data is invalid (zlib: ${message})`);
    }
    if (result.done) return;
    let finished: boolean;
    try {
      finished = consume(result.value);
    } catch (error) {
      await reader.cancel().catch(() => undefined);
      throw error;
    }
    if (finished) {
      await reader.cancel().catch(() => undefined);
      return;
    }
  }
}

export async function decodePng(bytes: Uint8Array, maxPixels: number, makeSink: SinkFactory): Promise<ImageInfo> {
  if (!isPng(bytes)) throw new DecodeError('not a PNG file (bad signature)');
  const { header, palette, idat } = readChunks(bytes, maxPixels);
  const info: ImageInfo = {
    format: 'png',
    width: header.width,
    height: header.height,
    channels: header.colorType === 0 || header.colorType === 4 ? 1 : 3,
    sourceMode: pilMode(header.colorType, header.bitDepth),
  };
  const scanlines = new ScanlineReader(header, palette, info, makeSink(info));
  await inflate(idat, (chunk) => scanlines.consume(chunk));
  if (!scanlines.done) {
    throw new DecodeError(
      `truncated PNG: the image data ends after ${scanlines.rowsDone} of ${scanlines.rowsTotal} scanlines`,
    );
  }
  return info;
}
