import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors } from '../io/safetensors.ts';
import { maxRelativeError } from '../testing/reference.ts';
import { ss2dCaseFromGolden, ss2dReference } from '../testing/ss2dReference.ts';
import {
  checkPermutation,
  directionsUsed,
  directionTable,
  eightDirectionGathers,
  hilbertDecode2D,
  mergeOrder,
  SCAN_ORDERS,
  scanPermutation,
} from './scanOrders.ts';

const specFile = (path: string) => readFileSync(new URL(`../../../shared/spec/${path}`, import.meta.url));
const readJson = <T>(path: string): T => JSON.parse(specFile(path).toString('utf8')) as T;
const golden = (name: string) => parseSafetensors(new Uint8Array(specFile(`golden/${name}.safetensors`)), name);

const SIZES = [8, 16, 32, 64];

describe('scan orders', () => {
  it('equal the official HSCANS index_flat for all five orders at 8, 16, 32 and 64', () => {
    for (const file of ['scan_perms.json', 'golden/official_scan_orders.json']) {
      const official = readJson<Record<string, Record<string, number[]>>>(file);
      for (const size of SIZES) {
        for (const order of SCAN_ORDERS) {
          const expected = official[String(size)]?.[order];
          expect(expected, `${file} ${order} ${size}`).toBeDefined();
          expect([...scanPermutation(order, size)], `${file} ${order} ${size}`).toEqual(expected);
        }
      }
    }
  });

  it('hilbert: the spec test vectors (corners, first move, Σ t·perm[t])', () => {
    const sums: Record<number, number> = { 8: 65688, 16: 4231504, 32: 270148384, 64: 17243064384 };
    for (const size of SIZES) {
      const perm = scanPermutation('hilbert', size);
      expect(perm[0]).toBe(0);
      expect(perm[perm.length - 1], `ends top-right at ${size}`).toBe(size - 1);
      // The first move is down for an odd number of bits, right for an even one.
      expect(perm[1]).toBe(Math.log2(size) % 2 === 1 ? size : 1);
      expect(perm.reduce((sum, p, t) => sum + t * p, 0)).toBe(sums[size]);
    }
    expect(hilbertDecode2D(1, 3)).toEqual([0, 1]);
  });

  it('the 8 composite direction gathers equal hilbert_8dir_gather.json', () => {
    const official = readJson<Record<string, number[][]>>('hilbert_8dir_gather.json');
    for (const size of SIZES) {
      const gathers = eightDirectionGathers(scanPermutation('hilbert', size), size);
      expect(
        gathers.map((g) => [...g]),
        `size ${size}`,
      ).toEqual(official[String(size)]);
    }
  });

  it('directions used and summation order for 2, 4 and 8 directions', () => {
    expect(directionsUsed(2)).toEqual([0, 4]);
    expect(directionsUsed(4)).toEqual([0, 1, 4, 5]);
    expect(directionsUsed(8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(mergeOrder(2)).toEqual([0, 1]);
    expect(mergeOrder(4)).toEqual([0, 2, 1, 3]);
    expect(mergeOrder(8)).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    const table = directionTable(scanPermutation('zigzag', 8), 8, 4);
    const gathers = eightDirectionGathers(scanPermutation('zigzag', 8), 8);
    expect([...table.subarray(64, 128)]).toEqual([...gathers[1]!]);
    expect([...table.subarray(128, 192)]).toEqual([...gathers[4]!]);
  });

  it('rejects sizes that are not powers of two, bad direction counts and non-permutations', () => {
    expect(() => scanPermutation('hilbert', 12)).toThrow(/power of two/);
    expect(() => directionTable(scanPermutation('sweep', 4), 4, 3 as 4)).toThrow(/2, 4 or 8/);
    expect(() => checkPermutation([0, 1, 1, 3], 4)).toThrow(/entry 2 is 1/);
    expect(() => checkPermutation([0, 1, 2], 4)).toThrow(/3 entries, expected 4/);
    expect(() => eightDirectionGathers(Uint32Array.of(0, 1, 2, 4), 2)).toThrow(/entry 3 is 4/);
  });
});

describe('SS2D float64 reference built on these tables', () => {
  // Matching the official outputs for every order and K = 2, 4, 8 pins down which directions each K uses and the
  // order PyTorch sums them in (a wrong direction set is off by about 1e-3 relative, far above the tolerance).
  const cases = [
    'ss2d_hilbert2_s8_d32',
    'ss2d_hilbert4_s8_d32',
    'ss2d_hilbert8_s16_d64',
    'ss2d_scan4_s16_d32',
    'ss2d_sweep8_s8_d32',
    'ss2d_zigzag8_s16_d32',
    'ss2d_zorder8_s16_d32',
  ];
  for (const name of cases) {
    it(name, () => {
      const file = golden(name);
      const s = ss2dCaseFromGolden(file);
      const order = name.slice('ss2d_'.length).replace(/\d.*$/, '');
      const perm = Uint32Array.from(file.float32('param.scans.index_flat'));
      expect([...perm]).toEqual([...scanPermutation(order as (typeof SCAN_ORDERS)[number], s.size)]);
      expect(maxRelativeError(ss2dReference(s), file.float32('output.0'))).toBeLessThan(1e-5);
    });
  }
});
