import type { GpuRuntime } from '../src/gpu/runtime.ts';
import { assertShape, type Tensor } from '../src/gpu/tensor.ts';

/** MAMBAAD.md §10: 5 · Σ over the three scales of the mean squared error (not cosine: that is for inference). */
export const LOSS_WEIGHT = 5;

const WORKGROUP_SIZE = 256;

export interface MseLoss {
  /** [scales]: weight · mean((f − d)²) per scale; the loss is their sum. */
  terms: Tensor;
  /** d loss / d decoded[i], one per scale. */
  grads: Tensor[];
}

/** The loss terms and the gradients with respect to the decoder outputs, recorded without a readback. */
export function mseLoss(
  runtime: GpuRuntime,
  features: readonly Tensor[],
  decoded: readonly Tensor[],
  weight = LOSS_WEIGHT,
): MseLoss {
  if (features.length !== decoded.length) {
    throw new Error(`loss: ${features.length} feature maps for ${decoded.length} decoder outputs`);
  }
  const terms = runtime.empty([features.length], 'loss terms');
  const grads = features.map((f, i) => {
    const d = decoded[i]!;
    assertShape(`loss scale ${i + 1} decoder output`, d.shape, f.shape);
    const grad = runtime.empty(d.shape, `loss grad ${i + 1}`);
    const params = new ArrayBuffer(12);
    new Uint32Array(params, 0, 2).set([f.size, i]);
    new Float32Array(params, 8, 1)[0] = weight / f.size;
    runtime.dispatch({
      kernel: { family: 'loss', entryPoint: 'mse_forward_backward', constants: { WORKGROUP_SIZE } },
      params: new Uint8Array(params),
      buffers: [f, d, terms, grad],
      workgroups: [1],
    });
    return grad;
  });
  return { terms, grads };
}
