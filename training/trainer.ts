import type { GpuRuntime } from '../src/gpu/runtime.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import type { SafetensorsFile } from '../src/io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, parseModelConfig, stageGridSize } from '../src/model/config.ts';
import { type DecoderWeights, loadDecoder, type Ss2dWeights } from '../src/model/decoder.ts';
import { packScanParameters } from '../src/model/ops/scan.ts';
import { ParameterReader } from '../src/model/parameters.ts';
import { type DropPathScales, decoderBackward, decoderTrainForward } from './decoderTraining.ts';
import { mseLoss } from './loss.ts';
import {
  loadMffOceTrainingWeights,
  type MffOceTrainingWeights,
  mffOceBatchNorms,
  mffOceTrainableParameters,
  mffOceTrainingBackward,
  mffOceTrainingForward,
} from './mffOceTraining.ts';
import type { AdamW, TrainableParameter } from './optimizer.ts';

/**
 * The whole trainable MambaAD (MFF_OCE + decoder; the encoder stays frozen and outside), one training step of
 * MAMBAAD.md §10: forward in training mode, 5·Σ MSE, backward, clip, AdamW. Every parameter is named as in the
 * official state dict (1x1 conv weights held as [out, in], x_proj_weight as [K·(R+2N), D]: the same values).
 */
export interface TrainableMambaAD {
  readonly config: ModelConfig;
  readonly mffOce: MffOceTrainingWeights;
  readonly decoder: DecoderWeights;
  /** Every trainable tensor, `mff_oce.*` then `net_s.*`, in the order gradients are handed to the optimiser. */
  readonly parameters: readonly TrainableParameter[];
}

function ss2dParameters(prefix: string, w: Ss2dWeights): TrainableParameter[] {
  const p = (name: string, param: Tensor) => ({ name: `${prefix}${name}`, param });
  return [
    p('in_proj.weight', w.inProj),
    p('conv2d.weight', w.convWeight),
    p('conv2d.bias', w.convBias),
    p('x_proj_weight', w.xProj),
    p('dt_projs_weight', w.dtProj),
    p('dt_projs_bias', w.deltaBias),
    p('A_logs', w.aLogs),
    p('Ds', w.dSkip),
    p('out_norm.weight', w.outNormWeight),
    p('out_norm.bias', w.outNormBias),
    p('out_proj.weight', w.outProj),
  ];
}

/** The decoder's trainable tensors, named as decoderBackward names their gradients (under `prefix`). */
export function decoderTrainableParameters(prefix: string, w: DecoderWeights): TrainableParameter[] {
  const parameters: TrainableParameter[] = [];
  const add = (name: string, param: Tensor) => parameters.push({ name: `${prefix}${name}`, param });
  for (const [i, stage] of w.stages.entries()) {
    const stagePrefix = `layers_up.${i}.`;
    for (const [j, module] of stage.modules.entries()) {
      const m = `${stagePrefix}blocks.${j}.`;
      for (const [k, block] of module.blocks.entries()) {
        const b = `${m}smm_blocks.${k}.`;
        add(`${b}ln_1.weight`, block.lnWeight);
        add(`${b}ln_1.bias`, block.lnBias);
        parameters.push(...ss2dParameters(`${prefix}${b}self_attention.`, block.ss2d));
      }
      for (const [name, conv] of [
        ['conv1b5.0', module.conv1b5],
        ['conv1a5.0', module.conv1a5],
        ['conv1b7.0', module.conv1b7],
        ['conv1a7.0', module.conv1a7],
        ['finalconv11', module.finalConv],
      ] as const) {
        add(`${m}${name}.weight`, conv.weight);
        add(`${m}${name}.bias`, conv.bias);
      }
      add(`${m}conv55.0.weight`, module.conv55);
      add(`${m}conv77.0.weight`, module.conv77);
    }
    if (stage.upsample) {
      add(`${stagePrefix}upsample.expand.weight`, stage.upsample.expand);
      add(`${stagePrefix}upsample.norm.weight`, stage.upsample.normWeight);
      add(`${stagePrefix}upsample.norm.bias`, stage.upsample.normBias);
    }
  }
  return parameters;
}

/** Loads a weights file (or any source with the official names under `prefix`) for training. */
export function loadTrainableMambaAD(
  runtime: GpuRuntime,
  file: SafetensorsFile,
  what = 'weights file',
): TrainableMambaAD {
  const json = file.metadata[CONFIG_METADATA_KEY];
  if (json === undefined) throw new Error(`${what}: no "${CONFIG_METADATA_KEY}" in its metadata`);
  const config = parseModelConfig(json, what);
  const mffOce = loadMffOceTrainingWeights(runtime, file, 'mff_oce.');
  const reader = new ParameterReader(runtime, file, what);
  const decoder = loadDecoder(reader, 'net_s.', config.dims, config.depths, stageGridSize(config, 0), {
    order: config.scan,
    directions: config.directions,
  });
  reader.finish();
  const parameters = [
    ...mffOceTrainableParameters(mffOce).map((p) => ({ name: `mff_oce.${p.name}`, param: p.param })),
    ...decoderTrainableParameters('net_s.', decoder),
  ];
  return { config, mffOce, decoder, parameters };
}

/** MFF_OCE's BatchNorm running statistics, by official name (for checkpoints and for inference after training). */
export function batchNormStates(model: TrainableMambaAD) {
  return mffOceBatchNorms(model.mffOce);
}

export interface GradientsResult {
  /** [3] per-scale loss terms: the loss is their sum (read it back before applying the update). */
  terms: Tensor;
  /** One gradient per entry of `model.parameters`, in that order. */
  gradients: Tensor[];
}

/**
 * Forward in training mode on encoder features [f1, f2, f3] (NHWC): MFF_OCE with batch statistics (running
 * statistics updated), the decoder with DropPath, the loss 5·Σ MSE, and every parameter's gradient. Records GPU work
 * only. Read `terms` and apply the update only for a finite loss, so a diverged step never touches the weights.
 */
export function forwardBackward(
  runtime: GpuRuntime,
  model: TrainableMambaAD,
  features: readonly Tensor[],
  dropPath?: DropPathScales,
): GradientsResult {
  const [f1, f2, f3] = features;
  if (!f1 || !f2 || !f3) throw new Error(`training step: expected 3 feature maps, got ${features.length}`);
  const mff = mffOceTrainingForward(runtime, model.mffOce, f1, f2, f3);
  const decoded = decoderTrainForward(runtime, model.decoder, mff.z, dropPath ? { dropPath } : {});
  const loss = mseLoss(runtime, features, decoded.outputs);
  const decoderGrads = decoderBackward(runtime, model.decoder, decoded.trace, loss.grads);
  for (const g of loss.grads) g.dispose();
  const mffGrads = mffOceTrainingBackward(runtime, mff.tape, decoderGrads.dx);
  decoderGrads.dx.dispose();
  mff.z.dispose();

  const named = new Map<string, Tensor>();
  for (const [name, g] of mffGrads) named.set(`mff_oce.${name}`, g);
  for (const [name, g] of decoderGrads.grads) named.set(`net_s.${name}`, g);
  const gradients = model.parameters.map((p) => {
    const g = named.get(p.name);
    if (!g) throw new Error(`training step: no gradient for ${p.name}`);
    return g;
  });
  if (named.size !== gradients.length) {
    const extra = [...named.keys()].filter((n) => !model.parameters.some((p) => p.name === n));
    throw new Error(`training step: gradients for unknown parameters: ${extra.slice(0, 5).join(', ')}`);
  }
  return { terms: loss.terms, gradients };
}

/** Clip, AdamW at rate `lr`, repack the scan parameters, and free the gradients. */
export function applyGradients(
  runtime: GpuRuntime,
  model: TrainableMambaAD,
  optimizer: AdamW,
  gradients: readonly Tensor[],
  lr: number,
): void {
  optimizer.step(gradients, lr);
  repackScanParameters(runtime, model.decoder);
  for (const g of gradients) g.dispose();
}

/** The scan kernel reads A, the delta bias and D packed together: repack them after every update. */
function repackScanParameters(runtime: GpuRuntime, decoder: DecoderWeights): void {
  for (const stage of decoder.stages) {
    for (const module of stage.modules) {
      for (const block of module.blocks) {
        const w = block.ss2d;
        const packed = packScanParameters(runtime, { A: w.aLogs, isLog: true, deltaBias: w.deltaBias, Dskip: w.dSkip });
        w.scanParams.dispose();
        w.scanParams = packed;
      }
    }
  }
}
