import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { parseSafetensors } from '../src/io/safetensors.ts';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';
import { randomModelFile, SHARED, truncatedFile } from './engineTestFiles.ts';

const ENCODER_WEIGHTS = join(SHARED, 'models/resnet18-imagenet-l1-l3-bnfolded.safetensors');

async function openModels(page: Page): Promise<void> {
  await page.getByRole('tab', { name: 'Models' }).click();
  await expect(page.getByTestId('models-view')).toBeVisible();
}

async function expectRefused(page: Page, file: Parameters<Page['setInputFiles']>[1], message: RegExp): Promise<void> {
  await page.getByTestId('model-file-input').setInputFiles(file);
  await expect(page.getByTestId('model-error')).toContainText(message, { timeout: 60_000 });
  await expect(page.getByTestId('model-error')).toContainText(
    'The current model (random-small.safetensors) is still loaded',
  );
  await expect(page.getByTestId('current-model-name')).toHaveText('random-small.safetensors');
}

test('Models: load a file, refuse foreign and truncated ones (model kept), save to the library, reload, load it back', async ({
  page,
  baseURL,
}) => {
  test.setTimeout(300_000);
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const modelPath = randomModelFile('random-small.safetensors');
  await page.goto('/');
  await openModels(page);

  await page.getByTestId('model-file-input').setInputFiles(modelPath);
  await expect(page.getByTestId('current-model-name')).toHaveText('random-small.safetensors', { timeout: 120_000 });
  await expect(page.getByTestId('model-state')).toHaveText('Model: random-small.safetensors');
  await expect(page.getByTestId('current-model')).toContainText('resnet18 (channels 64, 128, 256)');
  await expect(page.getByTestId('current-model')).toContainText('64 × 64');
  await expect(page.getByTestId('current-model-parameters')).not.toBeEmpty();

  // A safetensors file that is not a MambaAD model, one cut short, and one that is not safetensors at all.
  await expectRefused(page, ENCODER_WEIGHTS, /not a MambaAD Studio weights file/);
  await expectRefused(
    page,
    { name: 'cut.safetensors', mimeType: 'application/octet-stream', buffer: truncatedFile(modelPath) },
    /truncated/,
  );
  await expectRefused(
    page,
    { name: 'notes.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('not weights at all') },
    /not a safetensors file/,
  );
  await saveScreenshot(page, 'models-refused');

  // Save with a threshold, then find it in the library after a reload.
  await page.getByTestId('model-threshold').fill('0.4213');
  await page.getByLabel('Model name').fill('bottle-check');
  await page.getByTestId('save-to-library').click();
  await expect(page.locator('[data-testid="library-entry"][data-name="bottle-check"]')).toBeVisible();

  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download .safetensors' }).click();
  const saved = parseSafetensors(new Uint8Array(readFileSync((await (await download).path())!)));
  expect(saved.metadata['mambaad.threshold']).toBe('0.4213');
  expect(saved.metadata['mambaad.config']).toContain('"input_size":64');

  await page.reload();
  await expect(page.getByTestId('model-state')).not.toHaveText(/random-small/);
  await openModels(page);
  const entry = page.locator('[data-testid="library-entry"][data-name="bottle-check"]');
  await expect(entry).toBeVisible();
  await entry.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('current-model-name')).toHaveText('bottle-check', { timeout: 120_000 });
  await expect(page.getByTestId('model-threshold')).toHaveValue('0.4213');
  await expect(page.getByTestId('model-state')).toHaveText('Model: bottle-check');
  await saveScreenshot(page, 'models-library');

  // Clean up, so the next run starts from an empty library.
  page.once('dialog', (dialog) => void dialog.accept());
  await entry.getByRole('button', { name: 'Delete' }).click();
  await expect(entry).toHaveCount(0);

  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});
