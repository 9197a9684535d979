/**
 * Decode + preprocess against PIL 9.4 (Debian's python3-pil, /usr/bin/python3), the reference pipeline's library.
 * scripts/pil_reference.py writes fixtures in many formats and modes plus PIL's outputs for them and for the
 * original-size images in ../shared/data/{mvtec-bottle,magnetic-tile}/original; every one is compared here.
 * Set PIL_REPORT=1 to print the per-format differences as JSON.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DecodeError, decodeImage, toRgb8 } from './decode.ts';
import { decodeResized, normalizeImagenet, preprocessImage, preprocessMask, resizeBilinear } from './preprocess.ts';

const REPO = resolve(import.meta.dirname, '../..');
const DATA = resolve(REPO, '../shared/data');

interface ManifestEntry {
  path: string;
  fixture: boolean;
  mode?: string;
  width?: number;
  height?: number;
  error?: string;
  full?: string;
  r256?: string;
  mask?: string;
  tensor?: string;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

const originals = ['mvtec-bottle', 'magnetic-tile'].flatMap((set) => listFiles(join(DATA, set, 'original'))).sort();

let workDir = '';
let entries: ManifestEntry[] = [];

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'pil-reference-'));
  execFileSync('/usr/bin/python3', [join(REPO, 'scripts/pil_reference.py'), workDir, ...originals], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 120_000,
  });
  entries = (JSON.parse(readFileSync(join(workDir, 'manifest.json'), 'utf8')) as { entries: ManifestEntry[] }).entries;
}, 150_000);

afterAll(() => {
  if (process.env.PIL_REPORT) console.log(JSON.stringify(reportJson(), null, 1));
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** Per group (format + PIL mode, or the fixture name's prefix): max and mean absolute difference in levels. */
interface Stats {
  images: number;
  max: number;
  sum: number;
  count: number;
}
const stats = new Map<string, Stats>();

/** Records the difference under `stage/format` and `stage/format/detail`; returns the largest difference. */
function record(key: string, ours: Uint8Array, theirs: Uint8Array): number {
  expect(ours.length).toBe(theirs.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs((ours[i] as number) - (theirs[i] as number));
    sum += d;
    if (d > max) max = d;
  }
  const parts = key.split('/');
  for (const k of [parts.slice(0, 2).join('/'), key]) {
    const s = stats.get(k) ?? { images: 0, max: 0, sum: 0, count: 0 };
    s.images++;
    s.max = Math.max(s.max, max);
    s.sum += sum;
    s.count += ours.length;
    stats.set(k, s);
  }
  return max;
}

function reportJson(): Record<string, { images: number; max: number; mean: number }> {
  const out: Record<string, { images: number; max: number; mean: number }> = {};
  for (const [key, s] of [...stats].sort(([a], [b]) => a.localeCompare(b))) {
    out[key] = { images: s.images, max: s.max, mean: Number((s.sum / s.count).toPrecision(3)) };
  }
  return out;
}

const FORMAT_OF_EXTENSION: Record<string, string> = { png: 'png', jpg: 'jpeg', webp: 'webp', bmp: 'bmp' };

/** `format/detail`: the fixture's name, or the data set and PIL mode of an original. */
function groupOf(entry: ManifestEntry): string {
  const name = basename(entry.path);
  const format = FORMAT_OF_EXTENSION[name.split('.').pop() ?? ''] ?? 'unknown';
  if (entry.fixture) return `${format}/${name.replace(/\.[a-z]+$/, '')}`;
  return `${format}/${relative(DATA, entry.path).split('/')[0]}-original-${entry.mode}`;
}

function bytesOf(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

describe('decoding matches PIL Image.open().convert("RGB")', () => {
  test('every fixture and original decodes to PIL full-size pixels', async () => {
    const decoded = entries.filter((e) => e.full);
    expect(decoded.length).toBeGreaterThan(60);
    for (const entry of decoded) {
      const image = await decodeImage(bytesOf(entry.path));
      expect([image.width, image.height, image.sourceMode], entry.path).toEqual([
        entry.width,
        entry.height,
        entry.mode,
      ]);
      const max = record(`full/${groupOf(entry)}`, toRgb8(image), bytesOf(entry.full as string));
      expect(max, `${entry.path}: max difference to PIL`).toBe(0);
    }
  });

  test('inputs PIL refuses are refused with a DecodeError', async () => {
    for (const entry of entries.filter((e) => e.error)) {
      await expect(decodeImage(bytesOf(entry.path)), `${entry.path} (PIL: ${entry.error})`).rejects.toThrow(
        DecodeError,
      );
    }
  });
});

describe('preprocessing matches PIL resize((256, 256), BILINEAR) + torchvision', () => {
  test('256x256 RGB8 before normalisation equals PIL (bit for bit)', async () => {
    for (const entry of entries.filter((e) => e.r256)) {
      const { rgb, info } = await preprocessImage(bytesOf(entry.path));
      expect(info.width).toBe(entry.width);
      const max = record(`r256/${groupOf(entry)}`, rgb, bytesOf(entry.r256 as string));
      expect(max, `${entry.path}: max difference to PIL`).toBe(0);
    }
  });

  test('resizeBilinear of a decoded image equals the streaming resize and PIL', async () => {
    const entry = entries.find((e) => e.r256 && !e.fixture);
    expect(entry).toBeDefined();
    const resized = resizeBilinear(await decodeImage(bytesOf(entry?.path as string)), 256, 256);
    expect(
      record(`resizeBilinear/${groupOf(entry as ManifestEntry)}`, toRgb8(resized), bytesOf(entry?.r256 as string)),
    ).toBe(0);
  });

  test('ImageNet-normalised tensor equals torch float32 bit for bit', async () => {
    const entry = entries.find((e) => e.tensor);
    expect(entry).toBeDefined();
    const { tensor } = await preprocessImage(bytesOf(entry?.path as string));
    const expected = new Float32Array(readFileSync(entry?.tensor as string).buffer.slice(0));
    expect(tensor.length).toBe(3 * 256 * 256);
    let mismatches = 0;
    for (let i = 0; i < tensor.length; i++) if (tensor[i] !== expected[i]) mismatches++;
    expect(mismatches).toBe(0);
  });

  test('masks follow ADer: convert("L") > 0, bilinear resize, > 0.5', async () => {
    for (const entry of entries.filter((e) => e.mask)) {
      const { mask } = await preprocessMask(bytesOf(entry.path));
      const max = record(`mask/${groupOf(entry)}`, mask, bytesOf(entry.mask as string));
      expect(max, `${entry.path}: mask differs from PIL`).toBe(0);
    }
  });

  test('the shared 256x256 sets (made by PIL from the originals) equal our resize of the originals', async () => {
    let compared = 0;
    for (const path of originals) {
      const counterpart = path.replace('/original/', '/256/').replace(/\.jpg$/, '.png');
      const isMask = path.includes('/ground_truth/');
      const reference = await decodeImage(bytesOf(counterpart));
      let ours: Uint8Array;
      let theirs: Uint8Array;
      if (isMask) {
        ours = (await preprocessMask(bytesOf(path))).mask.map((v) => v * 255);
        theirs = toRgb8(reference).filter((_, i) => i % 3 === 0);
      } else {
        ours = (await preprocessImage(bytesOf(path))).rgb;
        theirs = toRgb8(reference);
      }
      const set = relative(DATA, path).split('/')[0];
      const max = record(`shared256/${set}/${isMask ? 'mask' : 'image'}`, ours, theirs);
      expect(max, `${path} vs ${counterpart}`).toBe(0);
      compared++;
    }
    expect(compared).toBe(originals.length);
  });

  test('a large image is resized while decoding, within a pixel budget that admits it exactly', async () => {
    const entry = entries.find((e) => basename(e.path).startsWith('png_large_'));
    expect(entry).toBeDefined();
    const bytes = bytesOf(entry?.path as string);
    const pixels = (entry?.width as number) * (entry?.height as number);
    const { image } = await decodeResized(bytes, 256, 256, { maxPixels: pixels });
    expect(record('stream/png/large_2000x1500', toRgb8(image), bytesOf(entry?.r256 as string))).toBe(0);
    await expect(decodeResized(bytes, 256, 256, { maxPixels: pixels - 1 })).rejects.toThrow(
      /2000x1500 \(3\.0 Mpx\), over the limit/,
    );
  });

  test('normalisation of a gray image replicates the channel', () => {
    const gray = { width: 2, height: 1, channels: 1 as const, data: new Uint8Array([0, 255]) };
    const t = normalizeImagenet(gray);
    expect(Array.from(t)).toEqual(
      [0, 1, 2].flatMap((c) =>
        [0, 255].map((v) => {
          const mean = Math.fround([0.485, 0.456, 0.406][c] as number);
          const std = Math.fround([0.229, 0.224, 0.225][c] as number);
          return Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
        }),
      ),
    );
  });
});
