import type { Encoder } from '../encoder/encoder.ts';
import type { GpuRuntime } from '../gpu/runtime.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { nchwToNhwc } from '../model/ops/layout.ts';

/**
 * The frozen encoder's layer1..3 features of a batch, on our GPU in the engine's NHWC layout. onnxruntime-web keeps
 * its own device, so the features cross the CPU once per batch (see src/encoder/encoder.ts).
 */
export async function encodeBatch(
  runtime: GpuRuntime,
  encoder: Encoder,
  images: Float32Array,
  batch: number,
): Promise<Tensor[]> {
  const features = await encoder.run(images, batch);
  return [features.layer1, features.layer2, features.layer3].map((f) => {
    const nchw = runtime.upload(f.shape, f.data, 'encoder feature');
    const nhwc = nchwToNhwc(runtime, nchw);
    nchw.dispose();
    return nhwc;
  });
}
