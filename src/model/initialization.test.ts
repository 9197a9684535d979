import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors } from '../io/safetensors.ts';
import { seededRandom } from '../testing/reference.ts';
import { decoderParameters, mffOceParameters } from './initialization.ts';

const golden = (name: string) =>
  parseSafetensors(
    new Uint8Array(readFileSync(new URL(`../../../shared/spec/golden/${name}.safetensors`, import.meta.url))),
  );

/** The official modules' own parameters and buffers, under `param.`. */
function officialShapes(name: string): Map<string, readonly number[]> {
  const file = golden(name);
  return new Map(
    file.names.filter((n) => n.startsWith('param.')).map((n) => [n.slice('param.'.length), file.tensor(n).shape]),
  );
}

function inventoryShapes(specs: { name: string; shape: readonly number[] }[]): Map<string, readonly number[]> {
  return new Map(specs.map((s) => [s.name, s.shape]));
}

describe('parameter inventory and initialisation', () => {
  it('names and shapes every tensor of the official MFF_OCE', () => {
    expect(inventoryShapes(mffOceParameters('', [64, 128, 256], 512))).toEqual(officialShapes('mff_oce_small'));
  });

  it('names and shapes every tensor of the official small decoder, scan tables included', () => {
    const specs = decoderParameters('', [64, 32, 16, 8], [2, 2, 2, 2], 8, 'hilbert', 8);
    expect(inventoryShapes(specs)).toEqual(officialShapes('mambaupnet_dims64-32-16-8_depths2222_hilbert8'));
    const file = golden('mambaupnet_dims64-32-16-8_depths2222_hilbert8');
    const random = seededRandom(1);
    for (const spec of specs.filter((s) => s.name.includes('scans.index_flat'))) {
      expect([...(spec.init(random) as BigInt64Array)], spec.name).toEqual([
        ...(file.tensor(`param.${spec.name}`).data as BigInt64Array),
      ]);
    }
  });

  it('initialises as MAMBAAD.md §8 says', () => {
    const specs = decoderParameters('', [64, 32, 16, 8], [2, 2, 2, 2], 8, 'hilbert', 8);
    const random = seededRandom(2);
    const value = (suffix: string) => {
      const spec = specs.find((s) => s.name.endsWith(suffix))!;
      return spec.init(random) as Float32Array;
    };
    const aLogs = value('layers_up.0.blocks.0.smm_blocks.0.self_attention.A_logs');
    expect([...aLogs.slice(0, 16)].map((v) => Math.round(Math.exp(v)))).toEqual(
      [...Array(16).keys()].map((i) => i + 1),
    );
    expect(new Set(value('self_attention.Ds'))).toEqual(new Set([1]));
    // dt = softplus(bias) must land in [1e-3, 1e-1].
    const dt = [...value('self_attention.dt_projs_bias')].map((b) => Math.log1p(Math.exp(b)));
    expect(Math.min(...dt)).toBeGreaterThanOrEqual(1e-3 - 1e-12);
    expect(Math.max(...dt)).toBeLessThanOrEqual(1e-1 + 1e-12);
    const inProj = value('layers_up.0.blocks.0.smm_blocks.0.self_attention.in_proj.weight');
    const std = Math.sqrt(inProj.reduce((s, v) => s + v * v, 0) / inProj.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
  });
});
