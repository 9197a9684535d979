import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DatasetLayoutError, parseMvtecLayout } from './mvtecLayout.ts';

const shared = fileURLToPath(new URL('../../../shared/data', import.meta.url));

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

describe('MVTec layout', () => {
  it('reads the bottle set: 209 train, 83 test images, every defect with its mask', () => {
    const root = join(shared, 'mvtec-bottle', '256');
    const dataset = parseMvtecLayout(walk(root).map((p) => `bottle/${relative(root, p)}`));
    expect(dataset.classes.map((c) => c.name)).toEqual(['bottle']);
    const bottle = dataset.classes[0]!;
    expect(bottle.train).toHaveLength(209);
    expect(bottle.test).toHaveLength(83);
    expect(bottle.test.filter((t) => t.label === 0)).toHaveLength(20);
    expect(bottle.test.every((t) => t.label === 0 || t.maskPath?.includes(`ground_truth/${t.defectType}/`))).toBe(true);
  });

  it('reads two classes side by side under one root', () => {
    const paths = ['mvtec-bottle', 'magnetic-tile'].flatMap((name) => {
      const root = join(shared, name, '256');
      return walk(root).map((p) => `data/${name}/${relative(root, p)}`);
    });
    const dataset = parseMvtecLayout(paths);
    expect(dataset.classes.map((c) => [c.name, c.train.length])).toEqual([
      ['magnetic-tile', 761],
      ['mvtec-bottle', 209],
    ]);
  });

  it('names what is wrong with a folder in another layout', () => {
    expect(() => parseMvtecLayout(['photos/a.png', 'photos/b.jpg'])).toThrow(DatasetLayoutError);
    expect(() => parseMvtecLayout(['photos/a.png'])).toThrow(/expected <class>\/train\/good/);
    expect(() =>
      parseMvtecLayout(['screw/train/good/000.png', 'screw/test/scratch/001.png', 'screw/test/good/000.png']),
    ).toThrow(/screw: no ground_truth\/scratch mask for screw\/test\/scratch\/001.png/);
  });
});
