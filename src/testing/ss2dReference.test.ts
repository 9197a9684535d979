import { describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray, seededRandom } from './reference.ts';
import { type ScanReferenceInput, selectiveScanBackwardReference, selectiveScanReference } from './ss2dReference.ts';

describe('selectiveScanBackwardReference', () => {
  it('matches central finite differences of the float64 forward for every input', () => {
    const random = seededRandom(11);
    const [K, batch, L, D, N, dtRank] = [2, 2, 7, 3, 16, 2];
    const projWidth = dtRank + 2 * N;
    const deltaRaw = Array.from(randomArray(K * batch * L * D, random, 2));
    // One step on each side of the softplus threshold's linear branch, one far below it.
    deltaRaw[4] = 22;
    deltaRaw[9] = 19.5;
    deltaRaw[17] = -25;
    // Direction 0 walks a shuffled order, direction 1 its reverse.
    const order = [3, 0, 6, 1, 5, 2, 4];
    const input: ScanReferenceInput = {
      batch,
      length: L,
      channels: D,
      directions: K,
      states: N,
      u: Array.from(randomArray(batch * L * D, random, 2)),
      deltaRaw,
      proj: Array.from(randomArray(batch * L * K * projWidth, random)),
      projWidth,
      bOffset: dtRank,
      table: [...order, ...order.toReversed()],
      A: Array.from(randomArray(K * D * N, random), (v) => -Math.exp(v)),
      deltaBias: Array.from(randomArray(K * D, random, 0.5)),
      Dskip: Array.from(randomArray(K * D, random)),
    };
    const dy = randomArray(K * batch * L * D, random);
    const loss = (x: ScanReferenceInput) => selectiveScanReference(x).y.reduce((sum, y, i) => sum + y * dy[i]!, 0);
    const grads = selectiveScanBackwardReference(input, dy);

    const step = 1e-6;
    const numeric = (name: 'u' | 'deltaRaw' | 'proj' | 'A' | 'deltaBias' | 'Dskip') => {
      const values = input[name] as number[];
      return values.map((v, i) => {
        const at = (value: number) => loss({ ...input, [name]: values.with(i, value) });
        return (at(v + step) - at(v - step)) / (2 * step);
      });
    };
    const errors = {
      du: maxRelativeError(grads.du, numeric('u')),
      dDeltaRaw: maxRelativeError(grads.dDeltaRaw, numeric('deltaRaw')),
      dProj: maxRelativeError(grads.dProj, numeric('proj')),
      dA: maxRelativeError(grads.dA, numeric('A')),
      dDeltaBias: maxRelativeError(grads.dDeltaBias, numeric('deltaBias')),
      dDskip: maxRelativeError(grads.dDskip, numeric('Dskip')),
    };
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(1e-7);
    // The dt columns are not read by the scan.
    for (let i = 0; i < grads.dProj.length; i++) {
      if (i % projWidth < dtRank) expect(grads.dProj[i]).toBe(0);
    }
  });
});
