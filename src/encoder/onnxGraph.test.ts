import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseSafetensors, type SafetensorsFile, type TensorToWrite, writeSafetensors } from '../io/safetensors.ts';
import { buildResNetEncoderOnnx, EncoderWeightsError, encodeOnnxModel, type ResNetArch } from './onnxGraph.ts';

const repo = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const FOLDED_WEIGHTS = repo('../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors');
const folded = () => parseSafetensors(new Uint8Array(readFileSync(FOLDED_WEIGHTS)), 'resnet18 folded');

interface CheckSummary {
  ir_version: number;
  opsets: Record<string, number>;
  inputs: { name: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
  op_types: Record<string, number>;
  initializers: number;
  parameters: number;
  initializers_equal_to_weights: number;
}

/** Runs the official onnx checker (Debian python3-onnx) on the model; throws with its stderr when it rejects it. */
function checkWithOnnx(model: Uint8Array, name: string, weightsPath?: string): CheckSummary {
  mkdirSync(repo('build/encoder'), { recursive: true });
  const path = repo(`build/encoder/${name}.onnx`);
  writeFileSync(path, model);
  const args = [repo('scripts/check_onnx_model.py'), path, ...(weightsPath ? ['--weights', weightsPath] : [])];
  return JSON.parse(execFileSync('/usr/bin/python3', args, { encoding: 'utf8', stdio: 'pipe' })) as CheckSummary;
}

/** Copies a file's tensors with edits: `replace` entries override or add tensors, `drop` removes them. */
function editedWeights(
  source: SafetensorsFile,
  replace: Record<string, TensorToWrite>,
  drop: (name: string) => boolean = () => false,
): SafetensorsFile {
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of source.names) {
    if (!drop(name)) tensors[name] = { dtype: 'F32', shape: source.tensor(name).shape, data: source.float32(name) };
  }
  return parseSafetensors(writeSafetensors({ ...tensors, ...replace }), 'edited weights');
}

/** A torchvision-style state dict from the folded file: the same conv weights, no conv bias, BN with given stats. */
function unfoldedResNet18(stats: (channels: number) => Record<string, Float32Array>): SafetensorsFile {
  const source = folded();
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of source.names.filter((n) => n.endsWith('.weight'))) {
    const shape = source.tensor(name).shape;
    tensors[name] = { dtype: 'F32', shape, data: source.float32(name) };
    const conv = name.slice(0, -'.weight'.length);
    const bn = conv === 'conv1' ? 'bn1' : conv.replace(/conv(\d)$/, 'bn$1').replace(/downsample\.0$/, 'downsample.1');
    for (const [param, data] of Object.entries(stats(shape[0]!))) {
      tensors[`${bn}.${param}`] = { dtype: 'F32', shape: [shape[0]!], data };
    }
  }
  return parseSafetensors(writeSafetensors(tensors), 'unfolded resnet18');
}

describe('ONNX protobuf writer', () => {
  it('writes a model the official onnx checker accepts, and the checker does reject a broken graph', () => {
    const graph = {
      name: 'tiny',
      nodes: [{ opType: 'Relu', name: 'relu', inputs: ['x'], outputs: ['y'] }],
      initializers: [],
      inputs: [{ name: 'x', dims: ['n', 3] }],
      outputs: [{ name: 'y', dims: ['n', 3] }],
    };
    const summary = checkWithOnnx(encodeOnnxModel(graph), 'tiny');
    expect(summary).toMatchObject({ ir_version: 8, opsets: { 'ai.onnx': 17 }, op_types: { Relu: 1 } });
    expect(summary.inputs).toEqual([{ name: 'x', dims: ['n', 3] }]);
    const broken = {
      ...graph,
      nodes: [{ opType: 'Relu', name: 'relu', inputs: ['undefined_tensor'], outputs: ['y'] }],
    };
    expect(() => checkWithOnnx(encodeOnnxModel(broken), 'tiny_broken')).toThrow(/onnx\.checker rejected/);
  });

  it('encodes the ResNet18 encoder: checker passes, every initializer equals the weights file bit for bit', () => {
    const summary = checkWithOnnx(buildResNetEncoderOnnx(folded(), 'resnet18'), 'resnet18_folded', FOLDED_WEIGHTS);
    expect(summary.op_types).toEqual({ Conv: 15, Relu: 13, MaxPool: 1, Add: 6 });
    expect(summary.initializers).toBe(30);
    expect(summary.initializers_equal_to_weights).toBe(30);
    expect(summary.inputs).toEqual([{ name: 'image', dims: ['batch', 3, 'height', 'width'] }]);
    expect(summary.outputs.map((o) => [o.name, o.dims[1]])).toEqual([
      ['layer1', 64],
      ['layer2', 128],
      ['layer3', 256],
    ]);
    const fixed = checkWithOnnx(
      buildResNetEncoderOnnx(folded(), 'resnet18', { inputSize: { height: 256, width: 200 } }),
      'resnet18_fixed',
    );
    expect(fixed.outputs.map((o) => o.dims)).toEqual([
      ['batch', 64, 64, 50],
      ['batch', 128, 32, 25],
      ['batch', 256, 16, 13],
    ]);
  });
});

describe('encoder weights validation', () => {
  const fail = (weights: SafetensorsFile, arch: ResNetArch, keyPrefix?: string): string => {
    try {
      buildResNetEncoderOnnx(weights, arch, keyPrefix === undefined ? {} : { keyPrefix });
    } catch (error) {
      expect(error).toBeInstanceOf(EncoderWeightsError);
      return (error as Error).message;
    }
    throw new Error('expected the weights to be rejected');
  };

  it('names every missing block when ResNet18 weights are used as ResNet34', () => {
    const message = fail(folded(), 'resnet34');
    // layer1.2, layer2.2-3, layer3.2-5: 7 blocks x (2 convs x weight+bias).
    expect(message).toMatch(/resnet34 .*BN-folded.*28 problem\(s\)/);
    expect(message).toContain('missing "layer1.2.conv1.weight" [64,64,3,3]');
    expect(message).toContain('missing "layer3.5.conv2.bias" [256]');
  });

  it('names a wrong shape, a missing bias, a wrong dtype and a wrong key prefix', () => {
    const weights = editedWeights(
      folded(),
      {
        'layer2.0.downsample.0.weight': { dtype: 'F32', shape: [128, 64, 3, 3], data: new Float32Array(128 * 64 * 9) },
        'layer1.0.conv1.bias': { dtype: 'U8', shape: [64], data: new Uint8Array(64) },
      },
      (name) => name === 'layer3.1.conv2.bias',
    );
    const message = fail(weights, 'resnet18');
    expect(message).toContain('"layer2.0.downsample.0.weight" has shape [128,64,3,3], expected [128,64,1,1]');
    expect(message).toContain('missing "layer3.1.conv2.bias" [256]');
    expect(message).toContain('"layer1.0.conv1.bias" is U8, expected a float tensor');
    expect(message).toMatch(/3 problem\(s\)/);
    expect(fail(folded(), 'resnet18', 'net_t.')).toMatch(/key prefix "net_t\.".*\n.*missing "net_t\.conv1\.weight"/);
  });

  it('in an unfolded state dict, names a missing BatchNorm statistic and rejects a negative variance', () => {
    const stats = (c: number) => ({
      weight: new Float32Array(c).fill(1),
      bias: new Float32Array(c),
      running_mean: new Float32Array(c),
      running_var: new Float32Array(c).fill(1),
    });
    const unfolded = unfoldedResNet18(stats);
    const withoutVar = editedWeights(unfolded, {}, (name) => name === 'layer2.1.bn2.running_var');
    expect(fail(withoutVar, 'resnet18')).toMatch(
      /unfolded \(conv \+ BatchNorm\).*\n.*missing "layer2.1.bn2.running_var" \[128\]/,
    );
    const negative = editedWeights(unfolded, {
      'layer1.1.bn1.running_var': { dtype: 'F32', shape: [64], data: new Float32Array(64).fill(-1) },
    });
    expect(fail(negative, 'resnet18')).toMatch(/"layer1.1.bn1.running_var"\[0\] is -1; a variance must be >= 0/);
  });

  it('rejects an unknown architecture by name', () => {
    expect(fail(folded(), 'resnet50' as ResNetArch)).toMatch(/unknown encoder architecture "resnet50"/);
  });
});
