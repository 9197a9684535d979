/**
 * The frozen ImageNet ResNet encoder as an ONNX model, generated from a safetensors weights file.
 *
 * Two parts: a minimal ONNX protobuf writer (only the messages and fields the encoder graph needs, field numbers from
 * onnx/onnx.proto) and the ResNet18/34 graph builder, which validates the weights and folds BatchNorm into the convs.
 */

import type { SafetensorsFile } from '../io/safetensors.ts';

// ---------------------------------------------------------------------------------------------------------------
// Protobuf wire encoding. A message is kept as a list of byte chunks so that the large initializers are copied once,
// when the model is finally concatenated.

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;

class ProtoMessage {
  readonly chunks: Uint8Array[] = [];
  byteLength = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.byteLength += bytes.byteLength;
  }

  private tag(field: number, wireType: number): void {
    this.push(encodeVarint(BigInt((field << 3) | wireType)));
  }

  /** int32/int64/enum field; negative values take ten bytes (two's complement), as protobuf specifies. */
  int(field: number, value: number): this {
    if (!Number.isSafeInteger(value)) throw new Error(`ONNX writer: field ${field} needs an integer, got ${value}`);
    this.tag(field, WIRE_VARINT);
    this.push(encodeVarint(BigInt.asUintN(64, BigInt(value))));
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeVarint(BigInt(value.byteLength)));
    this.push(value);
    return this;
  }

  message(field: number, value: ProtoMessage): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeVarint(BigInt(value.byteLength)));
    for (const chunk of value.chunks) this.push(chunk);
    return this;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.byteLength);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out;
  }
}

function encodeVarint(value: bigint): Uint8Array {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Uint8Array.from(bytes);
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX messages (onnx.proto, IR version 8 = opset 17, which Debian's onnx 1.12 checker and onnxruntime-web accept).

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET_VERSION = 17;
const TENSOR_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_INTS = 7;

/** Integer attributes are all this graph needs (kernel shapes, strides, pads). */
export type OnnxAttribute = number | readonly number[];

export interface OnnxNode {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes?: Readonly<Record<string, OnnxAttribute>>;
}

export interface OnnxInitializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** A float32 graph input or output; a string dimension is symbolic (dynamic). */
export interface OnnxValueInfo {
  readonly name: string;
  readonly dims: readonly (number | string)[];
}

export interface OnnxGraph {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxInitializer[];
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
}

function attributeProto(name: string, value: OnnxAttribute): ProtoMessage {
  const attribute = new ProtoMessage().string(1, name);
  if (typeof value === 'number') return attribute.int(3, value).int(20, ATTRIBUTE_INT);
  for (const v of value) attribute.int(8, v);
  return attribute.int(20, ATTRIBUTE_INTS);
}

function nodeProto(node: OnnxNode): ProtoMessage {
  const proto = new ProtoMessage();
  for (const input of node.inputs) proto.string(1, input);
  for (const output of node.outputs) proto.string(2, output);
  proto.string(3, node.name).string(4, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) proto.message(5, attributeProto(name, value));
  return proto;
}

function tensorProto(initializer: OnnxInitializer): ProtoMessage {
  const count = initializer.dims.reduce((n, d) => n * d, 1);
  if (count !== initializer.data.length) {
    throw new Error(
      `ONNX writer: initializer "${initializer.name}" has ${initializer.data.length} values for dims [${initializer.dims.join(',')}]`,
    );
  }
  const proto = new ProtoMessage();
  for (const d of initializer.dims) proto.int(1, d);
  const { buffer, byteOffset, byteLength } = initializer.data;
  // raw_data is little-endian; every host this app runs on is.
  return proto
    .int(2, TENSOR_FLOAT)
    .string(8, initializer.name)
    .bytes(9, new Uint8Array(buffer, byteOffset, byteLength));
}

function valueInfoProto(info: OnnxValueInfo): ProtoMessage {
  const shape = new ProtoMessage();
  for (const d of info.dims) {
    const dimension = new ProtoMessage();
    if (typeof d === 'number') dimension.int(1, d);
    else dimension.string(2, d);
    shape.message(1, dimension);
  }
  const tensorType = new ProtoMessage().int(1, TENSOR_FLOAT).message(2, shape);
  return new ProtoMessage().string(1, info.name).message(2, new ProtoMessage().message(1, tensorType));
}

/** Serialises a graph as an ONNX ModelProto (default domain, opset 17). */
export function encodeOnnxModel(graph: OnnxGraph, producerName = 'mambaad-studio'): Uint8Array {
  const graphProto = new ProtoMessage();
  for (const node of graph.nodes) graphProto.message(1, nodeProto(node));
  graphProto.string(2, graph.name);
  for (const initializer of graph.initializers) graphProto.message(5, tensorProto(initializer));
  for (const input of graph.inputs) graphProto.message(11, valueInfoProto(input));
  for (const output of graph.outputs) graphProto.message(12, valueInfoProto(output));
  return new ProtoMessage()
    .int(1, ONNX_IR_VERSION)
    .string(2, producerName)
    .message(7, graphProto)
    .message(8, new ProtoMessage().string(1, '').int(2, ONNX_OPSET_VERSION))
    .toBytes();
}

// ---------------------------------------------------------------------------------------------------------------
// ResNet encoder (stem + layer1..layer3 of a BasicBlock ResNet), the MambaAD teacher.

export type ResNetArch = 'resnet18' | 'resnet34';

/** The graph builder's architecture for a model config's encoder, or a clear refusal (wide ResNets are not built). */
export function resNetArch(encoder: string): ResNetArch {
  if (encoder === 'resnet18' || encoder === 'resnet34') return encoder;
  throw new Error(`the encoder "${encoder}" is not supported in the studio (ResNet18 and ResNet34 are)`);
}

const BLOCKS_PER_STAGE: Record<ResNetArch, readonly [number, number, number]> = {
  resnet18: [2, 2, 2],
  resnet34: [3, 4, 6],
};
const STAGE_CHANNELS = [64, 128, 256] as const;
const STEM_CHANNELS = 64;
/** torchvision and timm BatchNorm2d default; the spec fixes it for the encoder (§2). */
const BATCH_NORM_EPSILON = 1e-5;

export const ENCODER_INPUT = 'image';
export const ENCODER_OUTPUTS = ['layer1', 'layer2', 'layer3'] as const;
export type EncoderOutputName = (typeof ENCODER_OUTPUTS)[number];

export interface ResNetEncoderOptions {
  /** Prepended to every key, e.g. 'net_t.' for a MambaAD checkpoint that carries the encoder. Default ''. */
  readonly keyPrefix?: string;
  /** Fixes the input height and width in the graph; by default they are symbolic like the batch dimension. */
  readonly inputSize?: { readonly height: number; readonly width: number };
}

export class EncoderWeightsError extends Error {
  override name = 'EncoderWeightsError';
}

/** One conv of the network: where its weights live, its geometry, and (for unfolded files) its BatchNorm. */
interface ConvSpec {
  readonly key: string;
  readonly batchNormKey: string;
  readonly outChannels: number;
  readonly inChannels: number;
  readonly kernel: number;
  readonly stride: number;
}

interface BlockSpec {
  readonly name: string;
  readonly conv1: ConvSpec;
  readonly conv2: ConvSpec;
  readonly downsample: ConvSpec | undefined;
}

function resNetLayout(arch: ResNetArch): { stem: ConvSpec; stages: BlockSpec[][] } {
  const stem: ConvSpec = {
    key: 'conv1',
    batchNormKey: 'bn1',
    outChannels: STEM_CHANNELS,
    inChannels: 3,
    kernel: 7,
    stride: 2,
  };
  let inChannels: number = STEM_CHANNELS;
  const stages = BLOCKS_PER_STAGE[arch].map((blocks, s) => {
    const channels = STAGE_CHANNELS[s]!;
    const stageStride = s === 0 ? 1 : 2;
    return Array.from({ length: blocks }, (_, b): BlockSpec => {
      const name = `layer${s + 1}.${b}`;
      const stride = b === 0 ? stageStride : 1;
      const blockIn = inChannels;
      inChannels = channels;
      const conv = (suffix: string, bn: string, cin: number, kernel: number, convStride: number): ConvSpec => ({
        key: `${name}.${suffix}`,
        batchNormKey: `${name}.${bn}`,
        outChannels: channels,
        inChannels: cin,
        kernel,
        stride: convStride,
      });
      return {
        name,
        conv1: conv('conv1', 'bn1', blockIn, 3, stride),
        conv2: conv('conv2', 'bn2', channels, 3, 1),
        downsample:
          stride !== 1 || blockIn !== channels ? conv('downsample.0', 'downsample.1', blockIn, 1, stride) : undefined,
      };
    });
  });
  return { stem, stages };
}

function allConvs(layout: { stem: ConvSpec; stages: BlockSpec[][] }): ConvSpec[] {
  const convs = [layout.stem];
  for (const block of layout.stages.flat()) {
    convs.push(block.conv1, block.conv2);
    if (block.downsample) convs.push(block.downsample);
  }
  return convs;
}

const BATCH_NORM_PARAMS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

/**
 * Checks every tensor the architecture needs and returns each conv's (BN-folded) weight and bias.
 * A file is "unfolded" when it carries the stem's BatchNorm (torchvision/timm state dict); otherwise every conv must
 * have a bias (BN already folded). All problems are collected and reported together.
 */
function resolveConvWeights(
  weights: SafetensorsFile,
  convs: readonly ConvSpec[],
  keyPrefix: string,
  arch: ResNetArch,
): Map<string, { weight: Float32Array; bias: Float32Array }> {
  const problems: string[] = [];
  const unfolded = weights.has(`${keyPrefix}bn1.running_mean`);
  const check = (key: string, shape: readonly number[]): boolean => {
    const name = keyPrefix + key;
    if (!weights.has(name)) {
      problems.push(`missing "${name}" [${shape.join(',')}]`);
      return false;
    }
    const tensor = weights.tensor(name);
    if (tensor.dtype !== 'F32' && tensor.dtype !== 'F16' && tensor.dtype !== 'F64') {
      problems.push(`"${name}" is ${tensor.dtype}, expected a float tensor`);
      return false;
    }
    if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
      problems.push(`"${name}" has shape [${tensor.shape.join(',')}], expected [${shape.join(',')}]`);
      return false;
    }
    return true;
  };
  const valid = convs.map((conv) => {
    const { outChannels: c } = conv;
    let ok = check(`${conv.key}.weight`, [c, conv.inChannels, conv.kernel, conv.kernel]);
    if (unfolded) {
      for (const param of BATCH_NORM_PARAMS) ok = check(`${conv.batchNormKey}.${param}`, [c]) && ok;
      // torchvision/timm convs have no bias before a BN, but one that has it is folded with it.
      if (weights.has(`${keyPrefix}${conv.key}.bias`)) ok = check(`${conv.key}.bias`, [c]) && ok;
    } else {
      ok = check(`${conv.key}.bias`, [c]) && ok;
    }
    return ok;
  });
  if (problems.length > 0) {
    const format = unfolded ? 'unfolded (conv + BatchNorm)' : 'BN-folded (conv with bias)';
    throw new EncoderWeightsError(
      `weights do not fit ${arch} stem + layer1..layer3 (${format} layout${keyPrefix ? `, key prefix "${keyPrefix}"` : ''}): ` +
        `${problems.length} problem(s):\n  ${problems.join('\n  ')}`,
    );
  }
  const resolved = new Map<string, { weight: Float32Array; bias: Float32Array }>();
  convs.forEach((conv, i) => {
    if (!valid[i]) return;
    const weight = weights.float32(`${keyPrefix}${conv.key}.weight`);
    const biasKey = `${keyPrefix}${conv.key}.bias`;
    const bias = weights.has(biasKey) ? weights.float32(biasKey) : new Float32Array(conv.outChannels);
    resolved.set(conv.key, unfolded ? foldBatchNorm(weights, conv, keyPrefix, weight, bias) : { weight, bias });
  });
  return resolved;
}

/** conv(x)*scale + shift with scale = gamma/sqrt(var+eps), shift = beta - mean*scale, computed in float64. */
function foldBatchNorm(
  weights: SafetensorsFile,
  conv: ConvSpec,
  keyPrefix: string,
  weight: Float32Array,
  bias: Float32Array,
): { weight: Float32Array; bias: Float32Array } {
  const bn = (param: (typeof BATCH_NORM_PARAMS)[number]) =>
    weights.float32(`${keyPrefix}${conv.batchNormKey}.${param}`);
  const [gamma, beta, mean, variance] = [bn('weight'), bn('bias'), bn('running_mean'), bn('running_var')];
  const perChannel = weight.length / conv.outChannels;
  const foldedWeight = new Float32Array(weight.length);
  const foldedBias = new Float32Array(conv.outChannels);
  for (let c = 0; c < conv.outChannels; c++) {
    const v = variance[c]!;
    if (!(v >= 0)) {
      throw new EncoderWeightsError(
        `"${keyPrefix}${conv.batchNormKey}.running_var"[${c}] is ${v}; a variance must be >= 0`,
      );
    }
    const scale = gamma[c]! / Math.sqrt(v + BATCH_NORM_EPSILON);
    for (let k = c * perChannel; k < (c + 1) * perChannel; k++) foldedWeight[k] = weight[k]! * scale;
    foldedBias[c] = (bias[c]! - mean[c]!) * scale + beta[c]!;
  }
  return { weight: foldedWeight, bias: foldedBias };
}

/**
 * Builds the encoder graph: input `image` [N,3,H,W] (ImageNet-normalised), outputs `layer1`, `layer2`, `layer3`
 * (each stage's output after its final ReLU). Weights may be BN-folded or torchvision/timm state dicts with BatchNorm.
 */
export function buildResNetEncoderOnnx(
  weights: SafetensorsFile,
  arch: ResNetArch,
  options: ResNetEncoderOptions = {},
): Uint8Array {
  if (!(arch in BLOCKS_PER_STAGE)) {
    throw new EncoderWeightsError(
      `unknown encoder architecture "${arch}"; expected one of ${Object.keys(BLOCKS_PER_STAGE).join(', ')}`,
    );
  }
  const layout = resNetLayout(arch);
  const convWeights = resolveConvWeights(weights, allConvs(layout), options.keyPrefix ?? '', arch);
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];

  const conv = (spec: ConvSpec, input: string, output: string): string => {
    const { weight, bias } = convWeights.get(spec.key)!;
    initializers.push(
      { name: `${spec.key}.weight`, dims: [spec.outChannels, spec.inChannels, spec.kernel, spec.kernel], data: weight },
      { name: `${spec.key}.bias`, dims: [spec.outChannels], data: bias },
    );
    const pad = (spec.kernel - 1) / 2;
    nodes.push({
      opType: 'Conv',
      name: spec.key,
      inputs: [input, `${spec.key}.weight`, `${spec.key}.bias`],
      outputs: [output],
      attributes: {
        kernel_shape: [spec.kernel, spec.kernel],
        strides: [spec.stride, spec.stride],
        pads: [pad, pad, pad, pad],
        dilations: [1, 1],
        group: 1,
      },
    });
    return output;
  };
  const relu = (name: string, input: string, output = name): string => {
    nodes.push({ opType: 'Relu', name, inputs: [input], outputs: [output] });
    return output;
  };

  let x = relu('relu', conv(layout.stem, ENCODER_INPUT, 'conv1'));
  nodes.push({
    opType: 'MaxPool',
    name: 'maxpool',
    inputs: [x],
    outputs: ['maxpool'],
    attributes: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  });
  x = 'maxpool';
  layout.stages.forEach((blocks, s) => {
    blocks.forEach((block, b) => {
      const h = relu(`${block.name}.relu1`, conv(block.conv1, x, block.conv1.key));
      const y = conv(block.conv2, h, block.conv2.key);
      const shortcut = block.downsample ? conv(block.downsample, x, block.downsample.key) : x;
      nodes.push({ opType: 'Add', name: `${block.name}.add`, inputs: [y, shortcut], outputs: [`${block.name}.add`] });
      // The last block's output is the stage's feature map, named as the graph output.
      const output = b === blocks.length - 1 ? ENCODER_OUTPUTS[s]! : `${block.name}.out`;
      x = relu(`${block.name}.relu2`, `${block.name}.add`, output);
    });
  });

  const height = options.inputSize?.height ?? 'height';
  const width = options.inputSize?.width ?? 'width';
  const outputSize = (dim: number | string, stride: number) =>
    typeof dim === 'number' ? Math.ceil(dim / stride) : `${dim}_s${stride}`;
  return encodeOnnxModel({
    name: `${arch}_encoder_layer1_layer3`,
    nodes,
    initializers,
    inputs: [{ name: ENCODER_INPUT, dims: ['batch', 3, height, width] }],
    outputs: ENCODER_OUTPUTS.map((name, s) => {
      const stride = 4 * 2 ** s;
      return { name, dims: ['batch', STAGE_CHANNELS[s]!, outputSize(height, stride), outputSize(width, stride)] };
    }),
  });
}
