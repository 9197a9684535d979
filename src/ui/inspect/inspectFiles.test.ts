import { describe, expect, test } from 'vitest';
import type { InspectItem } from '../../store/inspectStore.ts';
import { keepUseful, type PickedFile } from '../common/files.ts';
import { scoresCsv, scoresJson } from './exportScores.ts';
import { galleryOrder } from './Gallery.tsx';
import { samplesFromIndex } from './samples.ts';

function item(id: string, state: InspectItem['state'], score?: number, error?: string): InspectItem {
  const result =
    score === undefined
      ? undefined
      : {
          id,
          name: `${id}.png`,
          ok: true as const,
          score,
          width: 900,
          height: 600,
          map: new Float32Array(4),
          size: 2,
          modelInput: new Uint8Array(12),
        };
  return { id, name: `${id}.png`, source: new Blob(), state, result, error };
}

describe('Inspect helpers', () => {
  test('the gallery shows analysed images by descending score, then pending, then failed ones', () => {
    const order = galleryOrder([
      item('low', 'done', 0.1),
      item('bad', 'failed', undefined, 'broken'),
      item('wait', 'queued'),
      item('high', 'done', 0.9),
      item('now', 'analyzing'),
    ]).map((i) => i.id);
    expect(order).toEqual(['high', 'low', 'now', 'wait', 'bad']);
  });

  test('CSV and JSON exports: one row per analysed or failed image, a verdict only with a threshold', () => {
    const items = [item('a,b', 'done', 0.5), item('c', 'failed', undefined, 'said "no"'), item('q', 'queued')];
    expect(scoresCsv(items, { modelName: 'm', threshold: 0.4 })).toBe(
      'name,score,width,height,anomalous,error\n"a,b.png",0.5,900,600,true,\nc.png,,,,,"said ""no"""\n',
    );
    expect(scoresCsv(items, { modelName: 'm', threshold: undefined }).split('\n')[1]).toBe('"a,b.png",0.5,900,600,,');
    expect(JSON.parse(scoresJson(items, { modelName: 'm', threshold: undefined }))).toEqual({
      model: 'm',
      threshold: null,
      images: [
        { name: 'a,b.png', score: 0.5, width: 900, height: 600 },
        { name: 'c.png', error: 'said "no"' },
      ],
    });
  });

  test('samples are the original-size test images of each shared data set', () => {
    const samples = samplesFromIndex([
      'data/mvtec-bottle/original/test/broken_large/000.png',
      'data/mvtec-bottle/original/ground_truth/broken_large/000_mask.png',
      'data/mvtec-bottle/original/train/good/000.png',
      'data/mvtec-bottle/256/test/good/000.png',
      'data/magnetic-tile/original/test/good/exp1_num_10903.jpg',
      'models/resnet18-imagenet-l1-l3-bnfolded.safetensors',
    ]);
    expect(samples.map((s) => [s.dataset, s.category, s.fileName])).toEqual([
      ['mvtec-bottle', 'broken_large', '000.png'],
      ['magnetic-tile', 'good', 'exp1_num_10903.jpg'],
    ]);
  });

  test('files picked one by one are all kept; inside folders only images and weights files', () => {
    const picked = (name: string, fromFolder: boolean): PickedFile => ({
      file: new File([], name),
      path: fromFolder ? `/dir/${name}` : '',
      fromFolder,
    });
    const { kept, skipped } = keepUseful([
      picked('notes.txt', false),
      picked('a.PNG', true),
      picked('Thumbs.db', true),
      picked('model.safetensors', true),
    ]);
    expect(kept.map((f) => f.file.name)).toEqual(['notes.txt', 'a.PNG', 'model.safetensors']);
    expect(skipped).toBe(1);
  });
});
