/**
 * `npm run bench`: prints ONE JSON object with the timings of every host that is available here:
 * - node: the engine in Node on Dawn (`webgpu` package), run as a child process (Dawn can abort at teardown);
 * - browser: the same suite in headless Chromium's WebGPU (SwiftShader on a machine without a GPU).
 * A host that cannot run says why instead of a number. Options: --node-only, --browser-only, --matmul 1024,4096.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { createServer } from 'vite';
import { chromiumArgs, chromiumExecutablePath } from '../chromium.config.ts';

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

function benchNode(): unknown {
  const args = ['bin/mambaad.mjs', 'bench', ...(values.matmul ? ['--matmul', values.matmul] : [])];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 600_000 });
  return lastJsonLine(run.stdout) ?? { skipped: `node + Dawn: ${(run.stderr || 'no output').trim()}` };
}

async function benchBrowser(): Promise<unknown> {
  if (!existsSync(chromiumExecutablePath)) return { skipped: `no Chromium at ${chromiumExecutablePath}` };
  const server = await createServer({ server: { port: 0 }, logLevel: 'silent' });
  await server.listen();
  const browser = await chromium.launch({ executablePath: chromiumExecutablePath, args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const options = values.matmul ? { matmulSizes: values.matmul.split(',').map(Number) } : {};
    const url = `${server.resolvedUrls!.local[0]}bench.html?options=${encodeURIComponent(JSON.stringify(options))}`;
    await page.goto(url);
    await page.waitForFunction(() => window.benchResult !== undefined, undefined, { timeout: 600_000 });
    const result = await page.evaluate(() => window.benchResult!);
    return result.ok ? { host: 'chromium', ...(result.record as object) } : { error: result.error };
  } finally {
    await browser.close();
    await server.close();
  }
}

const record: Record<string, unknown> = { date: new Date().toISOString() };
if (!values['browser-only']) record.node = benchNode();
if (!values['node-only']) record.browser = await benchBrowser();
writeSync(1, `${JSON.stringify(record)}\n`);
