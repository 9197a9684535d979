#!/usr/bin/python3
"""PyTorch float64 reference features for the ONNX ResNet encoder tests (src/encoder/*.test.ts).

Writes into build/encoder/ (git-ignored; the Vite dev server serves it as /build/encoder/...):
  resnet18_folded_reference.safetensors  input [2,3,256,256] (two real MVTec bottle images, ImageNet-normalised) and
                                         layer1..layer3 computed from ../shared/models/resnet18-imagenet-l1-l3-bnfolded
  resnet34_unfolded_weights.safetensors  a seeded random ResNet34 stem+layer1..3 state dict with BatchNorm, keys under
                                         'net_t.' plus keys the encoder must ignore (fc, layer4, num_batches_tracked)
  resnet34_unfolded_reference.safetensors input [2,3,72,88] (odd-sized crops) and layer1..layer3 computed with
                                         F.batch_norm in eval mode, i.e. without folding, so the TS folding is checked

Usage: /usr/bin/python3 scripts/encoder_reference.py   (Debian python: torch, numpy, PIL)
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'training', 'reference'))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

SHARED = os.path.join(ROOT, '..', 'shared')
OUT_DIR = os.path.join(ROOT, 'build', 'encoder')
IMAGES = ['data/mvtec-bottle/256/test/broken_large/000.png', 'data/mvtec-bottle/256/test/good/000.png']
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
BN_EPS = 1e-5
BLOCKS = {'resnet18': [2, 2, 2], 'resnet34': [3, 4, 6]}
CHANNELS = [64, 128, 256]


def write_atomically(path, tensors):
    """Write then rename, so that a test reading the file meanwhile never sees half of it."""
    write_safetensors(path + '.tmp', tensors)
    os.replace(path + '.tmp', path)


def imagenet_input(paths, crop=None):
    images = []
    for rel in paths:
        rgb = np.asarray(Image.open(os.path.join(SHARED, rel)).convert('RGB'), dtype=np.float64) / 255.0
        if crop is not None:
            top, left, height, width = crop
            rgb = rgb[top:top + height, left:left + width]
        images.append(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.stack(images).astype(np.float32)


def resnet_features(x, arch, conv_bn):
    """conv_bn(key_of_conv, key_of_bn, input, stride, padding) -> conv followed by (folded or explicit) BN."""
    feats = []
    h = F.relu(conv_bn('conv1', 'bn1', x, 2, 3))
    h = F.max_pool2d(h, 3, 2, 1)
    for s, blocks in enumerate(BLOCKS[arch]):
        for b in range(blocks):
            name = f'layer{s + 1}.{b}'
            stride = 2 if (s > 0 and b == 0) else 1
            y = F.relu(conv_bn(f'{name}.conv1', f'{name}.bn1', h, stride, 1))
            y = conv_bn(f'{name}.conv2', f'{name}.bn2', y, 1, 1)
            shortcut = conv_bn(f'{name}.downsample.0', f'{name}.downsample.1', h, stride, 0) if (s > 0 and b == 0) else h
            h = F.relu(y + shortcut)
        feats.append(h)
    return feats


def folded_conv(weights):
    def conv_bn(conv, _bn, x, stride, padding):
        w = torch.from_numpy(weights[f'{conv}.weight'].astype(np.float64))
        b = torch.from_numpy(weights[f'{conv}.bias'].astype(np.float64))
        return F.conv2d(x, w, b, stride, padding)
    return conv_bn


def unfolded_conv(weights, prefix):
    def t(key):
        return torch.from_numpy(weights[prefix + key].astype(np.float64))

    def conv_bn(conv, bn, x, stride, padding):
        y = F.conv2d(x, t(f'{conv}.weight'), None, stride, padding)
        return F.batch_norm(y, t(f'{bn}.running_mean'), t(f'{bn}.running_var'), t(f'{bn}.weight'), t(f'{bn}.bias'),
                            training=False, eps=BN_EPS)
    return conv_bn


def random_unfolded_resnet(arch, prefix, rng):
    """A torchvision/timm-style state dict (conv without bias + BN with running stats), plus keys to be ignored."""
    weights = {}

    def conv(key, cout, cin, k):
        weights[prefix + f'{key}.weight'] = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)

    def bn(key, c):
        # Variances down to 1e-3 make the result depend on eps at the 1e-3 level (a wrong eps fails the test);
        # gamma scales with sqrt(var) to keep activations of order one.
        variance = 10.0 ** rng.uniform(-3, 0.3, c)
        weights[prefix + f'{key}.weight'] = (rng.uniform(0.2, 0.6, c) * np.sqrt(variance)).astype(np.float32)
        weights[prefix + f'{key}.bias'] = rng.normal(0, 0.1, c).astype(np.float32)
        weights[prefix + f'{key}.running_mean'] = rng.normal(0, 0.1, c).astype(np.float32)
        weights[prefix + f'{key}.running_var'] = variance.astype(np.float32)
        weights[prefix + f'{key}.num_batches_tracked'] = np.array(1000, dtype=np.int64)

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    cin = 64
    for s, blocks in enumerate(BLOCKS[arch]):
        c = CHANNELS[s]
        for b in range(blocks):
            name = f'layer{s + 1}.{b}'
            conv(f'{name}.conv1', c, cin, 3)
            bn(f'{name}.bn1', c)
            conv(f'{name}.conv2', c, c, 3)
            bn(f'{name}.bn2', c)
            if s > 0 and b == 0:
                conv(f'{name}.downsample.0', c, cin, 1)
                bn(f'{name}.downsample.1', c)
            cin = c
    weights[prefix + 'layer4.0.conv1.weight'] = np.zeros((512, 256, 3, 3), dtype=np.float32)
    weights[prefix + 'fc.weight'] = np.zeros((1000, 512), dtype=np.float32)
    return weights


def features_dict(x, feats):
    out = {'input': x}
    for i, f in enumerate(feats):
        out[f'layer{i + 1}'] = f.numpy().astype(np.float32)
    return out


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    with torch.no_grad():
        folded, _ = read_safetensors(os.path.join(SHARED, 'models', 'resnet18-imagenet-l1-l3-bnfolded.safetensors'))
        x = imagenet_input(IMAGES)
        feats = resnet_features(torch.from_numpy(x.astype(np.float64)), 'resnet18', folded_conv(folded))
        write_atomically(os.path.join(OUT_DIR, 'resnet18_folded_reference.safetensors'), features_dict(x, feats))

        prefix = 'net_t.'
        unfolded = random_unfolded_resnet('resnet34', prefix, np.random.default_rng(20240419))
        write_atomically(os.path.join(OUT_DIR, 'resnet34_unfolded_weights.safetensors'), unfolded)
        x = imagenet_input(IMAGES, crop=(90, 70, 72, 88))
        feats = resnet_features(torch.from_numpy(x.astype(np.float64)), 'resnet34', unfolded_conv(unfolded, prefix))
        write_atomically(os.path.join(OUT_DIR, 'resnet34_unfolded_reference.safetensors'), features_dict(x, feats))
    print(f'wrote reference features to {os.path.relpath(OUT_DIR, ROOT)}', file=sys.stderr)


if __name__ == '__main__':
    main()
