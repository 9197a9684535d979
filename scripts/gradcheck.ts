/**
 * `npm run gradcheck`: prints ONE JSON line and exits non-zero when a target is missed. The engine's full training
 * step (MFF_OCE in training mode + decoder + 5·Σ MSE + backward + clip + AdamW) against the PyTorch reference's
 * autograd on one batch of 2 real images at full channel width (128 px grids, see training/reference/README.md),
 * then 5 optimiser steps. The module-level gradients against the official goldens are checked by the GPU tests
 * (training/*.gpu.test.ts, src/model/ops/scan.gpu.test.ts), which npm test runs too.
 * Targets: gradients and running statistics <= 1e-3 relative, loss <= 1e-4 relative, loss over 5 steps <= 1e-4.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeSync } from 'node:fs';
import { runPage } from './browserPage.ts';

const CASE = 'build/gradcheck/full_hilbert8_b2.safetensors';
const GRADIENT_TARGET = 1e-3;
const LOSS_TARGET = 1e-4;

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
      lossSteps: { maxRelative: number };
    };
    engine = r;
    if (!(r.lossRelative <= LOSS_TARGET)) failures.push(`loss: ${r.lossRelative} relative`);
    const [worstName, worstError] = r.gradientsWorst[0] ?? ['none', Number.NaN];
    if (!(worstError <= GRADIENT_TARGET)) failures.push(`gradient ${worstName}: ${worstError} relative`);
    if (!(r.runningStatistics <= GRADIENT_TARGET)) failures.push(`running statistics: ${r.runningStatistics}`);
    if (!(r.lossSteps.maxRelative <= LOSS_TARGET)) failures.push(`loss over the steps: ${r.lossSteps.maxRelative}`);
  }
}

writeSync(
  1,
  `${JSON.stringify({ ok: failures.length === 0, case: CASE, targets: { gradient: GRADIENT_TARGET, loss: LOSS_TARGET }, engine, failures })}\n`,
);
process.exit(failures.length === 0 ? 0 : 1);
