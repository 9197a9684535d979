import { describe, expect, it } from 'vitest';
import type { PickedFile } from '../common/files.ts';
import { chooseImages, pickedGroup, type TrainingImageGroup } from './trainingImages.ts';

const picked = (path: string, fromFolder = true): PickedFile => ({
  file: new File([new Uint8Array([1])], path.slice(path.lastIndexOf('/') + 1)),
  path: fromFolder ? path : '',
  fromFolder,
});

const group = (id: string, count: number): TrainingImageGroup => ({
  id,
  label: id,
  detail: '',
  images: Array.from({ length: count }, (_, i) => ({ name: `${id}${i}`, read: async () => new Uint8Array() })),
});

describe('training images', () => {
  it('takes only train/good from a folder with the MVTec layout', () => {
    const { group: g, skipped } = pickedGroup(
      [
        picked('bottle/train/good/000.png'),
        picked('bottle/train/good/001.png'),
        picked('bottle/test/broken_large/000.png'),
        picked('bottle/ground_truth/broken_large/000_mask.png'),
        picked('bottle/readme.txt'),
      ],
      'g',
    );
    expect(g.images.map((i) => i.name)).toEqual(['bottle/train/good/000.png', 'bottle/train/good/001.png']);
    expect(g.detail).toContain('MVTec layout');
    expect(skipped).toBe(1);
  });

  it('takes every image of a plain folder or of picked files, and counts what is not an image', () => {
    const folder = pickedGroup([picked('parts/a.png'), picked('parts/b.jpg'), picked('parts/notes.txt')], 'f');
    expect(folder.group).toMatchObject({ label: 'parts', detail: 'every image in the folder' });
    expect(folder.group.images.map((i) => i.name)).toEqual(['parts/a.png', 'parts/b.jpg']);
    expect(folder.skipped).toBe(1);
    const files = pickedGroup([picked('x.webp', false), picked('y.bmp', false), picked('z.pdf', false)], 'p');
    expect(files.group).toMatchObject({ label: '2 picked files', detail: 'picked files' });
    expect(files.skipped).toBe(1);
  });

  it('chooses at most the limit, in turn from each group', () => {
    const groups = [group('a', 3), group('b', 1), group('c', 2)];
    expect(chooseImages(groups, 4).map((i) => i.name)).toEqual(['a0', 'b0', 'c0', 'a1']);
    expect(chooseImages(groups).map((i) => i.name)).toEqual(['a0', 'b0', 'c0', 'a1', 'c1', 'a2']);
    expect(chooseImages(groups, 100)).toHaveLength(6);
  });
});
