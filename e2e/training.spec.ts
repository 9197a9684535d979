import { expect, type Page, test } from '@playwright/test';
import { saveScreenshot, watchForeignRequests } from './artifacts.ts';

// Two training steps of the small model on SwiftShader, with a reload and a resume in between.
test.setTimeout(12 * 60_000);

const STEP_TIMEOUT = 5 * 60_000;

/** Waits for `ready`, failing at once with the screen's message when the Train screen shows an error instead. */
async function untilReady(page: Page, ready: () => Promise<void>): Promise<void> {
  const alert = page.locator('.train-view [role="alert"]').first();
  const failed = alert.waitFor({ timeout: STEP_TIMEOUT }).then(async () => {
    throw new Error(`the Train screen reports: ${await alert.textContent()}`);
  });
  await Promise.race([ready(), failed]);
  failed.catch(() => undefined);
}

async function openTrain(page: Page): Promise<void> {
  await page.getByRole('tab', { name: 'Train' }).click();
  await expect(page.getByTestId('train-view')).toBeVisible();
}

test('training survives a reload: it resumes from the stored checkpoint and hands the model to the studio', async ({
  page,
  baseURL,
}) => {
  const foreign = watchForeignRequests(page, new URL(baseURL!).origin);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) {
      errors.push(message.text());
    }
  });
  const started = Date.now();
  const elapsed = () => ((Date.now() - started) / 1000).toFixed(0);

  await page.goto('/');
  await openTrain(page);
  // 4 of the bottle set's train/good images, the small model (64 px) with 2 scan directions, batch 2: 2 steps.
  await page.getByTestId('train-set-mvtec-bottle').check();
  await page.getByTestId('train-limit').fill('4');
  await expect(page.getByTestId('train-image-count')).toHaveText(/^4 of \d+ images chosen$/);
  await page.getByTestId('train-size').selectOption('small');
  await page.getByTestId('train-directions').selectOption('2');
  await page.getByTestId('train-epochs').fill('1');
  await page.getByTestId('train-batch').fill('2');
  await page.getByTestId('train-checkpoint-every').fill('1');
  await page.getByTestId('train-model-name').fill('e2e-bottle-small');
  await saveScreenshot(page, 'train-setup');

  await page.getByTestId('train-start').click();
  const stepValue = page.getByTestId('train-step-value');
  const stepSeconds = page.getByTestId('train-step-seconds');
  await untilReady(page, async () => {
    await expect(stepValue).toHaveAttribute('data-step', '1', { timeout: STEP_TIMEOUT });
  });
  // The first step also compiles every GPU pipeline.
  console.log(`training: step 1 done after ${elapsed()} s; the step took ${await stepSeconds.textContent()}`);
  // The checkpoint is in IndexedDB once the worker reports it (its transaction has completed).
  await expect(stepValue).toHaveAttribute('data-checkpoint', '1', { timeout: 60_000 });
  console.log(`training: checkpoint 1 stored after ${elapsed()} s`);
  await expect(page.getByTestId('train-progress')).toContainText('Step 1 / 2');
  await expect(page.getByTestId('train-loss-plot')).toHaveAttribute('data-steps', '1');
  await expect(page.getByTestId('train-loss-chart')).toHaveAttribute('data-rendered', 'true');
  await saveScreenshot(page, 'train-running');

  // Mid-run (step 2 is on the GPU): the reload ends the worker.
  const reloading = Date.now();
  await page.reload();
  // On SwiftShader the new page takes about as long to load as the step still in flight (the GPU process is busy).
  console.log(`training: the reload took ${((Date.now() - reloading) / 1000).toFixed(1)} s`);
  await openTrain(page);
  const resume = page.getByTestId('train-resume-saved');
  await expect(resume).toHaveAttribute('data-step', '1');
  console.log(`training: resume offered ${((Date.now() - reloading) / 1000).toFixed(1)} s after the reload began`);
  await expect(page.getByTestId('train-saved-run')).toContainText('e2e-bottle-small');
  await saveScreenshot(page, 'train-resume-offer');

  const resumedAt = Date.now();
  await resume.click();
  await untilReady(page, async () => {
    await expect(page.getByTestId('train-resumed')).toHaveAttribute('data-step', '1', { timeout: STEP_TIMEOUT });
  });
  // The stored loss of step 1 is shown before any new step runs.
  await expect(page.getByTestId('train-loss-plot')).toHaveAttribute('data-steps', '1');
  await untilReady(page, async () => {
    await expect(page.getByTestId('train-run')).toHaveAttribute('data-phase', 'finished', { timeout: STEP_TIMEOUT });
  });
  console.log(`training: resumed run finished ${((Date.now() - resumedAt) / 1000).toFixed(0)} s after Resume`);
  // Only step 2 ran after the reload: a restart from 0 would have logged step 1 twice.
  await expect(page.getByTestId('train-loss-plot')).toHaveAttribute('data-steps', '1,2');
  await expect(page.getByTestId('train-progress')).toContainText('Step 2 / 2');
  console.log(`training: step 2 took ${await stepSeconds.textContent()} (pipelines compiled again after the reload)`);
  await expect(page.getByTestId('train-loss-chart')).toHaveAttribute('data-rendered', 'true');

  await expect(page.getByTestId('train-result-outcome')).toContainText('is now the studio', { timeout: 120_000 });
  await expect(page.getByTestId('model-state')).toContainText('e2e-bottle-small');
  await expect(page.getByTestId('train-saved-run')).toHaveCount(0);
  await saveScreenshot(page, 'train-finished');
  console.log(`training: whole test ${elapsed()} s`);

  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
});
