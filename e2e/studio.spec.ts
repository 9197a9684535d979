import { expect, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';

test('the studio opens, reports the WebGPU adapter and says no model is loaded', async ({ page, baseURL }) => {
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'MambaAD Studio' })).toBeVisible();
  await expect(page.getByTestId('gpu-status')).toHaveAttribute('data-state', 'ready', { timeout: 60_000 });
  await expect(page.getByTestId('gpu-adapter')).not.toBeEmpty();
  await expect(page.getByTestId('model-state')).toContainText('No model loaded');
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
