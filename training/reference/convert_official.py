"""Converts an official MambaAD / ADer checkpoint (ckpt.pth `{'net': state_dict, ...}` or net.pth / a plain state
dict) into our weights file (README.md, "Weights file").

- ADer naming (MAMBAAD.md §14): `conv1b3`/`conv1a3` are the 7x7 branch wrappers -> `conv1b7`/`conv1a7`; the unused
  `conv33.*` is dropped. A DataParallel `module.` prefix is stripped.
- `net_t.*` (the frozen encoder) is not part of the weights file; `--encoder-out` writes it BN-folded instead.
- The config is inferred from the tensors: dims and depths from the LayerNorm / block layout, d_state and directions
  from A_logs / x_proj_weight, the scan order by comparing every `scans.index_flat` with the generated orders, the
  encoder from the number of net_t layer3 blocks (or `--encoder` when net_t is absent).

usage: /usr/bin/python3 training/reference/convert_official.py CKPT OUT.safetensors [--encoder resnet34]
       [--encoder-out ENC.safetensors] [--half] [--trust-pickle]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mambaad import (  # noqa: E402
    ENCODER_BLOCKS,
    SCAN_TYPES,
    MambaAD,
    MambaADConfig,
    ResNetEncoder,
    build_encoder,
    folded_encoder_state_dict,
    save_weights_file,
    scan_order,
)
from safetensors_io import write_safetensors  # noqa: E402

_ADER_RENAMES = (('.conv1b3.', '.conv1b7.'), ('.conv1a3.', '.conv1a7.'))


def load_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Returns the full state dict of ckpt.pth / net.pth / a plain state dict."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=not trust_pickle)
    except Exception as e:  # weights_only refuses pickled non-tensor objects (e.g. optimizer/scheduler states)
        if trust_pickle:
            raise
        raise ValueError(
            f'{path}: cannot be loaded with weights_only=True ({type(e).__name__}: {e}). If you trust the file, '
            'rerun with --trust-pickle.'
        ) from e
    return extract_state_dict(ckpt, str(path))


def extract_state_dict(ckpt: object, what: str) -> dict[str, torch.Tensor]:
    sd = ckpt.get('net', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f'{what}: neither a state dict nor a checkpoint with a "net" state dict')
    return dict(sd)


def to_official_names(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Splits into (trainable mff_oce.* / net_s.* with official names, encoder net_t.*). Drops ADer's conv33 and a
    DataParallel `module.` prefix."""
    if all(k.startswith('module.') for k in sd):
        sd = {k[len('module.') :]: v for k, v in sd.items()}
    trainable: dict[str, torch.Tensor] = {}
    encoder: dict[str, torch.Tensor] = {}
    unknown = []
    for k, v in sd.items():
        if k.startswith('net_t.'):
            encoder[k[len('net_t.') :]] = v
            continue
        if not k.startswith(('mff_oce.', 'net_s.')):
            unknown.append(k)
            continue
        if '.conv33.' in k:
            continue
        name = k
        for old, new in _ADER_RENAMES:
            name = name.replace(old, new)
        if name in trainable:
            raise ValueError(f'checkpoint has both ADer and official names for {name}')
        trainable[name] = v
    if unknown:
        raise ValueError(f'checkpoint has keys outside net_t./mff_oce./net_s.: {unknown[:5]}')
    if not trainable:
        raise ValueError('checkpoint has no mff_oce.* / net_s.* tensors')
    return trainable, encoder


def infer_scan(trainable: dict[str, torch.Tensor]) -> str:
    """The one scan order that every SS2D's index_flat equals."""
    candidates = set(SCAN_TYPES)
    found = False
    for k, v in trainable.items():
        if not k.endswith('scans.index_flat'):
            continue
        found = True
        flat = v.reshape(-1).numpy()
        size = int(round(len(flat) ** 0.5))
        hits = {s for s in SCAN_TYPES if size * size == len(flat) and np.array_equal(flat, scan_order(s, size))}
        if not hits:
            raise ValueError(f'{k}: index_flat is none of the scan orders {SCAN_TYPES} at size {size}')
        candidates &= hits
    if not found:
        raise ValueError('checkpoint has no scans.index_flat tensors')
    if len(candidates) != 1:
        raise ValueError(f'the SS2D scan orders do not agree on one scan type (candidates left: {sorted(candidates)})')
    return candidates.pop()


def infer_encoder(encoder_sd: dict[str, torch.Tensor]) -> str | None:
    if not encoder_sd:
        return None
    n3 = len({m.group(1) for k in encoder_sd if (m := re.match(r'layer3\.(\d+)\.', k))})
    for name, blocks in ENCODER_BLOCKS.items():
        if blocks[2] == n3:
            return name
    raise ValueError(f'net_t has {n3} layer3 blocks, which is neither ResNet18 nor ResNet34')


def infer_config(trainable: dict[str, torch.Tensor], encoder: str, input_size: int | None = None) -> MambaADConfig:
    dims, depths = [], []
    for i in range(4):
        prefix = f'net_s.layers_up.{i}.blocks.'
        modules = {int(k[len(prefix) :].split('.')[0]) for k in trainable if k.startswith(prefix)}
        if not modules:
            raise ValueError(f'checkpoint has no {prefix}* tensors')
        per_module = {
            int(m.group(1))
            for k in trainable
            if (m := re.match(re.escape(prefix) + r'0\.smm_blocks\.(\d+)\.', k))
        }
        depths.append(len(modules) * len(per_module))
        dims.append(int(trainable[f'{prefix}0.smm_blocks.0.ln_1.weight'].shape[0]))
    first = 'net_s.layers_up.0.blocks.0.smm_blocks.0.self_attention.'
    directions = int(trainable[first + 'x_proj_weight'].shape[0])
    d_state = int(trainable[first + 'A_logs'].shape[1])
    side = int(round(trainable[first + 'scans.index_flat'].numel() ** 0.5))
    size = 32 * side
    if input_size is not None and input_size != size:
        raise ValueError(f'scan grids say input size {size}, not {input_size}')
    return MambaADConfig(
        encoder=encoder,
        encoder_channels=list(reversed(dims[1:])),
        dims=dims,
        depths=depths,
        d_state=d_state,
        scan=infer_scan(trainable),
        directions=directions,
        input_size=size,
    ).validate()


def convert(sd: dict[str, torch.Tensor], encoder: str | None = None) -> tuple[MambaAD, ResNetEncoder | None]:
    """Official state dict -> (MambaAD with the weights loaded, encoder or None)."""
    trainable, encoder_sd = to_official_names(sd)
    found = infer_encoder(encoder_sd)
    if encoder is not None and found is not None and encoder != found:
        raise ValueError(f'--encoder {encoder} contradicts the checkpoint encoder ({found})')
    name = found or encoder or 'resnet34'
    config = infer_config(trainable, name)
    enc = build_encoder(name, encoder_sd) if encoder_sd else None
    model = MambaAD(config, enc)
    state = model.trainable_state_dict()
    missing = sorted(set(state) - set(trainable))
    unexpected = sorted(set(trainable) - set(state))
    if missing or unexpected:
        raise ValueError(f'checkpoint does not fit the inferred config {config.to_json()}: missing {missing[:5]}, '
                         f'unexpected {unexpected[:5]}')
    for k, v in state.items():
        if tuple(trainable[k].shape) != tuple(v.shape):
            raise ValueError(f'{k}: shape {list(trainable[k].shape)} does not fit the inferred config ({list(v.shape)})')
    model.load_state_dict({k: trainable[k].to(v.dtype) for k, v in state.items()}, strict=False)
    return model.eval(), enc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('checkpoint')
    ap.add_argument('out')
    ap.add_argument('--encoder', choices=sorted(ENCODER_BLOCKS), help='encoder name when the checkpoint has no net_t')
    ap.add_argument('--encoder-out', help='also write net_t BN-folded (keys as ../shared/models/*bnfolded*)')
    ap.add_argument('--half', action='store_true', help='store floating tensors as F16')
    ap.add_argument('--trust-pickle', action='store_true', help='allow torch.load to unpickle non-tensor objects')
    args = ap.parse_args()
    try:
        model, enc = convert(load_checkpoint(args.checkpoint, args.trust_pickle), args.encoder)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    save_weights_file(args.out, model, half=args.half, extra_metadata={'source': Path(args.checkpoint).name})
    summary = {'out': args.out, 'config': json.loads(model.config.to_json())}
    if args.encoder_out:
        if enc is None:
            print('error: --encoder-out given but the checkpoint has no net_t.* tensors', file=sys.stderr)
            return 2
        folded = {k: v.numpy() for k, v in folded_encoder_state_dict(enc).items()}
        write_safetensors(args.encoder_out, folded, {'source': f'{Path(args.checkpoint).name} net_t, BN folded'})
        summary['encoder_out'] = args.encoder_out
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
