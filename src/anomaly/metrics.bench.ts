/**
 * Benchmark of the pixel metrics at dataset scale: synthesises realistic anomaly maps and masks (smooth background,
 * noise, elliptical defects with a graded response; half the images defective), streams them into a
 * MetricsAccumulator and finalizes it. Pure TS, callable from Node and from a browser page.
 */

import { seededRandom as generator } from '../util/random.ts';
import { MetricsAccumulator } from './metrics.ts';

export interface PixelBenchOptions {
  readonly images?: number;
  readonly size?: number;
  readonly seed?: number;
}

export interface PixelBenchResult {
  readonly images: number;
  readonly size: number;
  readonly pixels: number;
  readonly defectPixels: number;
  readonly regions: number;
  /** add() for every image plus finalize(), excluding the synthesis of the inputs. */
  readonly seconds: number;
  readonly addSeconds: number;
  readonly finalizeSeconds: number;
  readonly synthesisSeconds: number;
  /** Process CPU time (user + system) of add() and finalize(), where the runtime reports it (Node); null elsewhere. */
  readonly cpuSeconds: number | null;
  /** Bytes the accumulator holds in typed arrays at the end (stored scores, regions, work buffers). */
  readonly peakBytesEstimate: number;
  /** Peak resident set size of the process, where the runtime reports it (Node); null elsewhere. */
  readonly peakRssBytes: number | null;
  readonly metrics: {
    readonly pixelAuroc: number;
    readonly pixelAp: number;
    readonly pixelF1MaxGrid: number;
    readonly pixelF1MaxCurve: number;
    readonly auproBenchmark: number;
    readonly auproMvtec: number;
  };
}

/** Fills `map` and `mask` with one synthetic test image; returns its 0/1 label. */
function synthesise(map: Float32Array, mask: Uint8Array, size: number, rand: () => number): 0 | 1 {
  const rows = new Float64Array(size);
  const columns = new Float64Array(size);
  const [fx, fy, px, py] = [0.02 + 0.05 * rand(), 0.02 + 0.05 * rand(), 6.28 * rand(), 6.28 * rand()];
  for (let i = 0; i < size; i++) {
    rows[i] = 0.05 * Math.cos(fy * i + py);
    columns[i] = 0.05 * Math.cos(fx * i + px);
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) map[y * size + x] = 0.2 + rows[y]! + columns[x]! + 0.05 * rand();
  }
  mask.fill(0);
  if (rand() < 0.5) return 0;
  const defects = 1 + Math.floor(3 * rand());
  const strength = 0.05 + 0.4 * rand();
  for (let d = 0; d < defects; d++) {
    const [cx, cy] = [size * rand(), size * rand()];
    const [rx, ry] = [2 + 0.12 * size * rand(), 2 + 0.12 * size * rand()];
    // The response reaches past the defect (1.5 radii), as a blurred map does.
    const [x0, x1] = [Math.max(0, Math.floor(cx - 1.5 * rx)), Math.min(size - 1, Math.ceil(cx + 1.5 * rx))];
    const [y0, y1] = [Math.max(0, Math.floor(cy - 1.5 * ry)), Math.min(size - 1, Math.ceil(cy + 1.5 * ry))];
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const r2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        if (r2 <= 1) mask[y * size + x] = 1;
        if (r2 < 2.25) map[y * size + x] = map[y * size + x]! + strength * (1 - r2 / 2.25);
      }
    }
  }
  return mask.includes(1) ? 1 : 0;
}

interface NodeProcess {
  resourceUsage(): { maxRSS: number };
  cpuUsage(): { user: number; system: number };
}

const nodeProcess = (globalThis as { process?: Partial<NodeProcess> }).process;

function peakRss(): number | null {
  // Node reports maxRSS in kilobytes.
  return nodeProcess?.resourceUsage ? nodeProcess.resourceUsage().maxRSS * 1024 : null;
}

function cpuMicroseconds(): number | null {
  if (!nodeProcess?.cpuUsage) return null;
  const { user, system } = nodeProcess.cpuUsage();
  return user + system;
}

export function benchPixelMetrics(options: PixelBenchOptions = {}): PixelBenchResult {
  const { images = 2000, size = 256, seed = 1 } = options;
  const rand = generator(seed);
  const map = new Float32Array(size * size);
  const mask = new Uint8Array(size * size);
  const accumulator = new MetricsAccumulator({ width: size, height: size });
  let synthesisMs = 0;
  let addMs = 0;
  let cpu: number | null = 0;
  const measureCpu = (since: number | null) => {
    const now = cpuMicroseconds();
    if (cpu !== null && since !== null && now !== null) cpu += now - since;
    else cpu = null;
  };
  for (let i = 0; i < images; i++) {
    const t0 = performance.now();
    const label = synthesise(map, mask, size, rand);
    const t1 = performance.now();
    const cpu1 = cpuMicroseconds();
    accumulator.add(map, mask, label, 'bench');
    measureCpu(cpu1);
    addMs += performance.now() - t1;
    synthesisMs += t1 - t0;
  }
  const t2 = performance.now();
  const cpu2 = cpuMicroseconds();
  const result = accumulator.finalizeClass('bench');
  measureCpu(cpu2);
  const finalizeMs = performance.now() - t2;
  return {
    images,
    size,
    pixels: result.pixels,
    defectPixels: result.defectPixels,
    regions: result.regions,
    seconds: (addMs + finalizeMs) / 1000,
    addSeconds: addMs / 1000,
    finalizeSeconds: finalizeMs / 1000,
    synthesisSeconds: synthesisMs / 1000,
    cpuSeconds: cpu === null ? null : cpu / 1e6,
    peakBytesEstimate: accumulator.bytes,
    peakRssBytes: peakRss(),
    metrics: {
      pixelAuroc: result.pixel.auroc,
      pixelAp: result.pixel.ap,
      pixelF1MaxGrid: result.pixelF1MaxGrid,
      pixelF1MaxCurve: result.pixel.f1Max,
      auproBenchmark: result.proBenchmark.aupro,
      auproMvtec: result.auproMvtec,
    },
  };
}
