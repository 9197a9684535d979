import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readDatasetFolders } from './datasetFolders.ts';

const shared = '../shared/data';

describe('readDatasetFolders', () => {
  it('names a <dataset>/256 class folder after its dataset and finds every image and mask', () => {
    const [bottle, tile] = readDatasetFolders([`${shared}/mvtec-bottle/256`, `${shared}/magnetic-tile/256`]);
    expect(bottle?.name).toBe('mvtec-bottle');
    expect(tile?.name).toBe('magnetic-tile');
    // Counts from ../shared/data/README.md.
    expect(bottle?.train).toHaveLength(209);
    expect(bottle?.test).toHaveLength(83);
    expect(tile?.train).toHaveLength(761);
    expect(tile?.test).toHaveLength(398);
    const defect = bottle!.test.find((t) => t.label === 1)!;
    expect(existsSync(defect.path) && existsSync(defect.maskPath!)).toBe(true);
  });

  it('refuses a folder that does not exist', () => {
    expect(() => readDatasetFolders(['/no/such/folder'])).toThrow('--data /no/such/folder: no such folder');
  });
});
