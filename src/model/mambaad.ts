import type { GpuRuntime } from '../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../gpu/tensor.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, ModelConfigError, parseModelConfig, stageGridSize } from './config.ts';
import { type DecoderWeights, decoderForward, loadDecoder } from './decoder.ts';
import { loadMffOceWeights, type MffOceWeights, mffOceForward } from './mffOce.ts';
import { ParameterReader, WeightsError } from './parameters.ts';

/**
 * A loaded MambaAD model: MFF_OCE and the decoder on the GPU (the frozen encoder runs separately, see src/encoder).
 * Weights files use the official state-dict names (`mff_oce.*`, `net_s.*`) and carry their config in the metadata.
 */
export interface MambaAD {
  readonly config: ModelConfig;
  readonly mffOce: MffOceWeights;
  readonly decoder: DecoderWeights;
}

export interface MambaADOutputs {
  /** The one-class embedding, [B, s, s, dims[0]] (s = inputSize / 32). */
  z: Tensor;
  /** Decoder outputs matching the encoder's [layer1, layer2, layer3], NHWC. */
  decoded: Tensor[];
}

export function loadMambaAD(runtime: GpuRuntime, file: SafetensorsFile, what = 'weights file'): MambaAD {
  const json = file.metadata[CONFIG_METADATA_KEY];
  if (json === undefined) {
    throw new ModelConfigError(
      `${what}: no "${CONFIG_METADATA_KEY}" in its metadata, so it is not a MambaAD Studio weights file ` +
        '(official checkpoints convert with training/reference/convert_official.py)',
    );
  }
  const config = parseModelConfig(json, what);
  const reader = new ParameterReader(runtime, file, what);
  let mffOce: MffOceWeights;
  try {
    mffOce = loadMffOceWeights(runtime, file, 'mff_oce.');
  } catch (error) {
    throw new WeightsError(`${what}: ${(error as Error).message}`);
  }
  const decoder = loadDecoder(reader, 'net_s.', config.dims, config.depths, stageGridSize(config, 0), {
    order: config.scan,
    directions: config.directions,
  });
  reader.finish();
  return { config, mffOce, decoder };
}

/** Encoder features [f1, f2, f3] (NHWC) -> the embedding and the decoder's reconstructions of them. */
export function mambaadForward(runtime: GpuRuntime, model: MambaAD, features: readonly Tensor[]): MambaADOutputs {
  const [f1, f2, f3] = features;
  if (!f1 || !f2 || !f3 || features.length !== 3)
    throw new Error(`MambaAD: expected 3 feature maps, got ${features.length}`);
  const expected = model.config.encoderChannels;
  features.forEach((f, i) => {
    if (f.shape.length !== 4 || f.shape[3] !== expected[i]) {
      throw new Error(
        `MambaAD: feature ${i + 1} is ${shapeToString(f.shape)}, expected NHWC with ${expected[i]} channels`,
      );
    }
  });
  const z = mffOceForward(runtime, model.mffOce, f1, f2, f3);
  return { z, decoded: decoderForward(runtime, model.decoder, z) };
}
