/**
 * WebP through libwebp compiled to wasm (@jsquash/webp, shipped inside the npm package, no network at run time).
 * PIL 9.4 decodes WebP with libwebp's WebPAnimDecoder into straight (non-premultiplied) RGBA with libwebp's default
 * fancy upsampling; convert('RGB') then drops alpha. WebPDecodeRGBA in the wasm build does the same.
 *
 * In a browser page or worker the wasm file is fetched next to the module (Vite bundles it as an asset); in Node it
 * is read from node_modules, since Node's fetch cannot load file URLs.
 */

import { checkPixelBudget, DecodeError, type ImageInfo, type SinkFactory } from './decode-common.ts';

export function isWebp(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 12 &&
    String.fromCharCode(...bytes.subarray(0, 4)) === 'RIFF' &&
    String.fromCharCode(...bytes.subarray(8, 12)) === 'WEBP'
  );
}

interface WebpHeader {
  width: number;
  height: number;
  hasAlpha: boolean;
}

function readHeader(bytes: Uint8Array): WebpHeader {
  if (bytes.length < 30) throw new DecodeError(`truncated WebP: only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const riffSize = view.getUint32(4, true);
  if (riffSize + 8 > bytes.length) {
    throw new DecodeError(
      `truncated WebP: the RIFF header declares ${riffSize + 8} bytes, the file has ${bytes.length}`,
    );
  }
  const chunk = String.fromCharCode(...bytes.subarray(12, 16));
  const data = 20;
  if (chunk === 'VP8 ') {
    if (bytes[data + 3] !== 0x9d || bytes[data + 4] !== 0x01 || bytes[data + 5] !== 0x2a) {
      throw new DecodeError('corrupt WebP: bad VP8 frame start code');
    }
    return {
      width: view.getUint16(data + 6, true) & 0x3fff,
      height: view.getUint16(data + 8, true) & 0x3fff,
      hasAlpha: false,
    };
  }
  if (chunk === 'VP8L') {
    if (bytes[data] !== 0x2f) throw new DecodeError('corrupt WebP: bad VP8L signature');
    const bits = view.getUint32(data + 1, true);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, hasAlpha: ((bits >>> 28) & 1) === 1 };
  }
  if (chunk === 'VP8X') {
    const flags = bytes[data] as number;
    if (flags & 0x02) throw new DecodeError('unsupported WebP: animated WebP images are not supported');
    const u24 = (at: number): number =>
      (bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16);
    return { width: u24(data + 4) + 1, height: u24(data + 7) + 1, hasAlpha: (flags & 0x10) !== 0 };
  }
  throw new DecodeError(`corrupt WebP: unknown first chunk ${JSON.stringify(chunk)}`);
}

type WebpDecode = (buffer: ArrayBuffer) => Promise<ImageData>;
let decoderReady: Promise<WebpDecode> | undefined;

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

/** Specifiers kept out of static analysis so that browser bundles never try to include Node built-ins. */
const NODE_FS = 'node:fs/promises';
const NODE_MODULE = 'node:module';

async function nodeWasmModule(): Promise<WebAssembly.Module> {
  const fs: typeof import('node:fs/promises') = await import(/* @vite-ignore */ NODE_FS);
  const nodeModule: typeof import('node:module') = await import(/* @vite-ignore */ NODE_MODULE);
  const path = nodeModule.createRequire(import.meta.url).resolve('@jsquash/webp/codec/dec/webp_dec.wasm');
  return WebAssembly.compile(await fs.readFile(path));
}

function webpDecoder(): Promise<WebpDecode> {
  decoderReady ??= (async () => {
    const codec = await import('@jsquash/webp/decode.js');
    if (isNode()) await codec.init(await nodeWasmModule());
    return codec.default;
  })();
  return decoderReady;
}

export async function decodeWebp(bytes: Uint8Array, maxPixels: number, makeSink: SinkFactory): Promise<ImageInfo> {
  if (!isWebp(bytes)) throw new DecodeError('not a WebP file (no RIFF/WEBP header)');
  const header = readHeader(bytes);
  checkPixelBudget('webp', header.width, header.height, maxPixels);
  const decode = await webpDecoder();
  let image: ImageData;
  try {
    image = await decode(bytes.slice().buffer);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new DecodeError(`corrupt WebP: libwebp could not decode the image data (${message})`);
  }
  if (image.width !== header.width || image.height !== header.height) {
    throw new DecodeError(
      `corrupt WebP: header says ${header.width}x${header.height}, the data decodes to ${image.width}x${image.height}`,
    );
  }
  const info: ImageInfo = {
    format: 'webp',
    width: image.width,
    height: image.height,
    channels: 3,
    sourceMode: header.hasAlpha ? 'RGBA' : 'RGB',
  };
  const sink = makeSink(info);
  const rgba = image.data;
  const row = new Uint8Array(info.width * 3);
  for (let y = 0; y < info.height; y++) {
    const base = y * info.width * 4;
    for (let x = 0; x < info.width; x++) {
      row[x * 3] = rgba[base + x * 4] as number;
      row[x * 3 + 1] = rgba[base + x * 4 + 1] as number;
      row[x * 3 + 2] = rgba[base + x * 4 + 2] as number;
    }
    sink.writeRow(y, row);
  }
  return info;
}
