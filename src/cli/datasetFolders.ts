import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { type MvtecClass, parseMvtecLayout } from '../data/mvtecLayout.ts';

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/**
 * The classes of MVTec-layout folders given on the command line, with absolute paths. A folder may hold several
 * class folders, or be one itself (it has train/ or test/). A class folder named like a resolution ("256") or
 * "original", as in this workplace's `<dataset>/256/`, takes its parent's name, so classes stay distinguishable.
 */
export function readDatasetFolders(dirs: readonly string[]): MvtecClass[] {
  return dirs.flatMap((given) => {
    const dir = resolve(given);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--data ${given}: no such folder`);
    const isClassFolder = existsSync(join(dir, 'train')) || existsSync(join(dir, 'test'));
    const base = isClassFolder ? dirname(dir) : dir;
    const name = isClassFolder && /^(\d+|original)$/.test(basename(dir)) ? basename(dirname(dir)) : undefined;
    const dataset = parseMvtecLayout(walk(dir).map((f) => relative(base, f)));
    const absolute = (p: string) => join(base, p);
    return dataset.classes.map((c) => ({
      name: name ?? c.name,
      train: c.train.map(absolute),
      test: c.test.map((t) => ({
        ...t,
        path: absolute(t.path),
        ...(t.maskPath ? { maskPath: absolute(t.maskPath) } : {}),
      })),
    }));
  });
}
