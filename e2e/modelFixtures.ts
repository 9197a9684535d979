import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect, type Page } from '@playwright/test';
import { type TensorToWrite, writeSafetensors } from '../src/io/safetensors.ts';
import { type ModelConfig, PAPER_CONFIG } from '../src/model/config.ts';
import { seededRandom } from '../src/util/random.ts';
import { initialWeightsFile } from '../training/weightsFile.ts';

/** The 256-pixel bottle set beside the checkout (read-only; files are copied out of it, never into the repo). */
export const BOTTLE_256 = join(import.meta.dirname, '..', '..', 'shared', 'data', 'mvtec-bottle', '256');

/**
 * A weights file with the spec's random initialisation, written to the OS temp dir: the e2e tests need a model
 * whatever the repository holds. ResNet18 (the served encoder) with a shallow decoder keeps SwiftShader runs short.
 */
export function writeRandomModel(dir: string, name: string, overrides: Partial<ModelConfig> = {}, seed = 1): string {
  const config: ModelConfig = {
    ...PAPER_CONFIG,
    encoder: 'resnet18',
    encoderChannels: [64, 128, 256],
    dims: [512, 256, 128, 64],
    depths: [2, 2, 2, 2],
    ...overrides,
  };
  const file = initialWeightsFile(config, seededRandom(seed));
  const tensors: Record<string, TensorToWrite> = {};
  for (const tensorName of file.names) {
    const { dtype, shape, data } = file.tensor(tensorName);
    if (dtype !== 'F32' && dtype !== 'I64') throw new Error(`${tensorName}: unexpected dtype ${dtype}`);
    tensors[tensorName] = { dtype, shape, data: data as Float32Array | BigInt64Array };
  }
  const path = join(dir, name);
  writeFileSync(path, writeSafetensors(tensors, file.metadata));
  return path;
}

/** A fresh directory under the OS temp dir. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A small labelled set in the MVTec layout under `root`/<className>: the given bottle test images and, for defects,
 * their masks, copied from the shared 256-pixel set.
 */
export function copyLabelledSubset(root: string, className: string, images: readonly string[]): string {
  for (const image of images) {
    const [type, file] = image.split('/') as [string, string];
    const files = [`test/${type}/${file}`];
    if (type !== 'good') files.push(`ground_truth/${type}/${file.replace(/\.png$/, '_mask.png')}`);
    for (const relative of files) {
      const target = join(root, className, relative);
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(join(BOTTLE_256, relative), target);
    }
  }
  return join(root, className);
}

/** The studio loads the repository's default model (public/models/default.safetensors) on start. */
export async function waitForDefaultModel(page: Page): Promise<void> {
  await expect(page.getByTestId('model-state')).toHaveText('Model: default.safetensors', { timeout: 120_000 });
}
