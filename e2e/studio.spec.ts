import { existsSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';
import { DEFAULT_MODEL } from './engineTestFiles.ts';

test('the studio opens, reports the WebGPU adapter and loads the default model or says none is loaded', async ({
  page,
  baseURL,
}) => {
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'MambaAD Studio' })).toBeVisible();
  await expect(page.getByTestId('gpu-status')).toHaveAttribute('data-state', 'ready', { timeout: 60_000 });
  await expect(page.getByTestId('gpu-adapter')).not.toBeEmpty();
  if (existsSync(DEFAULT_MODEL)) {
    await expect(page.getByTestId('model-state')).toHaveText('Model: default.safetensors', { timeout: 120_000 });
    await page.getByTestId('model-state').click();
    await expect(page.getByTestId('training-record')).toContainText('epochs');
    await saveScreenshot(page, 'models-default');
    await page.getByRole('tab', { name: 'Inspect' }).click();
  } else {
    // Without a bundled default model the studio says so and shows how to get one.
    await expect(page.getByTestId('model-state')).toHaveText('No model loaded');
    await page.getByTestId('model-state').click();
    await expect(page.getByTestId('no-model')).toContainText('This build has no default model');
    await expect(page.getByTestId('no-model')).toContainText('Load a MambaAD Studio weights file');
    await page.getByRole('tab', { name: 'Inspect' }).click();
  }
  await expect(page.getByTestId('engine-status')).toHaveAttribute('data-encoder', 'ready', { timeout: 120_000 });
  await saveScreenshot(page, 'studio-home');
  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});

test('without WebGPU the studio explains what is missing instead of failing silently', async ({ page }) => {
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
  });
  await page.goto('/');
  const status = page.getByTestId('gpu-status');
  await expect(status).toHaveAttribute('data-state', 'failed', { timeout: 30_000 });
  await expect(status).toContainText('WebGPU is not available');
  await saveScreenshot(page, 'studio-no-webgpu');
});
