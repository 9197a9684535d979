import { parseSafetensors, type SafetensorsFile } from '../io/safetensors.ts';

/**
 * The official goldens live in ../shared/spec/golden beside the repository. Vite's dev server (used by the browser
 * tests) serves files outside the root under /@fs/<absolute path>; vite.config.ts allows ../shared and defines the
 * absolute path at build time as __SHARED_DIR__.
 */
declare const __SHARED_DIR__: string;

export function sharedUrl(relativePath: string): string {
  return `/@fs${__SHARED_DIR__}/${relativePath}`;
}

export function goldenUrl(name: string): string {
  return sharedUrl(`spec/golden/${name}`);
}

export async function fetchShared(relativePath: string): Promise<Uint8Array> {
  const response = await fetch(sharedUrl(relativePath));
  if (!response.ok) throw new Error(`cannot read ../shared/${relativePath}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

export async function loadGolden(name: string): Promise<SafetensorsFile> {
  const file = name.endsWith('.safetensors') ? name : `${name}.safetensors`;
  return parseSafetensors(await fetchShared(`spec/golden/${file}`), file);
}
