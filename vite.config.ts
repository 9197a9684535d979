import { resolve } from 'node:path';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { chromiumArgs, chromiumExecutablePath } from './chromium.config.ts';
import { sharedDataPlugin } from './scripts/sharedDataPlugin.ts';

// ../shared holds the data, models and goldens (read-only, beside every checkout and CI clone).
const sharedDir = resolve(import.meta.dirname, '../shared');

const crossOriginIsolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// One config for the app build, the unit tests (Node) and the GPU kernel tests (headless Chromium + WebGPU).
export default defineConfig({
  root: '.',
  plugins: [sharedDataPlugin(sharedDir)],
  define: { __SHARED_DIR__: JSON.stringify(sharedDir) },
  publicDir: 'public',
  // Cross-origin isolation lets onnxruntime-web's wasm backend use threads (SharedArrayBuffer).
  server: { fs: { allow: ['.', sharedDir] }, headers: crossOriginIsolation },
  preview: { headers: crossOriginIsolation },
  build: { target: 'es2022', outDir: 'dist', chunkSizeWarningLimit: 8000 },
  worker: { format: 'es' },
  // @jsquash/webp loads its wasm relative to its own module; pre-bundling would move it. onnxruntime-web is
  // pre-bundled up front so that a cold cache does not reload a page (or a browser test) half-way.
  optimizeDeps: { exclude: ['@jsquash/webp'], include: ['onnxruntime-web'] },
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
