/** Bad input: every case must end in a DecodeError that names the problem, and huge images are refused unread. */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { DEFAULT_MAX_PIXELS, DecodeError, decodeImage, sniffFormat } from './decode.ts';

const DATA = resolve(import.meta.dirname, '../../../shared/data');
const bottlePng = new Uint8Array(readFileSync(resolve(DATA, 'mvtec-bottle/original/test/good/000.png')));
const tileJpeg = new Uint8Array(readFileSync(resolve(DATA, 'magnetic-tile/original/test/good/exp1_num_10903.jpg')));

function u32be(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

function pngChunk(type: string, data: Uint8Array | number[]): Uint8Array {
  const body = new Uint8Array([...Array.from(type, (c) => c.charCodeAt(0)), ...data]);
  return new Uint8Array([...u32be(body.length - 4), ...body, ...u32be(crc32(body))]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function ihdr(width: number, height: number, depth = 8, colorType = 2): Uint8Array {
  return pngChunk('IHDR', [...u32be(width), ...u32be(height), depth, colorType, 0, 0, 0]);
}

/** A 2x2 8-bit RGB PNG whose scanlines (filter byte + 6 bytes each) are given raw, before compression. */
function rgbPng(scanlines: number[], compressed?: Uint8Array): Uint8Array {
  const idat = compressed ?? new Uint8Array(deflateSync(new Uint8Array(scanlines)));
  return concat(PNG_SIGNATURE, ihdr(2, 2), pngChunk('IDAT', idat), pngChunk('IEND', []));
}

async function decodeError(bytes: Uint8Array, maxPixels?: number): Promise<string> {
  try {
    await decodeImage(bytes, maxPixels === undefined ? {} : { maxPixels });
  } catch (error) {
    expect(error).toBeInstanceOf(DecodeError);
    return (error as Error).message;
  }
  throw new Error('expected a DecodeError, but the image decoded');
}

describe('not an image', () => {
  test('a text file', async () => {
    const text = new TextEncoder().encode('hello, this is a text file\n');
    expect(await decodeError(text)).toBe(
      'file starts with 68 65 6c 6c 6f 2c 20 74 ("hello, t"): not a PNG, JPEG, WebP or BMP image',
    );
  });

  test('an empty file', async () => {
    expect(await decodeError(new Uint8Array(0))).toMatch(
      /^the file is empty \(0 bytes\): not a PNG, JPEG, WebP or BMP/,
    );
  });

  test('a file cut inside the signature', async () => {
    expect(await decodeError(bottlePng.subarray(0, 5))).toBe(
      'truncated PNG: the file is only 5 bytes (89 50 4e 47 0d)',
    );
  });

  test('the format comes from the bytes, not from a name', () => {
    expect(sniffFormat(bottlePng)).toBe('png');
    expect(sniffFormat(tileJpeg)).toBe('jpeg');
  });
});

describe('corrupt PNG', () => {
  test('truncated in the middle of the image data', async () => {
    expect(await decodeError(bottlePng.subarray(0, bottlePng.length >> 1))).toMatch(
      /^truncated PNG: chunk IDAT at byte \d+ declares \d+ data bytes but the file ends/,
    );
  });

  test('one flipped byte is caught by the chunk CRC', async () => {
    const flipped = bottlePng.slice();
    const middle = flipped.length >> 1;
    flipped[middle] = (flipped[middle] as number) ^ 0x10;
    expect(await decodeError(flipped)).toMatch(/^corrupt PNG: CRC mismatch in chunk IDAT at byte \d+ \(stored 0x/);
    const badHeader = bottlePng.slice();
    badHeader[17] = (badHeader[17] as number) ^ 1; // a bit of the width
    expect(await decodeError(badHeader)).toMatch(/^corrupt PNG: CRC mismatch in chunk IHDR at byte 8/);
  });

  test('valid CRCs around an invalid zlib stream', async () => {
    const garbage = new Uint8Array([0x78, 0x9c, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02]);
    expect(await decodeError(rgbPng([], garbage))).toMatch(
      /^corrupt PNG: the compressed image data is invalid \(zlib: /,
    );
  });

  test('an unknown scanline filter type', async () => {
    expect(await decodeError(rgbPng([0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6]))).toBe(
      'corrupt PNG: row 1 uses unknown filter type 7',
    );
  });

  test('too little image data', async () => {
    expect(await decodeError(rgbPng([0, 1, 2, 3, 4, 5, 6]))).toBe(
      'truncated PNG: the image data ends after 1 of 2 scanlines',
    );
  });

  test('a valid 2x2 PNG of the same construction decodes (the cases above fail for their stated reason)', async () => {
    const image = await decodeImage(rgbPng([0, 1, 2, 3, 4, 5, 6, 2, 1, 1, 1, 1, 1, 1]));
    expect(Array.from(image.data)).toEqual([1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 6, 7]);
  });
});

describe('images over the pixel budget are refused from the header, before allocation', () => {
  test('a 20000x20000 PNG header (no image data at all)', async () => {
    const header = concat(PNG_SIGNATURE, ihdr(20000, 20000));
    expect(DEFAULT_MAX_PIXELS).toBe(64 * 1024 * 1024);
    expect(await decodeError(header)).toBe(
      'PNG image is 20000x20000 (400.0 Mpx), over the limit of 67.1 Mpx (67108864 pixels); raise maxPixels to decode it',
    );
  });

  test('the limit is configurable, and an image exactly at it is decoded', async () => {
    const pixels = 900 * 900;
    expect(await decodeError(bottlePng, pixels - 1)).toMatch(/^PNG image is 900x900 \(0\.8 Mpx\), over the limit/);
    const image = await decodeImage(bottlePng, { maxPixels: pixels });
    expect([image.width, image.height]).toEqual([900, 900]);
  });

  test('a 60000x60000 JPEG frame header', async () => {
    // SOI, SOF0 (8-bit, 60000x60000, 3 components 1x1), no tables or scan.
    const sof = [0xff, 0xc0, 0, 17, 8, 0xea, 0x60, 0xea, 0x60, 3, 1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1];
    const jpeg = new Uint8Array([0xff, 0xd8, ...sof, 0xff, 0xd9]);
    expect(await decodeError(jpeg)).toMatch(/^JPEG image is 60000x60000 \(3600\.0 Mpx\), over the limit of 67\.1 Mpx/);
  });

  test('a 20000x20000 BMP header', async () => {
    const header = new Uint8Array(54);
    const view = new DataView(header.buffer);
    header.set([0x42, 0x4d]);
    view.setUint32(10, 54, true);
    view.setUint32(14, 40, true);
    view.setInt32(18, 20000, true);
    view.setInt32(22, 20000, true);
    view.setUint16(26, 1, true);
    view.setUint16(28, 24, true);
    expect(await decodeError(header)).toMatch(/^BMP image is 20000x20000 \(400\.0 Mpx\), over the limit/);
    view.setInt32(18, 20, true);
    view.setInt32(22, 20, true);
    expect(await decodeError(header)).toMatch(
      /^truncated BMP: pixel data needs 1200 bytes from byte 54, the file has 0/,
    );
  });

  test('a 16384x16384 lossless WebP header', async () => {
    const bits = 16383 | (16383 << 14);
    const webp = new Uint8Array([
      ...Array.from('RIFF', (c) => c.charCodeAt(0)),
      22,
      0,
      0,
      0,
      ...Array.from('WEBPVP8L', (c) => c.charCodeAt(0)),
      10,
      0,
      0,
      0,
      0x2f,
      bits & 255,
      (bits >>> 8) & 255,
      (bits >>> 16) & 255,
      (bits >>> 24) & 255,
      0,
      0,
      0,
      0,
      0,
    ]);
    expect(await decodeError(webp)).toMatch(/^WEBP image is 16384x16384 \(268\.4 Mpx\), over the limit/);
    expect(await decodeError(webp, Number.POSITIVE_INFINITY)).toMatch(/^corrupt WebP: libwebp could not decode/);
  });
});

describe('corrupt or unsupported JPEG', () => {
  test('truncated', async () => {
    expect(await decodeError(tileJpeg.subarray(0, tileJpeg.length >> 1))).toBe(
      'truncated JPEG: the file ends inside the compressed image data',
    );
  });

  test('cut right after the headers', async () => {
    const sos = tileJpeg.findIndex((b, i) => b === 0xff && tileJpeg[i + 1] === 0xda);
    expect(await decodeError(tileJpeg.subarray(0, sos))).toBe('truncated JPEG: the file ends before any image data');
  });

  test('arithmetic coding and 12-bit samples', async () => {
    const frame = (code: number, precision: number) =>
      new Uint8Array([0xff, 0xd8, 0xff, code, 0, 11, precision, 0, 8, 0, 8, 1, 1, 0x11, 0, 0xff, 0xd9]);
    expect(await decodeError(frame(0xc9, 8))).toBe(
      'unsupported JPEG: arithmetic-coded sequential (SOF9) JPEG is not supported',
    );
    expect(await decodeError(frame(0xc0, 12))).toBe('unsupported JPEG: 12-bit samples (only 8-bit is supported)');
  });
});

describe('random corruption never escapes as anything but a DecodeError', () => {
  /** xorshift32: the same corruptions on every run. */
  function random(seed: number): () => number {
    let s = seed;
    return () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 2 ** 32;
    };
  }

  test.each([
    ['PNG', bottlePng],
    ['JPEG', tileJpeg],
  ])('%s: flipped bytes and cut files', async (_, original) => {
    const next = random(12345);
    let refused = 0;
    for (let trial = 0; trial < 120; trial++) {
      const bytes = original.slice(0, trial % 3 === 0 ? Math.floor(next() * original.length) : original.length);
      for (let flips = 0; flips < 1 + (trial % 4); flips++) {
        const at = Math.floor(next() * bytes.length);
        bytes[at] = Math.floor(next() * 256);
      }
      try {
        const image = await decodeImage(bytes, { maxPixels: 4_000_000 });
        expect(image.data.length).toBe(image.width * image.height * image.channels);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});
