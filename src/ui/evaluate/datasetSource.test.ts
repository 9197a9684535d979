import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DatasetLayoutError } from '../../data/mvtecLayout.ts';
import { folderSource, limitTestImages, sampleSetsFromIndex, sampleSource } from './datasetSource.ts';

const sharedRoot = fileURLToPath(new URL('../../../../shared/', import.meta.url));

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** The listing /shared/index.json serves (scripts/sharedDataPlugin.ts), from the same folders. */
const index = { files: walk(join(sharedRoot, 'data')).map((p) => relative(sharedRoot, p).split('\\').join('/')) };

describe('sample sets', () => {
  it('lists the 256-pixel sets of the index with their test images', () => {
    const sets = sampleSetsFromIndex(index);
    expect(sets.map((s) => [s.name, s.testImages])).toEqual([
      ['magnetic-tile', 398],
      ['mvtec-bottle', 83],
    ]);
  });

  it('reads the chosen sets as one dataset, one class per set, fetching files by their served URL', async () => {
    const requested: string[] = [];
    const source = sampleSource(sampleSetsFromIndex(index), async (url) => {
      requested.push(url);
      return new Uint8Array([1]);
    });
    expect(source.label).toBe('magnetic-tile + mvtec-bottle');
    expect(source.dataset.classes.map((c) => [c.name, c.test.length])).toEqual([
      ['magnetic-tile', 398],
      ['mvtec-bottle', 83],
    ]);
    const defect = source.dataset.classes[1]!.test.find((t) => t.label === 1)!;
    await source.read(defect.maskPath!);
    expect(requested).toEqual([`shared/data/mvtec-bottle/256/ground_truth/broken_large/000_mask.png`]);
    await expect(source.read('elsewhere/x.png')).rejects.toThrow(/not in the sample sets/);
  });
});

describe('folderSource', () => {
  const file = (name: string) => new File([new Uint8Array([0])], name);

  it('keeps each path’s file and names the source after the picked folder', async () => {
    const paths = ['bottle/train/good/0.png', 'bottle/test/good/1.png', 'bottle/test/cut/2.png'];
    const files = [...paths, 'bottle/ground_truth/cut/2_mask.png'].map((path) => ({
      path: `/${path}`,
      file: file(path),
      fromFolder: true,
    }));
    const source = folderSource(files);
    expect(source.label).toBe('bottle');
    expect(source.dataset.classes[0]!.test.map((t) => t.label)).toEqual([1, 0]);
    expect(await source.read('bottle/ground_truth/cut/2_mask.png')).toBe(files[3]!.file);
  });

  it('throws the parser’s layout error for another layout', () => {
    const photos = [{ path: '/holiday/a.jpg', file: file('a.jpg'), fromFolder: true }];
    expect(() => folderSource(photos)).toThrow(DatasetLayoutError);
    expect(() => folderSource(photos)).toThrow(/^holiday: no images in the MVTec layout/);
  });
});

describe('limitTestImages', () => {
  it('takes images in turn from every defect type, good first, in the class order', () => {
    const image = (defectType: string, i: number) => ({
      path: `${defectType}/${i}.png`,
      defectType,
      label: defectType === 'good' ? (0 as const) : (1 as const),
    });
    const c = {
      name: 'c',
      train: [],
      test: [...[0, 1, 2].map((i) => image('good', i)), image('crack', 0), ...[0, 1].map((i) => image('bent', i))],
    };
    expect(limitTestImages(c, 5).test.map((t) => t.path)).toEqual([
      'good/0.png',
      'good/1.png',
      'crack/0.png',
      'bent/0.png',
      'bent/1.png',
    ]);
    expect(limitTestImages(c, undefined)).toBe(c);
    expect(limitTestImages(c, 10)).toBe(c);
  });
});
