import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { createTestRuntime } from '../src/testing/gpu.ts';
import { maxRelativeError, randomArray, seededRandom } from '../src/testing/reference.ts';
import { AdamW, BENCHMARK_OPTIMIZER, decays, type OptimizerOptions, stepLearningRate } from './optimizer.ts';

// A weight decay large enough that forgetting it, or decaying the wrong group, shows above the tolerance.
const OPTIONS: OptimizerOptions = { ...BENCHMARK_OPTIMIZER, weightDecay: 0.5 };

/** torch.optim.AdamW + clip_grad_norm_ in float64, as documented by PyTorch. */
function referenceSteps(
  params: { name: string; shape: number[]; value: Float64Array }[],
  gradSteps: Float32Array[][],
  lrs: number[],
) {
  const o = OPTIONS;
  const m = params.map((p) => new Float64Array(p.value.length));
  const v = params.map((p) => new Float64Array(p.value.length));
  const norms: number[] = [];
  gradSteps.forEach((grads, s) => {
    const t = s + 1;
    const norm = Math.sqrt(grads.reduce((sum, g) => sum + g.reduce((a, x) => a + x * x, 0), 0));
    norms.push(norm);
    const coef = Math.min(1, o.maxGradNorm / (norm + 1e-6));
    params.forEach((p, i) => {
      const wd = decays(p.name, p.shape) ? o.weightDecay : 0;
      const lr = lrs[s]!;
      for (let j = 0; j < p.value.length; j++) {
        const g = grads[i]![j]! * coef;
        p.value[j]! *= 1 - lr * wd;
        m[i]![j] = o.beta1 * m[i]![j]! + (1 - o.beta1) * g;
        v[i]![j] = o.beta2 * v[i]![j]! + (1 - o.beta2) * g * g;
        const denom = Math.sqrt(v[i]![j]!) / Math.sqrt(1 - o.beta2 ** t) + o.eps;
        p.value[j]! -= (lr / (1 - o.beta1 ** t)) * (m[i]![j]! / denom);
      }
    });
  });
  return { m, v, norms };
}

describe('AdamW with global-norm clipping', () => {
  let runtime: GpuRuntime;
  beforeAll(async () => {
    runtime = await createTestRuntime();
  });
  afterAll(() => runtime.destroy());

  it('groups weight decay as ADer does', () => {
    expect(decays('net_s.layers_up.0.blocks.0.smm_blocks.0.self_attention.A_logs', [1024, 16])).toBe(true);
    expect(decays('net_s.layers_up.0.blocks.0.smm_blocks.0.self_attention.dt_projs_bias', [8, 1024])).toBe(true);
    expect(decays('net_s.layers_up.0.blocks.0.smm_blocks.0.self_attention.Ds', [8192])).toBe(false);
    expect(decays('mff_oce.conv21.bias', [128])).toBe(false);
    expect(decays('mff_oce.conv21.weight', [128, 128, 1, 1])).toBe(true);
  });

  it('drops the rate ×0.1 at 80% of the iterations', () => {
    expect(stepLearningRate(0.005, 0, 1000)).toBe(0.005);
    expect(stepLearningRate(0.005, 799, 1000)).toBe(0.005);
    expect(stepLearningRate(0.005, 800, 1000)).toBeCloseTo(0.0005, 12);
  });

  it('matches a float64 AdamW over 3 steps, clipping only when the norm exceeds 5', async () => {
    const random = seededRandom(5);
    const specs = [
      { name: 'a.weight', shape: [5, 61] },
      { name: 'b.bias', shape: [300] },
      { name: 'c.A_logs', shape: [37, 3] },
    ];
    const initial = specs.map((s) =>
      randomArray(
        s.shape.reduce((n, d) => n * d, 1),
        random,
      ),
    );
    // Step 1 has a large norm (clipped), steps 2 and 3 small ones (not clipped).
    const gradSteps = [4, 0.01, 0.02].map((scale) => initial.map((p) => randomArray(p.length, random, scale)));
    const lrs = [0.005, 0.005, 0.0005];
    const tensors = specs.map((s, i) => ({ name: s.name, param: runtime.upload(s.shape, initial[i]!) }));
    const optimizer = new AdamW(runtime, tensors, OPTIONS);
    const gradTensors: ReturnType<GpuRuntime['upload']>[] = [];
    for (const [s, grads] of gradSteps.entries()) {
      const uploaded = grads.map((g, i) => runtime.upload(specs[i]!.shape, g));
      gradTensors.push(...uploaded);
      optimizer.step(uploaded, lrs[s]!);
      await runtime.flush();
    }
    const reference = specs.map((s, i) => ({ ...s, value: Float64Array.from(initial[i]!) }));
    const { m, v, norms } = referenceSteps(reference, gradSteps, lrs);
    const [, lastNorm] = await runtime.read(optimizer.clip);
    expect(Math.abs(lastNorm! - norms[2]!) / norms[2]!).toBeLessThan(1e-5);
    expect(norms[0]).toBeGreaterThan(5);
    const state = optimizer.state();
    for (const [i, t] of tensors.entries()) {
      expect(maxRelativeError(await runtime.read(t.param), reference[i]!.value), `${t.name} param`).toBeLessThan(1e-6);
      expect(maxRelativeError(await runtime.read(state.m[i]!), m[i]!), `${t.name} m`).toBeLessThan(1e-5);
      expect(maxRelativeError(await runtime.read(state.v[i]!), v[i]!), `${t.name} v`).toBeLessThan(1e-5);
    }
    expect(state.step).toBe(3);
  });
});
