import type { KernelSourceLoader } from './kernels.ts';

// Vite inlines every kernels/*.wgsl as a raw string at build time (browser, workers, Vitest browser mode).
const sources = import.meta.glob<string>('../../kernels/*.wgsl', { query: '?raw', import: 'default', eager: true });

const byFamily = new Map(
  Object.entries(sources).map(([path, code]) => [path.slice(path.lastIndexOf('/') + 1, -'.wgsl'.length), code]),
);

export const loadBundledKernel: KernelSourceLoader = (family) => {
  const code = byFamily.get(family);
  if (code === undefined) throw new Error(`no kernel family "${family}" (kernels/${family}.wgsl is not bundled)`);
  return code;
};
