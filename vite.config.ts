import { resolve } from 'node:path';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { chromiumArgs, chromiumExecutablePath } from './chromium.config.ts';

// ../shared holds the data, models and goldens (read-only, beside every checkout and CI clone).
const sharedDir = resolve(import.meta.dirname, '../shared');

// One config for the app build, the unit tests (Node) and the GPU kernel tests (headless Chromium + WebGPU).
export default defineConfig({
  root: '.',
  define: { __SHARED_DIR__: JSON.stringify(sharedDir) },
  publicDir: 'public',
  server: { fs: { allow: ['.', sharedDir] } },
  build: { target: 'es2022', outDir: 'dist', chunkSizeWarningLimit: 8000 },
  worker: { format: 'es' },
  // @jsquash/webp loads its wasm relative to its own module; pre-bundling would move it.
  optimizeDeps: { exclude: ['@jsquash/webp'] },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          environment: 'node',
          include: ['src/**/*.test.ts', 'training/**/*.test.ts', 'scripts/**/*.test.ts'],
          exclude: ['**/*.gpu.test.ts', '**/node_modules/**'],
          testTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'gpu',
          include: ['src/**/*.gpu.test.ts', 'training/**/*.gpu.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({ launchOptions: { executablePath: chromiumExecutablePath, args: chromiumArgs } }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
