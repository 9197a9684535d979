/**
 * `npm run metrics:check`: our metrics (src/anomaly/metrics.ts) against scikit-learn, scikit-image and numpy running
 * the benchmark's own definitions (scripts/metrics_check.py), on random, tie-heavy and realistic inputs (real masks
 * from ../shared/data with synthetic maps), plus the reproduction of the official golden metrics_expected.json.
 *
 * Prints one JSON line: the largest absolute difference per metric over every class and class mean, and exits
 * non-zero when any exact metric differs by more than 1e-9, a region label or an AU-PRO threshold differs, or the
 * golden is not reproduced.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import {
  ADER_METRIC_KEYS,
  type AderMetricKey,
  type ClassMetrics,
  MetricsAccumulator,
  type MetricsOptions,
  PAPER_METRIC_NAMES,
  toAderKeys,
} from '../src/anomaly/metrics.ts';
import { labelRegions } from '../src/anomaly/regions.ts';
import { parseSafetensors, type TensorToWrite, writeSafetensors } from '../src/io/safetensors.ts';
import { seededRandom as random } from '../src/util/random.ts';

const TOLERANCE = 1e-9;
const PYTHON = '/usr/bin/python3';
const SHARED = new URL('../../shared/', import.meta.url);

interface Case {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly classes: readonly string[];
  readonly maps: Float32Array[];
  readonly masks: Uint8Array[];
  readonly classIndex: number[];
  /** Small chunks make the sorted-run merging do real work on small inputs. */
  readonly options?: Partial<MetricsOptions>;
}

interface ReferenceClass {
  ader: Record<AderMetricKey, number>;
  pixel_f1_max_curve: number;
  aupro_mvtec: number;
  aupro_mvtec_float32_fpr: number;
  thresholds: number[];
}

interface ReferenceCase {
  classes: Record<string, ReferenceClass>;
  label_mismatches: number;
}

/** 8-bit grayscale, non-interlaced PNG (the layout of every mask in ../shared/data), decoded to one byte per pixel. */
function decodeGrayPng(bytes: Uint8Array, what: string): { width: number; height: number; pixels: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8;
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  while (offset < bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const body = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = view.getUint32(offset + 8);
      height = view.getUint32(offset + 12);
      const [bitDepth, colorType, , , interlace] = body.subarray(8, 13);
      if (bitDepth !== 8 || colorType !== 0 || interlace !== 0) {
        throw new Error(`${what}: only 8-bit grayscale non-interlaced PNG is supported`);
      }
    } else if (type === 'IDAT') {
      idat.push(body);
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (width + 1)]!;
    const line = raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1));
    for (let x = 0; x < width; x++) {
      const left = x > 0 ? pixels[y * width + x - 1]! : 0;
      const up = y > 0 ? pixels[(y - 1) * width + x]! : 0;
      const upLeft = x > 0 && y > 0 ? pixels[(y - 1) * width + x - 1]! : 0;
      let predictor = 0;
      if (filter === 1) predictor = left;
      else if (filter === 2) predictor = up;
      else if (filter === 3) predictor = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
        predictor = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      pixels[y * width + x] = (line[x]! + predictor) & 0xff;
    }
  }
  return { width, height, pixels };
}

/** Random ellipses and scattered single pixels (many tiny, diagonally touching regions). */
function syntheticMask(width: number, height: number, rand: () => number): Uint8Array {
  const mask = new Uint8Array(width * height);
  const ellipses = 1 + Math.floor(rand() * 3);
  for (let e = 0; e < ellipses; e++) {
    const cx = rand() * width;
    const cy = rand() * height;
    const rx = 1 + rand() * width * 0.2;
    const ry = 1 + rand() * height * 0.2;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) mask[y * width + x] = 1;
    }
  }
  for (let i = 0; i < mask.length; i++) if (rand() < 0.01) mask[i] = 1;
  return mask;
}

/** A smooth background, noise and a defect response that follows a blurred mask, with varying strength. */
function realisticMap(mask: Uint8Array, width: number, height: number, rand: () => number): Float32Array {
  const blurred = Float64Array.from(mask);
  const radius = 4;
  for (let pass = 0; pass < 2; pass++) {
    for (const [step, count, lines, lineStep] of [
      [1, width, height, width],
      [width, height, width, 1],
    ] as const) {
      const line = new Float64Array(count);
      for (let l = 0; l < lines; l++) {
        for (let i = 0; i < count; i++) line[i] = blurred[l * lineStep + i * step]!;
        for (let i = 0; i < count; i++) {
          let sum = 0;
          for (let d = -radius; d <= radius; d++) sum += line[Math.min(count - 1, Math.max(0, i + d))]!;
          blurred[l * lineStep + i * step] = sum / (2 * radius + 1);
        }
      }
    }
  }
  const waves = Array.from({ length: 3 }, () => [rand() * 0.1, rand() * 0.1, rand() * 6.28, 0.02 + rand() * 0.05]);
  const strength = 0.05 + rand() * 0.4;
  const map = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = 0.1 + 0.02 * rand();
      for (const [fx, fy, phase, amplitude] of waves) v += amplitude! * Math.cos(fx! * x + fy! * y + phase!);
      map[y * width + x] = v + strength * blurred[y * width + x]!;
    }
  }
  return map;
}

function syntheticCase(name: string, seed: number, quantise: boolean): Case {
  const rand = random(seed);
  const [width, height] = [48, 40];
  const c: Case = {
    name,
    width,
    height,
    classes: ['first', 'second'],
    maps: [],
    masks: [],
    classIndex: [],
    options: { minChunkElements: 1000, maxChunkElements: 5000 },
  };
  for (let i = 0; i < 48; i++) {
    const defective = rand() < 0.5;
    // A per-image scale makes good and defective images' maxima overlap, so the image metrics are not trivial.
    const scale = 0.7 + 0.6 * rand();
    const mask = defective ? syntheticMask(width, height, rand) : new Uint8Array(width * height);
    const map = new Float32Array(width * height);
    for (let p = 0; p < map.length; p++) {
      const raw = scale * rand() + 0.3 * mask[p]! * rand();
      // Seven levels in [-0.5, 0.5], with the zero level stored as -0 half of the time.
      const level = Math.min(6, Math.floor(raw * 4.5)) / 6 - 0.5;
      map[p] = quantise ? (level === 0 && rand() < 0.5 ? -0 : level) : raw;
    }
    c.maps.push(map);
    c.masks.push(mask);
    c.classIndex.push(i % 2);
  }
  return c;
}

function realMaskCase(seed: number): Case {
  const rand = random(seed);
  const c: Case = {
    name: 'real-masks',
    width: 256,
    height: 256,
    classes: ['mvtec-bottle', 'magnetic-tile'],
    maps: [],
    masks: [],
    classIndex: [],
  };
  const datasets: [string, number][] = [
    ['data/mvtec-bottle/256', 1],
    ['data/magnetic-tile/256', 4],
  ];
  datasets.forEach(([root, every], classIndex) => {
    const add = (mask: Uint8Array) => {
      c.masks.push(mask);
      c.maps.push(realisticMap(mask, 256, 256, rand));
      c.classIndex.push(classIndex);
    };
    const good = readdirSync(new URL(`${root}/test/good`, SHARED)).length;
    for (let i = 0; i < good; i += every) add(new Uint8Array(256 * 256));
    const gt = new URL(`${root}/ground_truth/`, SHARED);
    for (const defect of readdirSync(gt).sort()) {
      const files = readdirSync(new URL(`${defect}/`, gt)).sort();
      for (let i = 0; i < files.length; i += every) {
        const path = new URL(`${defect}/${files[i]}`, gt);
        const png = decodeGrayPng(new Uint8Array(readFileSync(path)), path.pathname);
        if (png.width !== 256 || png.height !== 256) throw new Error(`${path.pathname}: not 256x256`);
        add(png.pixels.map((v) => (v > 127 ? 1 : 0)));
      }
    }
  });
  return c;
}

function ours(c: Case): ClassMetrics[] {
  const accumulator = new MetricsAccumulator({ width: c.width, height: c.height, ...c.options });
  c.maps.forEach((map, i) => {
    const mask = c.masks[i]!;
    accumulator.add(map, mask, mask.includes(1) ? 1 : 0, c.classes[c.classIndex[i]!]!);
  });
  return [...accumulator.finalize().classes];
}

function stack<T extends Float32Array | Uint8Array>(arrays: T[], make: (n: number) => T): T {
  const out = make(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

function runReference(cases: readonly Case[]): Record<string, ReferenceCase> {
  const tensors: Record<string, TensorToWrite> = {};
  for (const c of cases) {
    const shape = [c.maps.length, c.height, c.width];
    tensors[`${c.name}.maps`] = { dtype: 'F32', shape, data: stack(c.maps, (n) => new Float32Array(n)) };
    tensors[`${c.name}.masks`] = { dtype: 'U8', shape, data: stack(c.masks, (n) => new Uint8Array(n)) };
    tensors[`${c.name}.class_index`] = {
      dtype: 'I64',
      shape: [c.maps.length],
      data: BigInt64Array.from(c.classIndex, BigInt),
    };
    // Region labels travel as F64 (exact for any label count) for skimage to compare against.
    const labels = new Float64Array(c.masks.length * c.width * c.height);
    c.masks.forEach((mask, i) => {
      labels.set(labelRegions(mask, c.width, c.height).labels, i * c.width * c.height);
    });
    tensors[`${c.name}.labels`] = { dtype: 'F64', shape, data: labels };
  }
  const metadata = { cases: JSON.stringify(cases.map((c) => ({ name: c.name, classes: c.classes }))) };
  const dir = mkdtempSync(join(tmpdir(), 'metrics-check-'));
  try {
    const path = join(dir, 'inputs.safetensors');
    writeFileSync(path, writeSafetensors(tensors, metadata));
    const script = new URL('./metrics_check.py', import.meta.url).pathname;
    const run = spawnSync(PYTHON, [script, path], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (run.status !== 0) throw new Error(`${PYTHON} ${script} failed (${run.status}):\n${run.stderr}`);
    return JSON.parse(run.stdout) as Record<string, ReferenceCase>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function goldenReproduction(): { maxAbsDiff: number; ok: boolean } {
  const golden = new URL('spec/golden/', SHARED);
  const file = parseSafetensors(
    new Uint8Array(readFileSync(new URL('metrics_inputs.safetensors', golden))),
    'metrics_inputs',
  );
  const expected = JSON.parse(readFileSync(new URL('metrics_expected.json', golden), 'utf8')) as {
    per_class: Record<string, Record<AderMetricKey, number>>;
    mean: Record<AderMetricKey, number>;
  };
  const [n, height, width] = file.tensor('maps').shape as [number, number, number];
  const maps = file.float32('maps');
  const masks = file.tensor('masks').data as Uint8Array;
  const classIndex = file.tensor('class_index').data as BigInt64Array;
  const classes = (JSON.parse(file.metadata.case ?? '{}') as { classes: string[] }).classes;
  const accumulator = new MetricsAccumulator({ width, height });
  for (let i = 0; i < n; i++) {
    const mask = masks.subarray(i * width * height, (i + 1) * width * height);
    const className = classes[Number(classIndex[i])]!;
    accumulator.add(
      maps.subarray(i * width * height, (i + 1) * width * height),
      mask,
      mask.includes(1) ? 1 : 0,
      className,
    );
  }
  const result = accumulator.finalize();
  let maxAbsDiff = 0;
  const compare = (got: Record<AderMetricKey, number>, want: Record<AderMetricKey, number>) => {
    for (const key of Object.values(ADER_METRIC_KEYS))
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[key] - want[key]));
  };
  for (const c of result.classes) compare(toAderKeys(c.paper), expected.per_class[c.className]!);
  compare(toAderKeys(result.mean), expected.mean);
  if (result.classes.length !== Object.keys(expected.per_class).length) maxAbsDiff = Number.POSITIVE_INFINITY;
  return { maxAbsDiff, ok: maxAbsDiff <= TOLERANCE };
}

function main(): void {
  const started = performance.now();
  const cases = [syntheticCase('random', 1, false), syntheticCase('ties', 2, true), realMaskCase(3)];
  const reference = runReference(cases);
  const diffs: Record<string, number> = {};
  const note = (key: string, got: number, want: number) => {
    // NaN on both sides is agreement; NaN on one side is an infinite difference.
    const d = Number.isNaN(got) && Number.isNaN(want) ? 0 : Math.abs(got - want);
    diffs[key] = Math.max(diffs[key] ?? 0, Number.isNaN(d) ? Number.POSITIVE_INFINITY : d);
  };
  let thresholdLengthMismatches = 0;
  let thresholdMaxAbsDiff = 0;
  let officialFloat32FprDiff = 0;
  let labelMismatches = 0;
  const sizes: Record<
    string,
    { images: number; pixels: number; regions: number; imageAuroc: number; pixelAuroc: number }
  > = {};
  for (const c of cases) {
    const ref = reference[c.name];
    if (!ref) throw new Error(`reference has no case ${c.name}`);
    labelMismatches += ref.label_mismatches;
    const classes = ours(c);
    const meanOurs: Record<string, number[]> = {};
    const meanRef: Record<string, number[]> = {};
    for (const m of classes) {
      const r = ref.classes[m.className];
      if (!r) throw new Error(`reference has no class ${m.className} in case ${c.name}`);
      sizes[`${c.name}/${m.className}`] = {
        images: m.images,
        pixels: m.pixels,
        regions: m.regions,
        imageAuroc: Number(m.image.auroc.toFixed(4)),
        pixelAuroc: Number(m.pixel.auroc.toFixed(4)),
      };
      const got = toAderKeys(m.paper);
      const refSeven = PAPER_METRIC_NAMES.map((name) => r.ader[ADER_METRIC_KEYS[name]]);
      const entries: [string, number, number][] = [
        ...Object.values(ADER_METRIC_KEYS).map((key): [string, number, number] => [key, got[key], r.ader[key]]),
        ['mAD', m.paper.mAD, refSeven.reduce((a, b) => a + b, 0) / refSeven.length],
        ['pixel_f1_max_curve', m.pixel.f1Max, r.pixel_f1_max_curve],
        ['aupro_mvtec', m.auproMvtec, r.aupro_mvtec],
      ];
      for (const [key, g, w] of entries) {
        note(key, g, w);
        meanOurs[key] = [...(meanOurs[key] ?? []), g];
        meanRef[key] = [...(meanRef[key] ?? []), w];
      }
      officialFloat32FprDiff = Math.max(officialFloat32FprDiff, Math.abs(m.auproMvtec - r.aupro_mvtec_float32_fpr));
      const thresholds = m.proBenchmark.thresholds;
      if (thresholds.length !== r.thresholds.length) thresholdLengthMismatches += 1;
      for (let i = 0; i < Math.min(thresholds.length, r.thresholds.length); i++) {
        thresholdMaxAbsDiff = Math.max(thresholdMaxAbsDiff, Math.abs(r.thresholds[i]! - thresholds[i]!));
      }
    }
    const average = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    for (const key of Object.keys(meanOurs)) note('class_mean', average(meanOurs[key]!), average(meanRef[key]!));
  }
  const golden = goldenReproduction();
  const ok =
    Object.values(diffs).every((d) => d <= TOLERANCE) &&
    thresholdLengthMismatches === 0 &&
    thresholdMaxAbsDiff === 0 &&
    labelMismatches === 0 &&
    golden.ok;
  const report = {
    ok,
    tolerance: TOLERANCE,
    maxAbsDiff: diffs,
    auproThresholds: { lengthMismatches: thresholdLengthMismatches, maxAbsDiff: thresholdMaxAbsDiff },
    regionLabelMismatchedPixels: labelMismatches,
    golden,
    informational: { auproMvtecVsOfficialFloat32Fpr: officialFloat32FprDiff },
    cases: sizes,
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  };
  console.log(JSON.stringify(report));
  if (!ok) process.exitCode = 1;
}

main();
