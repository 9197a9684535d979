/**
 * `npm run bench`: prints ONE JSON object with the timings of every host that is available here:
 * - node: the engine in Node on Dawn (`webgpu` package), run as a child process (Dawn can abort at teardown);
 * - browser: the same suite in headless Chromium's WebGPU (SwiftShader on a machine without a GPU).
 * A host that cannot run says why instead of a number. Options: --node-only, --browser-only, --matmul 1024,4096.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchPixelMetrics } from '../src/anomaly/metrics.bench.ts';
import { runPage } from './browserPage.ts';

const { values } = parseArgs({
  options: {
    'node-only': { type: 'boolean', default: false },
    'browser-only': { type: 'boolean', default: false },
    matmul: { type: 'string' },
  },
});

function lastJsonLine(output: string): unknown {
  const line = output
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  return line ? JSON.parse(line) : undefined;
}

/** Random weights (seed 0) written by the reference, so every host times the same model. */
const WEIGHTS = 'build/bench-weights.safetensors';

function makeWeights(): string | undefined {
  if (existsSync(WEIGHTS)) return undefined;
  mkdirSync('build', { recursive: true });
  const run = spawnSync(
    '/usr/bin/python3',
    [
      'training/reference/bench_reference.py',
      '--device',
      'cpu',
      '--batches',
      '1',
      '--repeats',
      '1',
      '--weights-out',
      WEIGHTS,
    ],
    { encoding: 'utf8' },
  );
  return run.status === 0 ? undefined : `could not write ${WEIGHTS}: ${run.stderr.trim().split('\n').at(-1)}`;
}

function benchNode(): unknown {
  const args = [
    'bin/mambaad.mjs',
    'bench',
    ...(values.matmul ? ['--matmul', values.matmul] : []),
    ...(existsSync(WEIGHTS) ? ['--weights', WEIGHTS] : []),
    '--encoder',
    '../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors',
  ];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 600_000 });
  return lastJsonLine(run.stdout) ?? { skipped: `node + Dawn: ${(run.stderr || 'no output').trim()}` };
}

async function benchBrowser(): Promise<unknown> {
  const options = {
    ...(values.matmul ? { matmulSizes: values.matmul.split(',').map(Number) } : {}),
    ...(existsSync(WEIGHTS) ? { weightsUrl: `/${WEIGHTS}` } : {}),
  };
  const result = await runPage('bench.html', { options: JSON.stringify(options) }, 600_000);
  return result.ok ? result.record : { skipped: `browser: ${result.error}` };
}

const record: Record<string, unknown> = { date: new Date().toISOString() };
const weightsProblem = makeWeights();
if (weightsProblem) record.weights = weightsProblem;
// The metrics are CPU work: measured in this Node process whatever GPU hosts exist (the browser page measures its own).
record.pixelMetricsNode = benchPixelMetrics({ images: 2000 });
if (!values['browser-only']) record.node = benchNode();
if (!values['node-only']) record.browser = await benchBrowser();
writeSync(1, `${JSON.stringify(record)}\n`);
