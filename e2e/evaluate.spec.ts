import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';
import { copyLabelledSubset, tempDir, waitForDefaultModel } from './modelFixtures.ts';

/** Content Security Policy violations (index.html's CSP): plotly must draw without eval or foreign fetches. */
async function watchCspViolations(page: Page): Promise<string[]> {
  const violations: string[] = [];
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline code'}`);
    });
  });
  page.on('console', (message) => {
    if (/Content Security Policy|CSP violation|unsafe-eval/i.test(message.text())) violations.push(message.text());
  });
  return violations;
}

test('evaluates a labelled folder: metrics per class and mean, curves, live threshold figures', async ({
  page,
  baseURL,
}) => {
  // The default model on 2 good + 2 defective images: about a minute each on SwiftShader.
  test.setTimeout(15 * 60_000);
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const csp = await watchCspViolations(page);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const folder = copyLabelledSubset(tempDir('mambaad-e2e-evaluate-'), 'bottle', [
    'good/000.png',
    'good/001.png',
    'broken_large/000.png',
    'contamination/001.png',
  ]);

  await page.goto('/');
  await waitForDefaultModel(page);
  await page.getByRole('tab', { name: 'Evaluate' }).click();
  await page.getByTestId('evaluate-folder-input').setInputFiles(folder);
  await expect(page.getByTestId('evaluate-source-label')).toHaveText('bottle');
  await saveScreenshot(page, 'evaluate-folder-picked');
  await page.getByTestId('evaluate-start').click();
  await expect(page.getByTestId('evaluate-progress')).toBeVisible();
  await expect(page.getByTestId('evaluate-results')).toBeVisible({ timeout: 14 * 60_000 });

  const table = page.getByTestId('metrics-table');
  for (const row of ['bottle', 'mean']) {
    const cells = table.getByTestId(`metrics-row-${row}`).locator('td.metric-value');
    await expect(cells).toHaveCount(8);
    for (const text of await cells.allTextContents()) {
      const value = Number(text);
      expect(value, `${row}: ${text}`).toBeGreaterThanOrEqual(0);
      expect(value, `${row}: ${text}`).toBeLessThanOrEqual(100);
    }
  }
  // The exact definitions are one click away and differ from the benchmark's where they should.
  await page.getByTestId('definition-standard').click();
  await expect(table).toHaveAttribute('data-definition', 'standard');
  await page.getByTestId('definition-benchmark').click();

  for (const plot of ['plot-roc', 'plot-pr', 'plot-pro', 'plot-image-scores', 'plot-pixel-scores']) {
    await expect(page.getByTestId(plot)).toHaveAttribute('data-rendered', 'true', { timeout: 60_000 });
    await expect(page.getByTestId(plot).locator('.main-svg').first()).toBeVisible();
  }
  await expect(page.getByTestId('plot-roc').locator('.scatterlayer .trace')).toHaveCount(2);

  // The slider moves the live figures: all flagged at its low end, none at its high end.
  const slider = page.getByTestId('threshold-slider');
  const max = Number(await slider.getAttribute('max'));
  await slider.fill('0');
  await expect(page.getByTestId('threshold-image-recall')).toHaveText('100.0%');
  await expect(page.getByTestId('threshold-pixel-fpr')).toHaveText('100.0%');
  await expect(page.getByTestId('threshold-image-fpr')).toHaveText('100.0%');
  await slider.fill(String(max));
  await expect(page.getByTestId('threshold-pixel-recall')).toHaveText('0.0%');
  await expect(page.getByTestId('threshold-image-recall')).toHaveText('0.0%');
  await expect(page.getByTestId('threshold-pixel-precision')).toHaveText('—');
  await slider.fill(String(Math.round(max / 2)));
  const middle = await page.getByTestId('threshold-value').textContent();
  await page.getByTestId('threshold-save').click();
  await expect(page.getByTestId('threshold-saved')).toContainText(middle!);
  await saveScreenshot(page, 'evaluate-results');

  expect(csp).toEqual([]);
  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});

test('a folder in another layout is refused with the parser’s message, and nothing else is lost', async ({
  page,
  baseURL,
}) => {
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const dir = tempDir('mambaad-e2e-layout-');
  const good = copyLabelledSubset(dir, 'bottle', ['good/000.png', 'broken_large/000.png']);
  // Holiday photos: images, but no class/test/<type> structure.
  const photos = join(dir, 'holiday');
  mkdirSync(photos);
  copyFileSync(join(good, 'test', 'good', '000.png'), join(photos, 'beach.png'));

  await page.goto('/');
  await page.getByRole('tab', { name: 'Evaluate' }).click();
  await page.getByTestId('evaluate-folder-input').setInputFiles(good);
  await expect(page.getByTestId('evaluate-source-label')).toHaveText('bottle');
  await page.getByTestId('evaluate-folder-input').setInputFiles(photos);
  const error = page.getByTestId('evaluate-source-error');
  await expect(error).toBeVisible();
  await expect(error).toContainText('no images in the MVTec layout');
  await expect(error).toContainText('<class>/test/<type>/*.png');
  // The folder picked before is still the one that would be evaluated.
  await expect(page.getByTestId('evaluate-source-label')).toHaveText('bottle');
  await saveScreenshot(page, 'evaluate-wrong-layout');
  expect(foreign).toEqual([]);
});

test('a sample set from this workplace: fetched from our own origin, analysed with progress, and cancellable', async ({
  page,
  baseURL,
}) => {
  test.setTimeout(5 * 60_000);
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  await page.goto('/');
  await waitForDefaultModel(page);
  await page.getByRole('tab', { name: 'Evaluate' }).click();
  await page.getByTestId('evaluate-sample-select').selectOption('mvtec-bottle');
  await page.getByTestId('evaluate-sample-use').click();
  await expect(page.getByTestId('evaluate-source-label')).toHaveText('mvtec-bottle');
  await expect(page.getByTestId('evaluate-source')).toContainText('broken_large, broken_small, contamination');
  await page.getByTestId('evaluate-per-class').selectOption('4');
  await page.getByTestId('evaluate-start').click();
  const progress = page.getByTestId('evaluate-progress');
  await expect(progress).toContainText('Analysing test images', { timeout: 60_000 });
  await expect(progress).toContainText('/ 4');
  await saveScreenshot(page, 'evaluate-running');
  await progress.getByRole('button', { name: 'Cancel' }).click();
  // Cancelled before the first map (about a minute on SwiftShader) there is nothing to score; after it, the
  // metrics of the images done so far are shown as partial.
  await expect(page.getByTestId('evaluate-error').or(page.getByTestId('evaluate-partial'))).toBeVisible({
    timeout: 120_000,
  });
  if (await page.getByTestId('evaluate-error').isVisible()) {
    await expect(page.getByTestId('evaluate-error')).toHaveText(/cancelled before any image was analysed/);
  }
  await expect(progress).toHaveCount(0);
  expect(foreign).toEqual([]);
});
