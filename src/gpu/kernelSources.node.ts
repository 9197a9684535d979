import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KernelSourceLoader } from './kernels.ts';

/** Node reads kernels/<family>.wgsl from disk, so a GPU server runs exactly the sources in the working tree. */
export function kernelsFromDisk(kernelsDir = join(process.cwd(), 'kernels')): KernelSourceLoader {
  const cache = new Map<string, string>();
  return (family) => {
    let code = cache.get(family);
    if (code === undefined) {
      code = readFileSync(join(kernelsDir, `${family}.wgsl`), 'utf8');
      cache.set(family, code);
    }
    return code;
  };
}
