import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { CHECKPOINT_FORMAT, CHECKPOINT_METADATA_KEY, optionsDifferences, readCheckpoint } from './checkpoint.ts';

const tensors = { x: { dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) } };
const options = { epochs: 2, batch: 2, seed: 0, lr: 0.005, dropPathRate: 0.2, images: ['a.png', 'b.png'] };
const fileWith = (state: unknown) =>
  writeSafetensors(tensors, { [CHECKPOINT_METADATA_KEY]: typeof state === 'string' ? state : JSON.stringify(state) });

describe('readCheckpoint', () => {
  it('reads the loop position and the run options', () => {
    const state = { format: CHECKPOINT_FORMAT, step: 7, optimizerStep: 7, options, record: { runId: 'r1' } };
    expect(readCheckpoint(fileWith(state)).state).toEqual(state);
  });

  it('refuses a weights file that is not a checkpoint, naming the missing key', () => {
    expect(() => readCheckpoint(writeSafetensors(tensors, { 'mambaad.config': '{}' }), 'model.safetensors')).toThrow(
      `model.safetensors: not a training checkpoint (no "${CHECKPOINT_METADATA_KEY}" in its metadata)`,
    );
  });

  it('names every invalid field', () => {
    const state = { format: 'other', step: -1, optimizerStep: 1.5, options: { ...options, batch: 1, images: [3] } };
    expect(() => readCheckpoint(fileWith(state), 'ckpt')).toThrow(
      'ckpt: invalid checkpoint: format "other", expected "mambaad-checkpoint/1"; step -1 is not a count; ' +
        'optimizerStep 1.5 is not a count; options.batch must be an integer of at least 2; ' +
        'options.images must be a list of image names',
    );
  });

  it('refuses metadata that is not JSON, and truncated files', () => {
    expect(() => readCheckpoint(fileWith('{'), 'ckpt')).toThrow(`ckpt: ${CHECKPOINT_METADATA_KEY} is not valid JSON`);
    const bytes = fileWith({ format: CHECKPOINT_FORMAT, step: 1, optimizerStep: 1, options });
    expect(() => readCheckpoint(bytes.subarray(0, bytes.length - 2), 'ckpt')).toThrow(/ckpt: truncated/);
  });
});

describe('optionsDifferences', () => {
  it('is empty for the same run and names every changed option and the first differing image', () => {
    expect(optionsDifferences(options, { ...options, images: [...options.images] })).toEqual([]);
    expect(optionsDifferences(options, { ...options, batch: 4, images: ['a.png', 'c.png'] })).toEqual([
      'batch 4 (the checkpoint has 2)',
      'images: 2 (the checkpoint has 2); the first difference is image 2: c.png vs b.png',
    ]);
    expect(optionsDifferences(options, { ...options, images: ['a.png'] })).toEqual([
      'images: 1 (the checkpoint has 2)',
    ]);
  });
});
