/**
 * JPEG decoder that reproduces what PIL 9.4 gets from libjpeg-turbo 2.1 (Debian 12) with its defaults:
 * the ISLOW integer IDCT (jidctint.c), "fancy" triangle upsampling of subsampled chroma (jdsample.c, with the
 * context rows of jdmainct.c duplicated at the top and bottom edges), and the table-driven YCbCr -> RGB of
 * jdcolor.c. All of it is integer arithmetic, so the output is bit-exact on well-formed files.
 *
 * Colour space follows libjpeg's default_decompress_parms: 1 component is gray; 3 are YCbCr unless an Adobe
 * marker says transform 0 (or the component ids are 'R','G','B' without JFIF); 4 are CMYK, or YCCK when the Adobe
 * transform is 2. PIL reads CMYK as Adobe-inverted ("CMYK;I") and its convert('RGB') computes
 * nk - nk * c / 255 per channel (nk = 255 - k).
 *
 * Baseline, extended (8-bit) and progressive Huffman files are supported. Arithmetic coding, lossless and 12-bit
 * JPEGs are refused (PIL refuses 12-bit too). Where libjpeg only warns (corrupt entropy data, data ending early)
 * this decoder throws a DecodeError.
 */

import { checkPixelBudget, DecodeError, type ImageInfo, type SinkFactory } from './decode-common.ts';

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

// biome-ignore format: the zigzag table reads best as 8x8
const ZIGZAG = new Uint8Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
  12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
  58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

/** libjpeg's jpeg_natural_order has 16 extra entries of 63 so that a corrupt run length cannot index past a block. */
function natural(k: number): number {
  return ZIGZAG[Math.min(k, 63)] as number;
}

interface HuffmanTable {
  /** 9-bit lookahead: (code length << 8) | value, or 0 when the code is longer than 9 bits. */
  lookup: Uint16Array;
  maxCode: Int32Array; // index 1..17
  valOffset: Int32Array;
  values: Uint8Array;
}

const LOOKAHEAD = 9;

function buildHuffmanTable(counts: Uint8Array, values: Uint8Array): HuffmanTable {
  const maxCode = new Int32Array(18).fill(-1);
  const valOffset = new Int32Array(18);
  const lookup = new Uint16Array(1 << LOOKAHEAD);
  let code = 0;
  let p = 0;
  for (let length = 1; length <= 16; length++) {
    const n = counts[length - 1] as number;
    if (n > 0) {
      valOffset[length] = p - code;
      for (let i = 0; i < n; i++, p++, code++) {
        if (length <= LOOKAHEAD) {
          const shift = LOOKAHEAD - length;
          const entry = (length << 8) | (values[p] as number);
          lookup.fill(entry, code << shift, (code + 1) << shift);
        }
      }
      maxCode[length] = code - 1;
    }
    if (code > 1 << length) throw new DecodeError('corrupt JPEG: invalid Huffman table (too many codes)');
    code <<= 1;
  }
  maxCode[17] = 0x7fffffff;
  return { lookup, maxCode, valOffset, values };
}

interface Component {
  id: number;
  h: number;
  v: number;
  quantIndex: number;
  /** Blocks that hold image data (jdinput.c width_in_blocks / height_in_blocks). */
  widthInBlocks: number;
  heightInBlocks: number;
  /** Allocated blocks: whole MCUs. */
  blocksPerLine: number;
  blocksPerColumn: number;
  /** Samples that hold image data (downsampled_width / downsampled_height). */
  sampledWidth: number;
  sampledHeight: number;
  coefficients: Int16Array | undefined; // progressive only
  plane: Uint8Array;
  dcPrediction: number;
  dcTable: HuffmanTable | undefined;
  acTable: HuffmanTable | undefined;
}

interface Frame {
  progressive: boolean;
  width: number;
  height: number;
  components: Component[];
  maxH: number;
  maxV: number;
  mcusPerLine: number;
  mcusPerColumn: number;
}

/** Reads entropy-coded bits; past a marker or the end of the file it supplies zeros and remembers how many. */
class BitReader {
  private buffer = 0;
  private count = 0;
  private fakeBits = 0;

  constructor(
    private readonly data: Uint8Array,
    public pos: number,
  ) {}

  private fill(): void {
    while (this.count <= 24) {
      let byte = 0;
      const b = this.data[this.pos];
      if (b === undefined) {
        this.fakeBits += 8;
      } else if (b === 0xff) {
        const next = this.data[this.pos + 1];
        if (next === 0) {
          byte = 0xff;
          this.pos += 2;
        } else if (next === 0xff) {
          this.pos += 1; // fill byte before a marker
          continue;
        } else {
          this.fakeBits += 8; // a marker: the segment has ended
        }
      } else {
        byte = b;
        this.pos++;
      }
      this.buffer = ((this.buffer << 8) | byte) >>> 0;
      this.count += 8;
    }
  }

  private checkReal(): void {
    if (this.count < this.fakeBits) {
      throw new DecodeError(
        this.pos >= this.data.length
          ? 'truncated JPEG: the file ends inside the compressed image data'
          : `corrupt JPEG: compressed data ends early (marker at byte ${this.pos} inside an MCU)`,
      );
    }
  }

  bits(n: number): number {
    if (n === 0) return 0;
    if (this.count < n) this.fill();
    this.count -= n;
    this.checkReal();
    return (this.buffer >>> this.count) & ((1 << n) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  decode(table: HuffmanTable): number {
    if (this.count < 16) this.fill();
    const peek = (this.buffer >>> (this.count - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1);
    const entry = table.lookup[peek] as number;
    if (entry !== 0) {
      this.count -= entry >> 8;
      this.checkReal();
      return entry & 0xff;
    }
    let length = LOOKAHEAD + 1;
    let code = (this.buffer >>> (this.count - length)) & ((1 << length) - 1);
    while (length <= 16 && code > (table.maxCode[length] as number)) {
      length++;
      code = (this.buffer >>> (this.count - length)) & ((1 << length) - 1);
    }
    if (length > 16) throw new DecodeError('corrupt JPEG: invalid Huffman code in the compressed data');
    this.count -= length;
    this.checkReal();
    return table.values[code + (table.valOffset[length] as number)] ?? 0;
  }

  /** Value of an s-bit magnitude category (HUFF_EXTEND). */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const r = this.bits(s);
    return r < 1 << (s - 1) ? r - (1 << s) + 1 : r;
  }

  /** Drops buffered bits and moves past any bytes up to the next marker (libjpeg's next_marker skips them too). */
  alignToMarker(): void {
    this.buffer = 0;
    this.count = 0;
    this.fakeBits = 0;
    while (this.pos < this.data.length) {
      if (this.data[this.pos] === 0xff) {
        const next = this.data[this.pos + 1];
        if (next !== undefined && next !== 0 && next !== 0xff) return;
      }
      this.pos++;
    }
  }
}

// --- ISLOW inverse DCT (jidctint.c, CONST_BITS 13, PASS1_BITS 2) ---

const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;

/** IDCT_range_limit: the 10-bit wrapped IDCT output, offset by 128 and clamped to 0..255. */
const RANGE_LIMIT = (() => {
  const table = new Uint8Array(1024);
  for (let i = 0; i < 1024; i++) {
    const v = (i ^ 512) - 512 + 128;
    table[i] = v < 0 ? 0 : Math.min(v, 255);
  }
  return table;
})();

function idctIslow(
  coef: Int16Array,
  at: number,
  quant: Int32Array,
  out: Uint8Array,
  outAt: number,
  stride: number,
  ws: Int32Array,
): void {
  for (let col = 0; col < 8; col++) {
    const c = at + col;
    if (
      coef[c + 8] === 0 &&
      coef[c + 16] === 0 &&
      coef[c + 24] === 0 &&
      coef[c + 32] === 0 &&
      coef[c + 40] === 0 &&
      coef[c + 48] === 0 &&
      coef[c + 56] === 0
    ) {
      const dc = ((coef[c] as number) * (quant[col] as number)) << 2;
      for (let r = 0; r < 64; r += 8) ws[col + r] = dc;
      continue;
    }
    let z2 = (coef[c + 16] as number) * (quant[col + 16] as number);
    let z3 = (coef[c + 48] as number) * (quant[col + 48] as number);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = (coef[c] as number) * (quant[col] as number);
    z3 = (coef[c + 32] as number) * (quant[col + 32] as number);
    let tmp0 = (z2 + z3) * 8192;
    let tmp1 = (z2 - z3) * 8192;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp3 = (coef[c + 8] as number) * (quant[col + 8] as number);
    tmp2 = (coef[c + 24] as number) * (quant[col + 24] as number);
    tmp1 = (coef[c + 40] as number) * (quant[col + 40] as number);
    tmp0 = (coef[c + 56] as number) * (quant[col + 56] as number);
    let z4 = tmp1 + tmp3;
    z3 = tmp0 + tmp2;
    z2 = tmp1 + tmp2;
    z1 = tmp0 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp3 *= FIX_1_501321110;
    tmp2 *= FIX_3_072711026;
    tmp1 *= FIX_2_053119869;
    tmp0 *= FIX_0_298631336;
    z4 = z4 * -FIX_0_390180644 + z5;
    z3 = z3 * -FIX_1_961570560 + z5;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    tmp3 += z1 + z4;
    tmp2 += z2 + z3;
    tmp1 += z2 + z4;
    tmp0 += z1 + z3;
    ws[col] = (tmp10 + tmp3 + 1024) >> 11;
    ws[col + 56] = (tmp10 - tmp3 + 1024) >> 11;
    ws[col + 8] = (tmp11 + tmp2 + 1024) >> 11;
    ws[col + 48] = (tmp11 - tmp2 + 1024) >> 11;
    ws[col + 16] = (tmp12 + tmp1 + 1024) >> 11;
    ws[col + 40] = (tmp12 - tmp1 + 1024) >> 11;
    ws[col + 24] = (tmp13 + tmp0 + 1024) >> 11;
    ws[col + 32] = (tmp13 - tmp0 + 1024) >> 11;
  }
  for (let row = 0; row < 8; row++) {
    const w = row * 8;
    const o = outAt + row * stride;
    const w0 = ws[w] as number;
    if (
      ws[w + 1] === 0 &&
      ws[w + 2] === 0 &&
      ws[w + 3] === 0 &&
      ws[w + 4] === 0 &&
      ws[w + 5] === 0 &&
      ws[w + 6] === 0 &&
      ws[w + 7] === 0
    ) {
      out.fill(RANGE_LIMIT[((w0 + 16) >> 5) & 1023] as number, o, o + 8);
      continue;
    }
    let z2 = ws[w + 2] as number;
    let z3 = ws[w + 6] as number;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (w0 + (ws[w + 4] as number)) * 8192;
    let tmp1 = (w0 - (ws[w + 4] as number)) * 8192;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7] as number;
    tmp1 = ws[w + 5] as number;
    tmp2 = ws[w + 3] as number;
    tmp3 = ws[w + 1] as number;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    out[o] = RANGE_LIMIT[((tmp10 + tmp3 + 131072) >> 18) & 1023] as number;
    out[o + 7] = RANGE_LIMIT[((tmp10 - tmp3 + 131072) >> 18) & 1023] as number;
    out[o + 1] = RANGE_LIMIT[((tmp11 + tmp2 + 131072) >> 18) & 1023] as number;
    out[o + 6] = RANGE_LIMIT[((tmp11 - tmp2 + 131072) >> 18) & 1023] as number;
    out[o + 2] = RANGE_LIMIT[((tmp12 + tmp1 + 131072) >> 18) & 1023] as number;
    out[o + 5] = RANGE_LIMIT[((tmp12 - tmp1 + 131072) >> 18) & 1023] as number;
    out[o + 3] = RANGE_LIMIT[((tmp13 + tmp0 + 131072) >> 18) & 1023] as number;
    out[o + 4] = RANGE_LIMIT[((tmp13 - tmp0 + 131072) >> 18) & 1023] as number;
  }
}

// --- Marker parsing and entropy decoding ---

const SOF_NAMES: Record<number, string> = {
  195: 'lossless (SOF3)',
  197: 'differential sequential (SOF5)',
  198: 'differential progressive (SOF6)',
  199: 'differential lossless (SOF7)',
  201: 'arithmetic-coded sequential (SOF9)',
  202: 'arithmetic-coded progressive (SOF10)',
  203: 'arithmetic-coded lossless (SOF11)',
  205: 'arithmetic-coded differential sequential (SOF13)',
  206: 'arithmetic-coded differential progressive (SOF14)',
  207: 'arithmetic-coded differential lossless (SOF15)',
};

interface Scan {
  components: Component[];
  spectralStart: number;
  spectralEnd: number;
  approxHigh: number;
  approxLow: number;
}

class JpegDecoder {
  private readonly view: DataView;
  private readonly quant: (Int32Array | undefined)[] = [];
  private readonly dcTables: (HuffmanTable | undefined)[] = [];
  private readonly acTables: (HuffmanTable | undefined)[] = [];
  private frame: Frame | undefined;
  private restartInterval = 0;
  private sawJfif = false;
  private adobeTransform: number | undefined;
  private eobRun = 0;
  private readonly block = new Int16Array(64);
  private readonly workspace = new Int32Array(64);

  constructor(
    private readonly data: Uint8Array,
    private readonly maxPixels: number,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private segmentLength(pos: number, marker: number): number {
    if (pos + 4 > this.data.length) {
      throw new DecodeError(`truncated JPEG: the file ends inside marker 0x${marker.toString(16)} at byte ${pos}`);
    }
    const length = this.view.getUint16(pos + 2);
    if (length < 2 || pos + 2 + length > this.data.length) {
      throw new DecodeError(
        `truncated JPEG: marker 0x${marker.toString(16)} at byte ${pos} declares ${length} bytes past the end`,
      );
    }
    return length;
  }

  decode(): { frame: Frame; colorSpace: 'gray' | 'ycbcr' | 'rgb' | 'cmyk' | 'ycck' } {
    const data = this.data;
    let pos = 2;
    let sawScan = false;
    for (;;) {
      // Skip anything that is not a marker (libjpeg tolerates it with a warning), and fill bytes.
      while (pos < data.length && data[pos] !== 0xff) pos++;
      while (pos + 1 < data.length && data[pos + 1] === 0xff) pos++;
      if (pos + 1 >= data.length) {
        throw new DecodeError(
          sawScan
            ? 'truncated JPEG: the file ends before the end-of-image marker'
            : 'truncated JPEG: the file ends before any image data',
        );
      }
      const marker = 0xff00 | (data[pos + 1] as number);
      if (marker === 0xffd9) break; // EOI
      if (marker === 0xffd8 || (marker >= 0xffd0 && marker <= 0xffd7) || marker === 0xff01) {
        pos += 2;
        continue;
      }
      const length = this.segmentLength(pos, marker);
      const segment = data.subarray(pos + 4, pos + 2 + length);
      const code = marker & 0xff;
      if (code === 0xc0 || code === 0xc1 || code === 0xc2) {
        this.readFrame(segment, code === 0xc2);
      } else if (SOF_NAMES[code]) {
        throw new DecodeError(`unsupported JPEG: ${SOF_NAMES[code]} JPEG is not supported`);
      } else if (code === 0xc4) this.readHuffmanTables(segment);
      else if (code === 0xdb) this.readQuantTables(segment);
      else if (code === 0xdd) {
        if (segment.length < 2) throw new DecodeError('corrupt JPEG: short DRI segment');
        this.restartInterval = ((segment[0] as number) << 8) | (segment[1] as number);
      } else if (code === 0xe0) {
        // jdmarker.c examine_app0 / examine_app14 need 14 and 12 bytes of data.
        if (segment.length >= 14 && String.fromCharCode(...segment.subarray(0, 5)) === 'JFIF\0') this.sawJfif = true;
      } else if (code === 0xee) {
        if (segment.length >= 12 && String.fromCharCode(...segment.subarray(0, 5)) === 'Adobe') {
          this.adobeTransform = segment[11];
        }
      } else if (code === 0xdc) {
        throw new DecodeError('unsupported JPEG: DNL marker (height defined after the scan)');
      } else if (code === 0xda) {
        pos = this.readScan(segment, pos + 2 + length);
        sawScan = true;
        continue;
      }
      pos += 2 + length;
    }
    const frame = this.frame;
    if (!frame || !sawScan) throw new DecodeError('corrupt JPEG: no image data (no frame or scan) before EOI');
    return { frame, colorSpace: this.colorSpace(frame) };
  }

  /** libjpeg's default_decompress_parms. */
  private colorSpace(frame: Frame): 'gray' | 'ycbcr' | 'rgb' | 'cmyk' | 'ycck' {
    const n = frame.components.length;
    if (n === 1) return 'gray';
    if (n === 3) {
      if (this.sawJfif) return 'ycbcr';
      if (this.adobeTransform !== undefined) return this.adobeTransform === 0 ? 'rgb' : 'ycbcr';
      const ids = frame.components.map((c) => c.id).join(',');
      return ids === '82,71,66' ? 'rgb' : 'ycbcr';
    }
    if (this.adobeTransform !== undefined) return this.adobeTransform === 0 ? 'cmyk' : 'ycck';
    return 'cmyk';
  }

  private readFrame(segment: Uint8Array, progressive: boolean): void {
    if (this.frame) throw new DecodeError('unsupported JPEG: more than one frame');
    if (segment.length < 6) throw new DecodeError('corrupt JPEG: short SOF segment');
    const precision = segment[0] as number;
    const height = ((segment[1] as number) << 8) | (segment[2] as number);
    const width = ((segment[3] as number) << 8) | (segment[4] as number);
    const count = segment[5] as number;
    if (precision !== 8) throw new DecodeError(`unsupported JPEG: ${precision}-bit samples (only 8-bit is supported)`);
    if (count !== 1 && count !== 3 && count !== 4) {
      throw new DecodeError(`unsupported JPEG: ${count} components (PIL handles 1, 3 or 4)`);
    }
    if (segment.length < 6 + 3 * count) throw new DecodeError('corrupt JPEG: short SOF segment');
    if (height === 0) throw new DecodeError('unsupported JPEG: height 0 (defined by a DNL marker)');
    checkPixelBudget('jpeg', width, height, this.maxPixels);
    const specs = Array.from({ length: count }, (_, i) => {
      const at = 6 + 3 * i;
      const sampling = segment[at + 1] as number;
      const h = sampling >> 4;
      const v = sampling & 15;
      if (h < 1 || h > 4 || v < 1 || v > 4) throw new DecodeError(`corrupt JPEG: sampling factors ${h}x${v}`);
      return { id: segment[at] as number, h, v, quantIndex: (segment[at + 2] as number) & 3 };
    });
    const maxH = Math.max(...specs.map((s) => s.h));
    const maxV = Math.max(...specs.map((s) => s.v));
    for (const s of specs) {
      if (maxH % s.h !== 0 || maxV % s.v !== 0) {
        throw new DecodeError(`unsupported JPEG: fractional sampling factors ${s.h}x${s.v} of ${maxH}x${maxV}`);
      }
    }
    const mcusPerLine = Math.ceil(width / (8 * maxH));
    const mcusPerColumn = Math.ceil(height / (8 * maxV));
    const components = specs.map((s): Component => {
      const blocksPerLine = mcusPerLine * s.h;
      const blocksPerColumn = mcusPerColumn * s.v;
      return {
        ...s,
        widthInBlocks: Math.ceil((width * s.h) / (maxH * 8)),
        heightInBlocks: Math.ceil((height * s.v) / (maxV * 8)),
        blocksPerLine,
        blocksPerColumn,
        sampledWidth: Math.ceil((width * s.h) / maxH),
        sampledHeight: Math.ceil((height * s.v) / maxV),
        coefficients: progressive ? new Int16Array(blocksPerLine * blocksPerColumn * 64) : undefined,
        plane: new Uint8Array(blocksPerLine * blocksPerColumn * 64),
        dcPrediction: 0,
        dcTable: undefined,
        acTable: undefined,
      };
    });
    this.frame = { progressive, width, height, components, maxH, maxV, mcusPerLine, mcusPerColumn };
  }

  private readQuantTables(segment: Uint8Array): void {
    let at = 0;
    while (at < segment.length) {
      const pq = (segment[at] as number) >> 4;
      const index = (segment[at] as number) & 15;
      if (index > 3 || pq > 1) throw new DecodeError('corrupt JPEG: invalid DQT table');
      const size = pq === 0 ? 64 : 128;
      if (at + 1 + size > segment.length) throw new DecodeError('corrupt JPEG: short DQT segment');
      const table = new Int32Array(64);
      for (let k = 0; k < 64; k++) {
        const value =
          pq === 0
            ? (segment[at + 1 + k] as number)
            : ((segment[at + 1 + 2 * k] as number) << 8) | (segment[at + 2 + 2 * k] as number);
        // ISLOW_MULT_TYPE is a 16-bit short in libjpeg-turbo.
        table[ZIGZAG[k] as number] = (value << 16) >> 16;
      }
      this.quant[index] = table;
      at += 1 + size;
    }
  }

  private readHuffmanTables(segment: Uint8Array): void {
    let at = 0;
    while (at < segment.length) {
      if (at + 17 > segment.length) throw new DecodeError('corrupt JPEG: short DHT segment');
      const tc = (segment[at] as number) >> 4;
      const index = (segment[at] as number) & 15;
      if (tc > 1 || index > 3) throw new DecodeError('corrupt JPEG: invalid DHT table class or index');
      const counts = segment.subarray(at + 1, at + 17);
      const total = counts.reduce((a, b) => a + b, 0);
      if (total > 256 || at + 17 + total > segment.length) throw new DecodeError('corrupt JPEG: invalid DHT segment');
      const values = segment.slice(at + 17, at + 17 + total);
      // As jdhuff.c: a DC symbol is a bit count, at most 15.
      if (tc === 0 && values.some((v) => v > 15)) throw new DecodeError('corrupt JPEG: DC Huffman table symbol > 15');
      const table = buildHuffmanTable(counts, values);
      (tc === 0 ? this.dcTables : this.acTables)[index] = table;
      at += 17 + total;
    }
  }

  private readScan(segment: Uint8Array, dataStart: number): number {
    const frame = this.frame;
    if (!frame) throw new DecodeError('corrupt JPEG: scan before the frame header (SOF)');
    const count = segment[0] ?? 0;
    if (count < 1 || count > 4 || segment.length < 1 + 2 * count + 3) {
      throw new DecodeError('corrupt JPEG: invalid SOS segment');
    }
    const components: Component[] = [];
    for (let i = 0; i < count; i++) {
      const id = segment[1 + 2 * i] as number;
      const tables = segment[2 + 2 * i] as number;
      const component = frame.components.find((c) => c.id === id);
      if (!component) throw new DecodeError(`corrupt JPEG: scan refers to unknown component ${id}`);
      component.dcTable = this.dcTables[tables >> 4];
      component.acTable = this.acTables[tables & 15];
      components.push(component);
    }
    const at = 1 + 2 * count;
    const scan: Scan = {
      components,
      spectralStart: segment[at] as number,
      spectralEnd: segment[at + 1] as number,
      approxHigh: (segment[at + 2] as number) >> 4,
      approxLow: (segment[at + 2] as number) & 15,
    };
    if (!frame.progressive) {
      scan.spectralStart = 0;
      scan.spectralEnd = 63;
      scan.approxHigh = 0;
      scan.approxLow = 0;
    } else if (
      scan.spectralEnd > 63 ||
      scan.spectralStart > scan.spectralEnd ||
      (scan.spectralStart > 0 && count !== 1)
    ) {
      throw new DecodeError('corrupt JPEG: invalid progressive scan parameters');
    }
    for (const c of components) {
      const needsDc = scan.spectralStart === 0 && scan.approxHigh === 0;
      const needsAc = scan.spectralEnd > 0 || !frame.progressive;
      if ((needsDc && !c.dcTable) || (needsAc && !c.acTable)) {
        throw new DecodeError(`corrupt JPEG: scan uses an undefined Huffman table (component ${c.id})`);
      }
      if (!this.quant[c.quantIndex]) throw new DecodeError(`corrupt JPEG: component ${c.id} has no quantization table`);
    }
    return this.decodeScan(frame, scan, dataStart);
  }

  private decodeScan(frame: Frame, scan: Scan, dataStart: number): number {
    const reader = new BitReader(this.data, dataStart);
    const decodeBlock = this.blockDecoder(frame, scan, reader);
    const single = scan.components.length === 1;
    const first = scan.components[0] as Component;
    const mcusPerLine = single ? first.widthInBlocks : frame.mcusPerLine;
    const mcuTotal = single ? first.widthInBlocks * first.heightInBlocks : frame.mcusPerLine * frame.mcusPerColumn;
    for (const c of scan.components) c.dcPrediction = 0;
    this.eobRun = 0;
    for (let mcu = 0; mcu < mcuTotal; mcu++) {
      if (this.restartInterval > 0 && mcu > 0 && mcu % this.restartInterval === 0) {
        reader.alignToMarker();
        const m = this.data[reader.pos + 1];
        if (m === undefined || m < 0xd0 || m > 0xd7) {
          throw new DecodeError(`corrupt JPEG: expected a restart marker at byte ${reader.pos}`);
        }
        reader.pos += 2;
        for (const c of scan.components) c.dcPrediction = 0;
        this.eobRun = 0;
      }
      const mcuRow = Math.floor(mcu / mcusPerLine);
      const mcuCol = mcu % mcusPerLine;
      if (single) {
        decodeBlock(first, mcuRow, mcuCol);
      } else {
        for (const c of scan.components) {
          for (let v = 0; v < c.v; v++) {
            for (let h = 0; h < c.h; h++) decodeBlock(c, mcuRow * c.v + v, mcuCol * c.h + h);
          }
        }
      }
    }
    reader.alignToMarker();
    return reader.pos;
  }

  /** Returns a function that decodes one block at (blockRow, blockCol) of a component for this kind of scan. */
  private blockDecoder(
    frame: Frame,
    scan: Scan,
    reader: BitReader,
  ): (c: Component, blockRow: number, blockCol: number) => void {
    if (!frame.progressive) {
      const block = this.block;
      return (c, row, col) => {
        block.fill(0);
        this.decodeBaseline(c, reader, block);
        const stride = c.blocksPerLine * 8;
        idctIslow(
          block,
          0,
          this.quant[c.quantIndex] as Int32Array,
          c.plane,
          row * 8 * stride + col * 8,
          stride,
          this.workspace,
        );
      };
    }
    const { spectralStart: ss, spectralEnd: se, approxHigh: ah, approxLow: al } = scan;
    const step =
      ss === 0
        ? ah === 0
          ? (c: Component, coefs: Int16Array, at: number) => {
              const diff = reader.receiveExtend(reader.decode(c.dcTable as HuffmanTable));
              c.dcPrediction += diff;
              coefs[at] = c.dcPrediction * (1 << al);
            }
          : (_c: Component, coefs: Int16Array, at: number) => {
              if (reader.bit()) coefs[at] = (coefs[at] as number) | (1 << al);
            }
        : ah === 0
          ? (c: Component, coefs: Int16Array, at: number) => this.decodeAcFirst(c, reader, coefs, at, ss, se, al)
          : (c: Component, coefs: Int16Array, at: number) => this.decodeAcRefine(c, reader, coefs, at, ss, se, al);
    return (c, row, col) => {
      step(c, c.coefficients as Int16Array, (row * c.blocksPerLine + col) * 64);
    };
  }

  private decodeBaseline(c: Component, reader: BitReader, block: Int16Array): void {
    const diff = reader.receiveExtend(reader.decode(c.dcTable as HuffmanTable));
    c.dcPrediction += diff;
    block[0] = c.dcPrediction;
    const ac = c.acTable as HuffmanTable;
    for (let k = 1; k < 64; k++) {
      const rs = reader.decode(ac);
      const r = rs >> 4;
      const s = rs & 15;
      if (s) {
        k += r;
        block[natural(k)] = reader.receiveExtend(s);
      } else {
        if (r !== 15) break;
        k += 15;
      }
    }
  }

  private decodeAcFirst(
    c: Component,
    reader: BitReader,
    coefs: Int16Array,
    at: number,
    ss: number,
    se: number,
    al: number,
  ): void {
    if (this.eobRun > 0) {
      this.eobRun--;
      return;
    }
    const ac = c.acTable as HuffmanTable;
    for (let k = ss; k <= se; k++) {
      const rs = reader.decode(ac);
      const r = rs >> 4;
      const s = rs & 15;
      if (s) {
        k += r;
        coefs[at + natural(k)] = reader.receiveExtend(s) * (1 << al);
      } else if (r === 15) {
        k += 15;
      } else {
        this.eobRun = (1 << r) - 1;
        if (r) this.eobRun += reader.bits(r);
        break;
      }
    }
  }

  private decodeAcRefine(
    c: Component,
    reader: BitReader,
    coefs: Int16Array,
    at: number,
    ss: number,
    se: number,
    al: number,
  ): void {
    const p1 = 1 << al;
    const m1 = -1 << al;
    const ac = c.acTable as HuffmanTable;
    const refine = (pos: number): void => {
      const value = coefs[pos] as number;
      if (reader.bit() && (value & p1) === 0) coefs[pos] = value >= 0 ? value + p1 : value + m1;
    };
    let k = ss;
    if (this.eobRun === 0) {
      for (; k <= se; k++) {
        const rs = reader.decode(ac);
        let r = rs >> 4;
        let s = rs & 15;
        if (s) {
          if (s !== 1) throw new DecodeError('corrupt JPEG: invalid coefficient in a progressive refinement scan');
          s = reader.bit() ? p1 : m1;
        } else if (r !== 15) {
          this.eobRun = 1 << r;
          if (r) this.eobRun += reader.bits(r);
          break;
        }
        do {
          const pos = at + natural(k);
          if (coefs[pos] !== 0) refine(pos);
          else if (--r < 0) break;
          k++;
        } while (k <= se);
        if (s) coefs[at + natural(k)] = s;
      }
    }
    if (this.eobRun > 0) {
      for (; k <= se; k++) {
        const pos = at + natural(k);
        if (coefs[pos] !== 0) refine(pos);
      }
      this.eobRun--;
    }
  }

  /** After all scans of a progressive file: the IDCT of every block. */
  finishProgressive(frame: Frame): void {
    for (const c of frame.components) {
      const coefs = c.coefficients as Int16Array;
      const quant = this.quant[c.quantIndex];
      if (!quant) throw new DecodeError(`corrupt JPEG: component ${c.id} has no quantization table`);
      const stride = c.blocksPerLine * 8;
      for (let row = 0; row < c.blocksPerColumn; row++) {
        for (let col = 0; col < c.blocksPerLine; col++) {
          const at = (row * c.blocksPerLine + col) * 64;
          idctIslow(coefs, at, quant, c.plane, row * 8 * stride + col * 8, stride, this.workspace);
        }
      }
      c.coefficients = undefined;
    }
  }
}

// --- Upsampling (jdsample.c) and colour conversion (jdcolor.c) ---

/** Produces one full-width row of a component's samples for output row y, as libjpeg's upsampler would. */
type RowUpsampler = (y: number, out: Uint8Array) => void;

function makeUpsampler(c: Component, frame: Frame): RowUpsampler {
  const hf = frame.maxH / c.h;
  const vf = frame.maxV / c.v;
  const width = frame.width;
  const plane = c.plane;
  const stride = c.blocksPerLine * 8;
  const sw = c.sampledWidth;
  const lastRow = c.sampledHeight - 1;
  const clampRow = (r: number): number => (r < 0 ? 0 : Math.min(r, lastRow));
  if (hf === 1 && vf === 1) {
    return (y, out) => out.set(plane.subarray(y * stride, y * stride + width));
  }
  if (hf === 2 && vf === 1 && sw > 2) {
    return (y, out) => {
      const row = y * stride;
      for (let i = 0; i < sw; i++) {
        const v3 = (plane[row + i] as number) * 3;
        const left = plane[row + (i > 0 ? i - 1 : 0)] as number;
        const right = plane[row + (i < sw - 1 ? i + 1 : i)] as number;
        out[2 * i] = (v3 + left + 1) >> 2;
        out[2 * i + 1] = (v3 + right + 2) >> 2;
      }
    };
  }
  if (hf === 1 && vf === 2) {
    return (y, out) => {
      const near = (y >> 1) * stride;
      const above = (y & 1) === 0;
      const far = clampRow(above ? (y >> 1) - 1 : (y >> 1) + 1) * stride;
      const bias = above ? 1 : 2;
      for (let i = 0; i < width; i++)
        out[i] = ((plane[near + i] as number) * 3 + (plane[far + i] as number) + bias) >> 2;
    };
  }
  if (hf === 2 && vf === 2 && sw > 2) {
    const sums = new Int32Array(sw);
    return (y, out) => {
      const near = (y >> 1) * stride;
      const far = clampRow((y & 1) === 0 ? (y >> 1) - 1 : (y >> 1) + 1) * stride;
      for (let i = 0; i < sw; i++) sums[i] = (plane[near + i] as number) * 3 + (plane[far + i] as number);
      for (let i = 0; i < sw; i++) {
        const s3 = (sums[i] as number) * 3;
        out[2 * i] = (s3 + (sums[i > 0 ? i - 1 : 0] as number) + 8) >> 4;
        out[2 * i + 1] = (s3 + (sums[i < sw - 1 ? i + 1 : i] as number) + 7) >> 4;
      }
    };
  }
  // Box replication: int_upsample, and h2v1/h2v2 when the component is at most 2 samples wide.
  return (y, out) => {
    const row = Math.floor(y / vf) * stride;
    for (let x = 0; x < width; x++) out[x] = plane[row + Math.floor(x / hf)] as number;
  };
}

const SCALE_BITS = 16;
const ONE_HALF = 1 << (SCALE_BITS - 1);
const fix = (x: number): number => Math.floor(x * (1 << SCALE_BITS) + 0.5);

/** jdcolor.c build_ycc_rgb_table. */
const YCC_TABLES = (() => {
  const crR = new Int32Array(256);
  const cbB = new Int32Array(256);
  const crG = new Int32Array(256);
  const cbG = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    const x = i - 128;
    crR[i] = (fix(1.402) * x + ONE_HALF) >> SCALE_BITS;
    cbB[i] = (fix(1.772) * x + ONE_HALF) >> SCALE_BITS;
    crG[i] = -fix(0.71414) * x;
    cbG[i] = -fix(0.34414) * x + ONE_HALF;
  }
  return { crR, cbB, crG, cbG };
})();

function clamp255(v: number): number {
  return v < 0 ? 0 : Math.min(v, 255);
}

/** PIL's cmyk2rgb on Adobe-inverted CMYK: nk - MULDIV255(c, nk), nk = 255 - k. */
function cmykToRgbChannel(c: number, nk: number): number {
  const t = c * nk + 128;
  return clamp255(nk - (((t >> 8) + t) >> 8));
}

export async function decodeJpeg(bytes: Uint8Array, maxPixels: number, makeSink: SinkFactory): Promise<ImageInfo> {
  if (!isJpeg(bytes)) throw new DecodeError('not a JPEG file (no SOI marker)');
  const decoder = new JpegDecoder(bytes, maxPixels);
  const { frame, colorSpace } = decoder.decode();
  if (frame.progressive) decoder.finishProgressive(frame);
  const channels = colorSpace === 'gray' ? 1 : 3;
  const info: ImageInfo = {
    format: 'jpeg',
    width: frame.width,
    height: frame.height,
    channels,
    sourceMode: colorSpace === 'gray' ? 'L' : colorSpace === 'cmyk' || colorSpace === 'ycck' ? 'CMYK' : 'RGB',
  };
  const sink = makeSink(info);
  const width = frame.width;
  const upsamplers = frame.components.map((c) => makeUpsampler(c, frame));
  const rows = frame.components.map(() => new Uint8Array(width + 16));
  const out = new Uint8Array(width * channels);
  const { crR, cbB, crG, cbG } = YCC_TABLES;
  for (let y = 0; y < frame.height; y++) {
    for (let ci = 0; ci < upsamplers.length; ci++) (upsamplers[ci] as RowUpsampler)(y, rows[ci] as Uint8Array);
    const [c0, c1, c2, c3] = rows as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    if (colorSpace === 'gray') {
      out.set(c0.subarray(0, width));
    } else if (colorSpace === 'rgb') {
      for (let x = 0; x < width; x++) {
        out[3 * x] = c0[x] as number;
        out[3 * x + 1] = c1[x] as number;
        out[3 * x + 2] = c2[x] as number;
      }
    } else if (colorSpace === 'ycbcr') {
      for (let x = 0; x < width; x++) {
        const yy = c0[x] as number;
        const cb = c1[x] as number;
        const cr = c2[x] as number;
        out[3 * x] = clamp255(yy + (crR[cr] as number));
        out[3 * x + 1] = clamp255(yy + (((cbG[cb] as number) + (crG[cr] as number)) >> SCALE_BITS));
        out[3 * x + 2] = clamp255(yy + (cbB[cb] as number));
      }
    } else {
      for (let x = 0; x < width; x++) {
        let cyan = c0[x] as number;
        let magenta = c1[x] as number;
        let yellow = c2[x] as number;
        if (colorSpace === 'ycck') {
          // jdcolor.c ycck_cmyk_convert: C = 255 - R of the YCbCr triple, and so on; K passes through.
          const yy = cyan;
          const cb = magenta;
          const cr = yellow;
          cyan = clamp255(255 - (yy + (crR[cr] as number)));
          magenta = clamp255(255 - (yy + (((cbG[cb] as number) + (crG[cr] as number)) >> SCALE_BITS)));
          yellow = clamp255(255 - (yy + (cbB[cb] as number)));
        }
        // PIL's "CMYK;I" rawmode inverts every channel before convert('RGB').
        const nk = c3[x] as number; // 255 - (255 - k)
        out[3 * x] = cmykToRgbChannel(255 - cyan, nk);
        out[3 * x + 1] = cmykToRgbChannel(255 - magenta, nk);
        out[3 * x + 2] = cmykToRgbChannel(255 - yellow, nk);
      }
    }
    sink.writeRow(y, out);
  }
  return info;
}
