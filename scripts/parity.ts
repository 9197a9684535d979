/**
 * `npm run parity`: prints ONE JSON line and exits non-zero when a target is missed.
 * - reference: training/reference (PyTorch) against every official golden (check_goldens.py);
 * - engine: our WGSL engine in headless Chromium against the same goldens, and against the reference at full size
 *   (256x256, random weights with a fixed seed, real ResNet18 features) for Hilbert x8 and Zigzag x8.
 * Targets: module and decoder outputs <= 1e-4 relative; cosine maps and final maps <= 1e-5 absolute.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeSync } from 'node:fs';
import { runPage } from './browserPage.ts';

const PYTHON = '/usr/bin/python3';
const OUTPUT_TARGET = 1e-4;
const MAP_TARGET = 1e-5;
const FULL_SIZE_CASES = [
  { scan: 'hilbert', directions: 8, path: 'build/parity/full_hilbert8_seed0.safetensors' },
  { scan: 'zigzag', directions: 8, path: 'build/parity/full_zigzag8_seed0.safetensors' },
];

function python(args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const run = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: 900_000 });
  return { ok: run.status === 0, stdout: run.stdout ?? '', stderr: run.stderr ?? String(run.error ?? '') };
}

function lastJson(text: string): unknown {
  const line = text
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  return line ? JSON.parse(line) : undefined;
}

/**
 * check_goldens.py reports one error per tensor ("case.output.0", "case.grad.param.x", …); the line keeps the worst
 * output and the worst gradient of each case (its own exit status already applies the targets to every tensor).
 */
function summariseReference(record: unknown): Record<string, unknown> | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const summary: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record as Record<string, number>)) {
    const [name, kind] = key.split(/\.(grad|output)/);
    if (name === undefined || kind === undefined) {
      summary[key] = value; // scan-order mismatch counts, seconds
      continue;
    }
    const entry = (summary[name] ?? {}) as Record<string, number>;
    entry[kind] = Math.max(entry[kind] ?? 0, value);
    summary[name] = entry;
  }
  return summary;
}

const failures: string[] = [];

// 1. The PyTorch reference against the goldens.
const reference = python(['training/reference/check_goldens.py']);
const referenceRecord = summariseReference(lastJson(reference.stdout)) ?? {
  error: reference.stderr.trim().split('\n').slice(-3).join(' '),
};
if (!reference.ok) failures.push('reference: check_goldens.py failed');

// 2. Full-size cases from the reference (regenerated when missing; deterministic for a seed).
mkdirSync('build/parity', { recursive: true });
for (const c of FULL_SIZE_CASES) {
  if (existsSync(c.path)) continue;
  const made = python([
    'training/reference/make_parity_case.py',
    '--scan',
    c.scan,
    '--directions',
    String(c.directions),
    '--seed',
    '0',
    '--out',
    c.path,
  ]);
  if (!made.ok)
    failures.push(`reference: make_parity_case.py ${c.scan} failed: ${made.stderr.trim().split('\n').at(-1)}`);
}

// 3. The engine in Chromium.
const cases = FULL_SIZE_CASES.map((c) => c.path).filter((p) => existsSync(p));
const page = await runPage('parity.html', { cases: cases.join(',') }, 1_500_000);
let engine: unknown;
if (!page.ok) {
  failures.push(`engine: ${page.error}`);
  engine = { error: page.error };
} else {
  const record = page.record as {
    goldens: Record<string, number>;
    anomalyMap: { map: number; scores: number };
    rejections: Record<string, string>;
    fullSize: Record<string, { z: number; decoded: number[]; cosineMaps: number[]; map: number; scores: number }>;
  };
  engine = record;
  for (const [name, error] of Object.entries(record.goldens)) {
    if (!(error <= OUTPUT_TARGET)) failures.push(`engine golden ${name}: ${error}`);
  }
  for (const [what, error] of Object.entries(record.anomalyMap)) {
    if (!(error <= MAP_TARGET)) failures.push(`engine golden anomaly_map ${what}: ${error} absolute`);
  }
  // Each damaged weights file must be refused with a message naming its problem; the intact one must load.
  const expectedRejections: Record<string, RegExp> = {
    intact: /^accepted$/,
    truncated: /truncated/,
    wrongShape: /out_proj\.weight" is \[1, \d+\], expected \[\d+, \d+\]/,
    missingKey: /missing "net_s\.layers_up\.1\.blocks\.0\.smm_blocks\.0\.self_attention\.out_proj\.weight"/,
    noConfig: /no "mambaad\.config"/,
  };
  if (cases.length > 0) {
    for (const [what, pattern] of Object.entries(expectedRejections)) {
      const message = record.rejections[what] ?? '(not checked)';
      if (!pattern.test(message)) failures.push(`weights ${what}: got "${message}"`);
    }
  }
  for (const [name, e] of Object.entries(record.fullSize)) {
    for (const [what, error] of [['z', e.z], ...e.decoded.map((d, i) => [`d${i + 1}`, d] as const)] as const) {
      if (!(error <= OUTPUT_TARGET)) failures.push(`engine ${name} ${what}: ${error} relative`);
    }
    for (const [what, error] of [...e.cosineMaps.map((d, i) => [`cos${i + 1}`, d] as const), ['map', e.map]] as const) {
      if (!(error <= MAP_TARGET)) failures.push(`engine ${name} ${what}: ${error} absolute`);
    }
  }
}

writeSync(
  1,
  `${JSON.stringify({ ok: failures.length === 0, targets: { output: OUTPUT_TARGET, map: MAP_TARGET }, reference: referenceRecord, engine, failures })}\n`,
);
process.exit(failures.length === 0 ? 0 : 1);
