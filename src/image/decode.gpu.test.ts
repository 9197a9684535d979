/**
 * The same decoders in a browser page and in a Web Worker (headless Chromium; no GPU is used): DecompressionStream
 * for PNG, the pure-TS JPEG decoder, and libwebp's wasm fetched as a Vite asset. Results must equal the 256x256
 * images that PIL made from the same originals (../shared/data/.../256).
 */
import { encode as encodeWebp } from '@jsquash/webp';
import { describe, expect, test } from 'vitest';
import { fetchShared } from '../testing/goldens.ts';
import { decodeImage, toRgb8 } from './decode.ts';
import { preprocessImage } from './preprocess.ts';

const CASES = [
  ['mvtec-bottle/original/test/broken_large/000.png', 'mvtec-bottle/256/test/broken_large/000.png'],
  ['magnetic-tile/original/test/blowhole/exp1_num_108719.jpg', 'magnetic-tile/256/test/blowhole/exp1_num_108719.png'],
] as const;

async function pilResized(path: string): Promise<Uint8Array> {
  return toRgb8(await decodeImage(await fetchShared(`data/${path}`)));
}

describe('image decoding in the browser', () => {
  test('in a page: PNG and JPEG originals resize to exactly the PIL-made 256x256 images', async () => {
    for (const [original, resized] of CASES) {
      const { rgb } = await preprocessImage(await fetchShared(`data/${original}`));
      expect(rgb).toEqual(await pilResized(resized));
    }
  });

  test('in a page: WebP through the wasm decoder (lossless round trip)', async () => {
    const source = await decodeImage(await fetchShared(`data/${CASES[0][1]}`));
    const rgb = toRgb8(source);
    const rgba = new Uint8ClampedArray(256 * 256 * 4);
    for (let i = 0; i < 256 * 256; i++) {
      rgba.set(rgb.subarray(3 * i, 3 * i + 3), 4 * i);
      rgba[4 * i + 3] = 255;
    }
    const webp = await encodeWebp(new ImageData(rgba, 256, 256), { lossless: 1 });
    const decoded = await decodeImage(new Uint8Array(webp));
    expect(decoded.format).toBe('webp');
    expect(toRgb8(decoded)).toEqual(rgb);
  });

  test('in a Web Worker: the same results', async () => {
    const worker = new Worker(new URL('../testing/imageDecodeWorker.ts', import.meta.url), { type: 'module' });
    try {
      for (const [original, resized] of CASES) {
        const bytes = await fetchShared(`data/${original}`);
        const reply = await new Promise<{ rgb?: Uint8Array; error?: string }>((resolve, reject) => {
          worker.onmessage = (event) => resolve(event.data);
          worker.onerror = (event) => reject(new Error(event.message));
          worker.postMessage(bytes);
        });
        expect(reply.error).toBeUndefined();
        expect(reply.rgb).toEqual(await pilResized(resized));
      }
    } finally {
      worker.terminate();
    }
  });
});
