import { describe, expect, it } from 'vitest';
import { seededRandom } from '../src/testing/reference.ts';
import { decoderDropPath, drawDropPathScales, scanStateInterval, stochasticDepthRates } from './decoderTraining.ts';

describe('decoder training settings', () => {
  it('stochastic depth rates per LSS module follow MAMBAAD.md §4 for depths [3, 4, 6, 3]', () => {
    const rates = stochasticDepthRates([3, 4, 6, 3]);
    const expected = [[0.2], [0.16, 0.146667], [0.106667, 0.093333], [0.026667]];
    expect(rates.map((stage) => stage.length)).toEqual([1, 2, 2, 1]);
    rates.flat().forEach((rate, i) => {
      expect(rate).toBeCloseTo(expected.flat()[i] ?? Number.NaN, 6);
    });
  });

  it('DropPath scales are 0 or 1/keep, about keep of them kept, reproducible from the seed; rate 0 is the identity', () => {
    const scales = drawDropPathScales(0.25, 4000, seededRandom(7));
    expect(scales).toBeDefined();
    const values = new Set(scales);
    expect([...values].sort()).toEqual([0, Math.fround(1 / 0.75)]);
    const kept = (scales ?? []).filter((s) => s > 0).length / 4000;
    expect(Math.abs(kept - 0.75)).toBeLessThan(0.03);
    expect(drawDropPathScales(0.25, 4000, seededRandom(7))).toEqual(scales);
    expect(drawDropPathScales(0, 16, seededRandom(7))).toBeUndefined();
    expect(() => drawDropPathScales(1, 16, seededRandom(7))).toThrow(/drop rate/);
  });

  it('the decoder DropPath draws per block at its module rate and names unknown blocks', () => {
    const dropPath = decoderDropPath([3, 4, 6, 3], 2000, seededRandom(3));
    const keptShare = (prefix: string) => (dropPath(prefix) ?? []).filter((s) => s > 0).length / 2000;
    expect(Math.abs(keptShare('layers_up.0.blocks.0.smm_blocks.2.') - 0.8)).toBeLessThan(0.04);
    expect(Math.abs(keptShare('layers_up.3.blocks.0.smm_blocks.0.') - (1 - 0.2 / 15))).toBeLessThan(0.02);
    expect(() => dropPath('layers_up.3.blocks.1.smm_blocks.0.')).toThrow(/not an HSS block/);
  });

  it('keeps a scan state about every √L steps, in multiples of 32', () => {
    expect([64, 256, 1024, 4096, 16384].map(scanStateInterval)).toEqual([32, 32, 32, 64, 128]);
  });
});
