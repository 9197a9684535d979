import { describe, expect, test } from 'vitest';
import { parseSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { withMetadata } from './modelLibrary.ts';

describe('withMetadata', () => {
  const original = writeSafetensors(
    {
      a: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      b: { dtype: 'I64', shape: [1], data: BigInt64Array.of(7n) },
    },
    { 'mambaad.config': '{"x":1}', 'mambaad.threshold': '0.5' },
  );

  test('sets and removes keys, keeps the other metadata and every tensor', () => {
    const changed = parseSafetensors(withMetadata(original, { 'mambaad.threshold': '0.25', extra: 'yes' }));
    expect(changed.metadata).toEqual({ 'mambaad.config': '{"x":1}', 'mambaad.threshold': '0.25', extra: 'yes' });
    expect(Array.from(changed.float32('a'))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(changed.tensor('b').data).toEqual(BigInt64Array.of(7n));
    const removed = parseSafetensors(withMetadata(original, { 'mambaad.threshold': undefined }));
    expect(removed.metadata).toEqual({ 'mambaad.config': '{"x":1}' });
  });

  test('keeps the data section 8-byte aligned', () => {
    for (const value of ['1', '12', '123', '1234567']) {
      const bytes = withMetadata(original, { k: value });
      const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect((8 + headerLength) % 8).toBe(0);
    }
  });

  test('refuses a truncated file', () => {
    expect(() => withMetadata(original.subarray(0, 20), {})).toThrow(/truncated/);
  });
});
