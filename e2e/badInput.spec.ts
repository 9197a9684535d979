import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';
import {
  hugePng,
  mismatchedModelBytes,
  randomModelFile,
  SHARED,
  textAsPng,
  truncatedFile,
  truncatedPng,
} from './engineTestFiles.ts';

/** Small (256 px) real images, so the analyses these tests need stay short on a software GPU. */
const GOOD_IMAGE = join(SHARED, 'data/mvtec-bottle/256/test/good/000.png');
const OTHER_IMAGE = join(SHARED, 'data/mvtec-bottle/256/test/broken_small/000.png');
const ENCODER_WEIGHTS = join(SHARED, 'models/resnet18-imagenet-l1-l3-bnfolded.safetensors');

function file(name: string, buffer: Buffer, mimeType = 'image/png') {
  return { name, mimeType, buffer };
}

/** Loads a small random-weights model through Models and comes back to Inspect. */
async function loadSmallModel(page: Page): Promise<void> {
  await page.getByRole('tab', { name: 'Models' }).click();
  await page.getByTestId('model-file-input').setInputFiles(randomModelFile('random-small.safetensors'));
  await expect(page.getByTestId('current-model-name')).toHaveText('random-small.safetensors', { timeout: 120_000 });
  await page.getByRole('tab', { name: 'Inspect' }).click();
}

function tile(page: Page, name: string) {
  return page.locator(`[data-testid="inspect-tile"][data-name="${name}"]`);
}

test.describe('bad input gets a clear message and the session carries on', () => {
  let foreign: string[];
  let errors: string[];

  test.beforeEach(async ({ page, baseURL }) => {
    foreign = watchForeignRequests(page, new URL(baseURL!).origin);
    errors = [];
    page.on('pageerror', (error) => errors.push(error.message));
  });

  test.afterEach(() => {
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
  });

  test('a non-image, a cut-off PNG and a 20000x20000 PNG fail one by one; a good image in the same drop works', async ({
    page,
  }) => {
    test.setTimeout(300_000);
    await page.goto('/');
    await loadSmallModel(page);
    await page
      .getByTestId('inspect-file-input')
      .setInputFiles([
        file('notes.png', textAsPng()),
        file('cut.png', truncatedPng()),
        file('huge.png', hugePng()),
        file('good.png', readFileSync(GOOD_IMAGE)),
      ]);
    // One more non-image, dropped onto the screen instead of picked.
    const dropped = await page.evaluateHandle(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['{"not": "an image"}'], 'dropped.jpg', { type: 'image/jpeg' }));
      return transfer;
    });
    await page.getByTestId('inspect-view').dispatchEvent('drop', { dataTransfer: dropped });
    await expect(tile(page, 'dropped.jpg')).toHaveAttribute('data-state', 'failed', { timeout: 120_000 });
    await expect(tile(page, 'dropped.jpg')).toContainText('not a PNG, JPEG, WebP or BMP image');
    await expect(tile(page, 'notes.png')).toHaveAttribute('data-state', 'failed', { timeout: 120_000 });
    await expect(tile(page, 'notes.png')).toContainText('not a PNG, JPEG, WebP or BMP image');
    await expect(tile(page, 'cut.png')).toHaveAttribute('data-state', 'failed');
    await expect(tile(page, 'cut.png')).toContainText('truncated PNG');
    await expect(tile(page, 'huge.png')).toHaveAttribute('data-state', 'failed');
    await expect(tile(page, 'huge.png')).toContainText('20000x20000');
    await expect(tile(page, 'huge.png')).toContainText('make the image smaller');
    await expect(tile(page, 'good.png')).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
    await tile(page, 'huge.png').click();
    await expect(page.getByTestId('selected-error')).toContainText('over the limit');
    await saveScreenshot(page, 'bad-input-images');
    // The failures cost nothing else: the good image's map is shown and the summary counts it.
    await tile(page, 'good.png').click();
    await expect(page.getByTestId('inspect-viewer')).toHaveAttribute('data-ready', 'true');
    await expect(page.getByText('1 of 5 images analysed')).toBeVisible();
  });

  test('a weights file for another config or a cut-off one: the loader says why and the model stays', async ({
    page,
  }) => {
    test.setTimeout(180_000);
    await page.goto('/');
    await loadSmallModel(page);
    await page.getByRole('tab', { name: 'Models' }).click();
    const input = page.getByTestId('model-file-input');
    await input.setInputFiles(file('other-config.safetensors', mismatchedModelBytes(), 'application/octet-stream'));
    const error = page.getByTestId('model-error');
    await expect(error).toContainText('other-config.safetensors', { timeout: 120_000 });
    await expect(error).toContainText(/missing "net_s\./);
    await expect(page.getByTestId('current-model-name')).toHaveText('random-small.safetensors');
    await saveScreenshot(page, 'bad-input-weights');
    await input.setInputFiles(
      file(
        'cut.safetensors',
        truncatedFile(randomModelFile('random-small.safetensors'), 0.9),
        'application/octet-stream',
      ),
    );
    await expect(error).toContainText('cut.safetensors: truncated');
    await expect(page.getByTestId('model-state')).toHaveText('Model: random-small.safetensors');
  });

  test('encoder weights not served: the studio explains and takes the file from the user', async ({ page }) => {
    await page
      .context()
      .route('**/shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors', (route) =>
        route.fulfill({ status: 404, body: 'not found' }),
      );
    await page.goto('/');
    const status = page.getByTestId('engine-status');
    await expect(status).toHaveAttribute('data-encoder', 'missing', { timeout: 60_000 });
    await expect(status).toContainText('were not found');
    await saveScreenshot(page, 'bad-input-no-encoder');
    // A wrong file first: the engine says why and still asks for the right one.
    await page.getByTestId('encoder-file-input').setInputFiles(randomModelFile('random-small.safetensors'));
    await expect(page.getByTestId('encoder-file-error')).toContainText('do not fit resnet18', { timeout: 60_000 });
    await expect(status).toContainText('were not found');
    await expect(status).toHaveAttribute('data-encoder', 'missing');
    await page.getByTestId('encoder-file-input').setInputFiles(ENCODER_WEIGHTS);
    await expect(status).toHaveAttribute('data-encoder', 'ready', { timeout: 120_000 });
  });

  test('without WebGPU the engine explains it, and the rest of the studio still works', async ({ page }) => {
    await page.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
    await page.goto('/');
    const status = page.getByTestId('engine-status');
    await expect(status).toHaveAttribute('data-gpu', 'failed', { timeout: 30_000 });
    await expect(status).toContainText('WebGPU is not available');
    await expect(status).toContainText('Browsing scans and managing models still work');
    await expect(page.getByTestId('inspect-unavailable')).toContainText('Inspect needs WebGPU');
    await saveScreenshot(page, 'bad-input-no-webgpu');
    await page.getByRole('tab', { name: 'Models' }).click();
    await expect(page.getByTestId('model-library')).toContainText('The library is empty');
    await page.getByRole('tab', { name: 'Scans' }).click();
    await expect(page.getByTestId('scans-view')).toBeVisible();
  });

  test('GPU device lost in the middle of an image: that image fails, the engine recovers without a reload', async ({
    page,
  }) => {
    test.setTimeout(300_000);
    await page.goto('/?debug');
    await loadSmallModel(page);
    await page.getByTestId('inspect-file-input').setInputFiles(file('before.png', readFileSync(GOOD_IMAGE)));
    await expect(tile(page, 'before.png')).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
    // A marker that a page reload would wipe.
    await page.evaluate(() => {
      (window as { sessionMarker?: number }).sessionMarker = 42;
    });

    await page.evaluate(() =>
      (window as unknown as { mambaadEngine: { loseDevice(when: string): Promise<void> } }).mambaadEngine.loseDevice(
        'next-image',
      ),
    );
    await page.getByTestId('inspect-file-input').setInputFiles(file('during.png', readFileSync(OTHER_IMAGE)));
    await expect(tile(page, 'during.png')).toHaveAttribute('data-state', 'failed', { timeout: 120_000 });
    await expect(tile(page, 'during.png')).toContainText('The GPU device was lost');
    const status = page.getByTestId('engine-status');
    await expect(status).toHaveAttribute('data-gpu', 'ready', { timeout: 120_000 });
    await expect(status).toContainText('Recovered from a GPU device loss');
    await saveScreenshot(page, 'bad-input-device-lost');

    await page.getByRole('button', { name: 'Analyse 1 again' }).click();
    await expect(tile(page, 'during.png')).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
    await expect(tile(page, 'before.png')).toHaveAttribute('data-state', 'done');
    expect(await page.evaluate(() => (window as { sessionMarker?: number }).sessionMarker)).toBe(42);
  });
});
