import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../gpu/runtime.ts';
import { createTestRuntime } from '../../testing/gpu.ts';
import { maxAbsoluteError, randomArray, seededRandom } from '../../testing/reference.ts';
import { type BinaryOp, binary, type UnaryOp, unary } from './elementwise.ts';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const unaryReference: Record<UnaryOp, (x: number) => number> = {
  relu: (x) => Math.max(x, 0),
  silu: (x) => x * sigmoid(x),
};
const binaryReference: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  mul: (a, b) => a * b,
  relu_backward: (dy, x) => (x > 0 ? dy : 0),
  silu_backward: (dy, x) => dy * sigmoid(x) * (1 + x * (1 - sigmoid(x))),
};

// Sizes around the workgroup size (256) and one large enough to need a 2-D grid on small limits.
const sizes = [1, 255, 257, 1000, 65_537];

describe('elementwise kernels against float64', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  for (const op of Object.keys(unaryReference) as UnaryOp[]) {
    it(`${op} on ${sizes.join(', ')} elements`, async () => {
      const random = seededRandom(op.length);
      for (const n of sizes) {
        const input = randomArray(n, random, 8);
        const x = runtime.upload([n], input);
        const y = await runtime.read(unary(runtime, op, x));
        expect(maxAbsoluteError(y, Array.from(input, unaryReference[op])), `${op} n=${n}`).toBeLessThan(1e-6);
      }
    });
  }

  for (const op of Object.keys(binaryReference) as BinaryOp[]) {
    it(`${op} on ${sizes.join(', ')} elements`, async () => {
      const random = seededRandom(op.length + 100);
      for (const n of sizes) {
        const [da, db] = [randomArray(n, random, 8), randomArray(n, random, 8)];
        const out = await runtime.read(binary(runtime, op, runtime.upload([n], da), runtime.upload([n], db)));
        const expected = Array.from(da, (a, i) => binaryReference[op](a, db[i]!));
        expect(maxAbsoluteError(out, expected), `${op} n=${n}`).toBeLessThan(1e-5);
      }
    });
  }

  it('rejects operands of different shapes', () => {
    const a = runtime.upload([3], new Float32Array(3));
    const b = runtime.upload([4], new Float32Array(4));
    expect(() => binary(runtime, 'add', a, b)).toThrow(/expected shape \[3\], got \[4\]/);
  });
});
