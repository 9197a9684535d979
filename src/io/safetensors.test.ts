import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors, SafetensorsError, writeSafetensors } from './safetensors.ts';

const golden = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../../shared/spec/golden/${name}`, import.meta.url)));

describe('safetensors', () => {
  it('reads an official golden: dtypes, shapes, metadata', () => {
    const file = parseSafetensors(golden('selective_scan.safetensors'), 'selective_scan');
    expect(file.tensor('input.u').shape).toEqual([2, 16, 64]);
    expect(file.float32('input.u').length).toBe(2 * 16 * 64);
    expect(JSON.parse(file.metadata.case ?? '{}')).toBeTypeOf('object');
  });

  it('round-trips F32, F16, F64, I64 and U8 with metadata', () => {
    const f32 = Float32Array.from([1.5, -2, 3.25, 65504, 1e-7, 0]);
    const bytes = writeSafetensors(
      {
        a: { dtype: 'F32', shape: [2, 3], data: f32 },
        h: { dtype: 'F16', shape: [6], data: f32 },
        d: { dtype: 'F64', shape: [1], data: Float64Array.from([Math.PI]) },
        i: { dtype: 'I64', shape: [2], data: BigInt64Array.from([7n, -1n]) },
        u: { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) },
      },
      { config: '{"x":1}' },
    );
    const file = parseSafetensors(bytes);
    expect([...file.float32('a')]).toEqual([...f32]);
    expect([...file.float32('h')].slice(0, 4)).toEqual([1.5, -2, 3.25, 65504]);
    // 1e-7 is an f16 subnormal: the nearest representable value is 2 * 2^-24.
    expect(file.float32('h')[4]).toBe(2 * 2 ** -24);
    expect(file.tensor('d').data[0]).toBe(Math.PI);
    expect([...(file.tensor('i').data as BigInt64Array)]).toEqual([7n, -1n]);
    expect([...file.tensor('u').data]).toEqual([0, 128, 255]);
    expect(file.metadata.config).toBe('{"x":1}');
  });

  it('names the problem in a truncated, foreign or short file', () => {
    const bytes = golden('patch_expand_d32.safetensors');
    expect(() => parseSafetensors(bytes.subarray(0, bytes.length - 100), 'pe')).toThrow(
      /truncated: tensor ".+" ends at byte/,
    );
    expect(() => parseSafetensors(bytes.subarray(0, 50), 'pe')).toThrow(/truncated: the header claims/);
    expect(() => parseSafetensors(new TextEncoder().encode('\x89PNG\r\n\x1a\n0000000000'), 'png')).toThrow(
      SafetensorsError,
    );
    expect(() => parseSafetensors(new Uint8Array(3))).toThrow(/too short/);
    expect(() => parseSafetensors(bytes, 'pe').tensor('nope')).toThrow(/missing tensor "nope"/);
  });
});
