/**
 * Runs one of our pages (bench.html, parity.html) in headless Chromium against a Vite dev server and returns what
 * the page leaves on window.pageResult. Used by `npm run bench` and `npm run parity`.
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { createServer } from 'vite';
import { chromiumArgs, chromiumExecutablePath } from '../chromium.config.ts';

export type PageResult = { ok: true; record: unknown } | { ok: false; error: string };

declare global {
  interface Window {
    pageResult?: PageResult;
  }
}

export async function runPage(page: string, query: Record<string, string>, timeoutMs: number): Promise<PageResult> {
  if (!existsSync(chromiumExecutablePath)) return { ok: false, error: `no Chromium at ${chromiumExecutablePath}` };
  // No HMR: an edit in the tree must not reload a page half-way through a measurement.
  const server = await createServer({ server: { port: 0, hmr: false }, logLevel: 'silent' });
  await server.listen();
  const browser = await chromium.launch({ executablePath: chromiumExecutablePath, args: chromiumArgs });
  try {
    const tab = await browser.newPage();
    tab.on('console', (message) => {
      if (message.type() === 'error') process.stderr.write(`[${page}] ${message.text()}\n`);
    });
    const url = new URL(page, server.resolvedUrls!.local[0]);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    await tab.goto(url.href);
    await tab.waitForFunction(() => window.pageResult !== undefined, undefined, { timeout: timeoutMs, polling: 500 });
    return await tab.evaluate(() => window.pageResult!);
  } finally {
    await browser.close();
    await server.close();
  }
}
