import { expect, type Locator, type Page, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';
import { copyLabelledSubset, tempDir, waitForDefaultModel, writeRandomModel } from './modelFixtures.ts';

/** What a canvas shows now, to tell drawings apart. */
function pixels(canvas: Locator): Promise<string> {
  return canvas.evaluate((element) => (element as HTMLCanvasElement).toDataURL());
}

async function pauseAt(page: Page, step: number): Promise<void> {
  const play = page.getByTestId('scans-play');
  if ((await play.getAttribute('aria-pressed')) === 'true') await play.click();
  await page.getByTestId('scans-step').fill(String(step));
}

test('scan paths: five methods, eight directions, grid sizes, animation and an image underneath', async ({
  page,
  baseURL,
}) => {
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto('/');
  await page.getByRole('tab', { name: 'Scans' }).click();
  const main = page.getByTestId('scan-main');
  await expect(main).toHaveAttribute('data-order', 'hilbert');
  await expect(main).toHaveAttribute('data-size', '8');
  // The animation runs by itself.
  const firstStep = Number(await main.getAttribute('data-step'));
  await expect.poll(async () => Number(await main.getAttribute('data-step'))).not.toBe(firstStep);

  await pauseAt(page, 20);
  await expect(page.getByTestId('scans-step-value')).toHaveText('20 / 64');
  const canvases = page.locator('canvas[data-order]');
  // The main view, eight directions of one method and five methods of one direction, all at the same step.
  await expect(canvases).toHaveCount(1 + 8 + 5);
  for (const canvas of await canvases.all()) await expect(canvas).toHaveAttribute('data-step', '20');
  const at20 = await pixels(main);
  await page.getByTestId('scans-step').fill('40');
  expect(await pixels(main)).not.toBe(at20);

  await page.getByTestId('scans-grid').selectOption('16');
  await expect(main).toHaveAttribute('data-size', '16');
  await expect(page.getByTestId('scans-step')).toHaveAttribute('max', '256');
  await page.getByTestId('scans-order').selectOption('zigzag');
  await expect(page.getByTestId('scans-directions').locator('canvas[data-order="zigzag"]')).toHaveCount(8);
  // A small multiple selects its direction, a method tile its method.
  await page
    .getByTestId('scans-directions')
    .getByRole('button', { name: /5: transposed, reversed/ })
    .click();
  await expect(main).toHaveAttribute('data-direction', '5');
  await expect(page.getByTestId('scans-methods').locator('canvas[data-direction="5"]')).toHaveCount(5);
  await page.getByTestId('scans-methods').getByRole('button', { name: 'Hilbert' }).click();
  await expect(main).toHaveAttribute('data-order', 'hilbert');

  const withoutImage = await pixels(main);
  await page.getByTestId('scans-sample-select').selectOption({ label: 'mvtec-bottle broken_large/000.png' });
  await expect(page.getByTestId('scans-image-name')).toHaveText('mvtec-bottle broken_large/000.png');
  await expect.poll(() => pixels(main)).not.toBe(withoutImage);
  await page.getByTestId('scans-step').fill('180');
  await saveScreenshot(page, 'scans-paths');

  await page.getByTestId('scans-play').click();
  await expect.poll(async () => Number(await main.getAttribute('data-step'))).not.toBe(180);
  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});

test('compares two models that differ only in their scan, then loads the user’s model back', async ({
  page,
  baseURL,
}) => {
  // Two models x (one image + a labelled pair) at up to a minute per image on SwiftShader.
  test.setTimeout(15 * 60_000);
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const dir = tempDir('mambaad-e2e-scans-');
  // Same seed: the same weights, only the scan (and so its index tables) differs.
  const hilbert = writeRandomModel(dir, 'hilbert.safetensors', { scan: 'hilbert' });
  const sweep = writeRandomModel(dir, 'sweep.safetensors', { scan: 'sweep' });
  const labelled = copyLabelledSubset(dir, 'bottle', ['good/002.png', 'broken_small/000.png']);

  // ?debug exposes the engine client, so the test can ask which model the engine holds at the end.
  await page.goto('/?debug');
  await waitForDefaultModel(page);
  await page.getByRole('tab', { name: 'Evaluate' }).click();
  await page.getByTestId('evaluate-folder-input').setInputFiles(labelled);
  await expect(page.getByTestId('evaluate-source-label')).toHaveText('bottle');

  await page.getByRole('tab', { name: 'Scans' }).click();
  await page.getByTestId('scans-sample-select').selectOption({ label: 'mvtec-bottle broken_large/000.png' });
  await page.getByTestId('compare-file-input').setInputFiles([hilbert, sweep]);
  await expect(page.getByTestId('compare-model-scan')).toHaveText(['Hilbert', 'Sweep']);
  await expect(page.getByTestId('compare-differences')).toHaveCount(0);
  await page.getByTestId('compare-start').click();
  await expect(page.getByTestId('compare-progress')).toBeVisible();
  await expect(page.getByTestId('compare-metrics').locator('tbody tr')).toHaveCount(2, { timeout: 14 * 60_000 });
  await expect(page.getByTestId('compare-progress')).toHaveCount(0, { timeout: 60_000 });

  await expect(page.getByTestId('compare-map')).toHaveCount(2);
  const scores = await page.getByTestId('compare-score').allTextContents();
  expect(scores).toHaveLength(2);
  for (const text of await page.getByTestId('compare-metrics').locator('td.metric-value').allTextContents()) {
    expect(Number(text), text).toBeGreaterThanOrEqual(0);
    expect(Number(text), text).toBeLessThanOrEqual(100);
  }
  // The user's model (the default one) is the studio's, and the engine's, again.
  await expect(page.getByTestId('model-state')).toHaveText('Model: default.safetensors');
  const engineModel = await page.evaluate(
    () =>
      (globalThis as { mambaadEngine?: { currentStatus: { model?: { name: string } } } }).mambaadEngine?.currentStatus
        .model?.name,
  );
  expect(engineModel).toBe('default.safetensors');
  await page.getByTestId('scan-comparison').scrollIntoViewIfNeeded();
  await saveScreenshot(page, 'scans-comparison');
  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});
