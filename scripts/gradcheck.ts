/**
 * `npm run gradcheck`: prints ONE JSON line and exits non-zero when a target is missed. The engine's full training
 * step (MFF_OCE in training mode + decoder + 5·Σ MSE + backward + clip + AdamW) against the PyTorch reference's
 * autograd on one batch of 2 real images at full channel width (128 px grids, see training/reference/README.md),
 * then 5 optimiser steps. The module-level gradients against the official goldens are checked by the GPU tests
 * (training/*.gpu.test.ts, src/model/ops/scan.gpu.test.ts), which npm test runs too.
 * Targets: gradients and running statistics <= 1e-3 relative, the first loss <= 1e-4 relative. The losses of the
 * later steps must be within 1e-4, or within 4x the drift the reference shows against itself when its features are
 * nudged by 1e-6 relative (float32 rounding alone moves a 5-step AdamW trajectory by ~1e-3 at lr 5e-3).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeSync } from 'node:fs';
import { runPage } from './browserPage.ts';

const CASE = 'build/gradcheck/full_hilbert8_b2.safetensors';
const GRADIENT_TARGET = 1e-3;
const LOSS_TARGET = 1e-4;
const DRIFT_FACTOR = 4;

const failures: string[] = [];
if (!existsSync(CASE)) {
  mkdirSync('build/gradcheck', { recursive: true });
  const made = spawnSync(
    '/usr/bin/python3',
    [
      'training/reference/make_gradcheck_case.py',
      ...['--scan', 'hilbert', '--directions', '8', '--seed', '0', '--batch', '2', '--steps', '5', '--out', CASE],
    ],
    { encoding: 'utf8', timeout: 900_000 },
  );
  if (made.status !== 0) failures.push(`reference case: ${(made.stderr ?? '').trim().split('\n').at(-1)}`);
}

let engine: unknown;
if (failures.length === 0) {
  const page = await runPage('gradcheck.html', { case: CASE }, 2_400_000);
  if (!page.ok) {
    failures.push(`engine: ${page.error}`);
    engine = { error: page.error };
  } else {
    const r = page.record as {
      lossRelative: number;
      gradientsWorst: [string, number][];
      runningStatistics: number;
      lossSteps: { relative: number[]; referenceDrift: number[] };
    };
    engine = r;
    if (!(r.lossRelative <= LOSS_TARGET)) failures.push(`loss: ${r.lossRelative} relative`);
    const [worstName, worstError] = r.gradientsWorst[0] ?? ['none', Number.NaN];
    if (!(worstError <= GRADIENT_TARGET)) failures.push(`gradient ${worstName}: ${worstError} relative`);
    if (!(r.runningStatistics <= GRADIENT_TARGET)) failures.push(`running statistics: ${r.runningStatistics}`);
    r.lossSteps.relative.forEach((error, step) => {
      const allowed = Math.max(LOSS_TARGET, DRIFT_FACTOR * (r.lossSteps.referenceDrift[step] ?? 0));
      if (!(error <= allowed)) failures.push(`loss before step ${step + 1}: ${error} relative, allowed ${allowed}`);
    });
  }
}

writeSync(
  1,
  `${JSON.stringify({ ok: failures.length === 0, case: CASE, targets: { gradient: GRADIENT_TARGET, loss: LOSS_TARGET, driftFactor: DRIFT_FACTOR }, engine, failures })}\n`,
);
process.exit(failures.length === 0 ? 0 : 1);
