import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';
import { DEFAULT_MODEL, randomModelFile, SHARED } from './engineTestFiles.ts';

/**
 * Inspect with the trained default model (public/models/default.safetensors) on original-size bottles. Full-size
 * inference takes about a minute per image on SwiftShader, so this test analyses two images.
 * E2E_MODEL=path runs the same flow with another weights file (loaded through Models); the ranking check then only
 * applies to a trained model, so it is skipped for that run.
 */
const DEFECTIVE = join(SHARED, 'data/mvtec-bottle/original/test/broken_large/000.png');
const GOOD = join(SHARED, 'data/mvtec-bottle/original/test/good/000.png');

async function loadModel(page: Page): Promise<boolean> {
  const override = process.env.E2E_MODEL;
  if (override) {
    await page.getByRole('tab', { name: 'Models' }).click();
    await page.getByTestId('model-file-input').setInputFiles(override);
    await expect(page.getByTestId('current-model-name')).toHaveText(override.split('/').at(-1)!, { timeout: 120_000 });
    await page.getByRole('tab', { name: 'Inspect' }).click();
    return false;
  }
  expect(existsSync(DEFAULT_MODEL), 'the trained default model public/models/default.safetensors is missing').toBe(
    true,
  );
  await expect(page.getByTestId('model-state')).toHaveText('Model: default.safetensors', { timeout: 120_000 });
  return true;
}

function pngFile(path: string, name: string) {
  return { name, mimeType: 'image/png', buffer: readFileSync(path) };
}

/** The score shown on the tile of the image called `name`. */
async function tileScore(page: Page, name: string): Promise<number> {
  const tile = page.locator(`[data-testid="inspect-tile"][data-name="${name}"]`);
  await expect(tile).toHaveAttribute('data-state', 'done', { timeout: 300_000 });
  return Number(await tile.getByTestId('tile-score').textContent());
}

/** Mean absolute difference of the viewer's pixels between two renderings (0: the overlay draws nothing). */
async function viewerPixels(page: Page): Promise<number[]> {
  return page.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid="inspect-viewer"] canvas')!;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    const sample: number[] = [];
    for (let i = 0; i < data.length; i += 4 * 97) sample.push(data[i]!, data[i + 1]!, data[i + 2]!);
    return sample;
  });
}

test('a defective and a good bottle at original size: heatmaps, gallery by score, zoom, exports', async ({
  page,
  baseURL,
}) => {
  test.setTimeout(600_000);
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto('/');
  const trained = await loadModel(page);

  await expect(page.getByTestId('inspect-samples')).toContainText('broken_large/000.png');
  await saveScreenshot(page, 'inspect-empty');

  // The UI thread's long frames (over 50 ms) while an image is analysed and shown, with the studio's own scripts in
  // them (the rest is rendering, and Playwright's own polling, which runs on the page's thread too).
  await page.evaluate(() => {
    const frames: { ms: number; ownScriptMs: number[] }[] = [];
    (window as { longFrames?: typeof frames }).longFrames = frames;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries() as (PerformanceEntry & {
        scripts: { duration: number; sourceURL: string }[];
      })[]) {
        const own = entry.scripts.filter((script) => script.sourceURL.includes('/assets/'));
        frames.push({ ms: Math.round(entry.duration), ownScriptMs: own.map((script) => Math.round(script.duration)) });
      }
    }).observe({ type: 'long-animation-frame' });
  });

  // Drop one 900x900 image and time it until its heatmap is on screen.
  const started = Date.now();
  await page.getByTestId('inspect-file-input').setInputFiles(pngFile(DEFECTIVE, 'broken_large_000.png'));
  await expect(page.getByTestId('inspect-progress')).toBeVisible();
  const viewer = page.getByTestId('inspect-viewer');
  await expect(viewer).toHaveAttribute('data-ready', 'true', { timeout: 400_000 });
  const dropToHeatmapMs = Date.now() - started;
  console.log(JSON.stringify({ metric: 'inspect_drop_to_heatmap_ms', image: '900x900 PNG', ms: dropToHeatmapMs }));
  await expect(viewer).toHaveAttribute('data-image', 'broken_large_000.png');
  const longFrames = await page.evaluate(
    () => (window as { longFrames?: { ms: number; ownScriptMs: number[] }[] }).longFrames ?? [],
  );
  console.log(
    JSON.stringify({
      metric: 'inspect_ui_long_frames',
      count: longFrames.length,
      longestMs: Math.max(0, ...longFrames.map((f) => f.ms)),
      longestOwnScriptsMs: longFrames
        .flatMap((f) => f.ownScriptMs)
        .sort((a, b) => b - a)
        .slice(0, 5),
    }),
  );
  const timing = JSON.parse((await page.getByTestId('selected-timing').getAttribute('data-timing'))!);
  console.log(JSON.stringify({ metric: 'inspect_first_image_timing', ...timing }));

  await page.getByTestId('inspect-file-input').setInputFiles(pngFile(GOOD, 'good_000.png'));
  const defectiveScore = await tileScore(page, 'broken_large_000.png');
  const goodScore = await tileScore(page, 'good_000.png');
  console.log(JSON.stringify({ metric: 'inspect_scores', defective: defectiveScore, good: goodScore }));
  if (trained) expect(defectiveScore).toBeGreaterThan(goodScore);
  // The gallery is sorted by score, highest first.
  const shown = (await page.getByTestId('tile-score').allTextContents()).map(Number);
  expect(shown).toEqual([...shown].sort((a, b) => b - a));
  await saveScreenshot(page, 'inspect-two-images');
  await page.locator('[data-testid="inspect-tile"][data-name="broken_large_000.png"]').click();
  expect(Math.abs(Number(await page.getByTestId('selected-score').textContent()) - defectiveScore)).toBeLessThan(1e-3);

  // The overlay really draws: full opacity changes the pixels against no overlay.
  await page.getByLabel('Overlay opacity').fill('0');
  const plain = await viewerPixels(page);
  await page.getByLabel('Overlay opacity').fill('1');
  const coloured = await viewerPixels(page);
  const difference = plain.reduce((sum, v, i) => sum + Math.abs(v - coloured[i]!), 0) / plain.length;
  expect(difference).toBeGreaterThan(10);
  await page.getByLabel('Overlay opacity').fill('0.5');
  await page.getByLabel('Colormap').selectOption('inferno');

  // Zoom and side by side.
  const zoom = page.locator('.viewer-zoom');
  const before = await zoom.textContent();
  await page.getByRole('button', { name: 'Zoom in' }).click();
  await expect(zoom).not.toHaveText(before!);
  await page.getByRole('button', { name: 'Side by side' }).click();
  await expect(viewer.locator('canvas')).toHaveCount(2);
  await saveScreenshot(page, 'inspect-side-by-side');

  // A chosen threshold between the two scores decides: defective anomalous, good normal (for a trained model).
  const threshold = (defectiveScore + goodScore) / 2;
  await page.getByTestId('threshold-value').fill(threshold.toFixed(4));
  if (trained) await expect(page.getByTestId('inspect-details')).toContainText('Anomalous');

  // Exports: scores as CSV, the overlay as a PNG of the original size.
  const csvDownload = page.waitForEvent('download');
  await page.getByTestId('export-csv').click();
  const csv = readFileSync((await (await csvDownload).path())!, 'utf8')
    .trim()
    .split('\n');
  expect(csv[0]).toBe('name,score,width,height,anomalous,error');
  const rows = csv.slice(1).map((line) => line.split(','));
  expect(rows.map((r) => r[0]).sort()).toEqual(['broken_large_000.png', 'good_000.png']);
  for (const [, score, width, height, anomalous, error] of rows) {
    expect([width, height, error]).toEqual(['900', '900', '']);
    expect(anomalous).toBe(String(Number(score) >= Number(threshold.toFixed(4))));
  }
  const pngDownload = page.waitForEvent('download');
  await page.getByTestId('export-overlay').click();
  const png = readFileSync((await (await pngDownload).path())!);
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([900, 900]);

  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});

test('a folder streams through with progress and can be cancelled and resumed', async ({ page, baseURL }) => {
  test.setTimeout(300_000);
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto('/');
  // A small random model (64 px): this test is about the queue, not the scores.
  await page.getByRole('tab', { name: 'Models' }).click();
  await page.getByTestId('model-file-input').setInputFiles(randomModelFile('random-small.safetensors'));
  await expect(page.getByTestId('current-model-name')).toHaveText('random-small.safetensors', { timeout: 120_000 });
  await page.getByRole('tab', { name: 'Inspect' }).click();

  // A folder with sub-folders: five original-size bottles in broken_large/, broken_small/, contamination/, good/.
  await page.getByTestId('inspect-folder-input').setInputFiles(join(SHARED, 'data/mvtec-bottle/original/test'));
  const tiles = page.getByTestId('inspect-tile');
  await expect(tiles).toHaveCount(5);
  await expect(page.locator('[data-testid="inspect-tile"][data-name="test/good/001.png"]')).toHaveCount(1);
  const progress = page.getByTestId('inspect-progress');
  await expect(progress).toContainText(/[1-4] \/ 5/, { timeout: 120_000 });
  await expect(progress).toContainText(/(images\/s|s\/image) · .* left/);
  await saveScreenshot(page, 'inspect-progress');
  await progress.getByRole('button', { name: 'Cancel' }).click();
  await expect(progress).toHaveCount(0);
  const cancelled = page.locator('[data-testid="inspect-tile"][data-state="cancelled"]');
  const remaining = await cancelled.count();
  expect(remaining).toBeGreaterThan(0);
  expect(await page.locator('[data-testid="inspect-tile"][data-state="done"]').count()).toBe(5 - remaining);

  await page.getByRole('button', { name: `Analyse ${remaining} again` }).click();
  await expect(page.locator('[data-testid="inspect-tile"][data-state="done"]')).toHaveCount(5, { timeout: 240_000 });
  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});
