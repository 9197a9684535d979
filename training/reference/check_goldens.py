"""Runs the reference on every golden of ../shared/spec/golden and prints one JSON line of errors.

Outputs and gradients: max abs error / max abs golden value (fails above 1e-4 / 1e-3). Anomaly maps: max abs
error (fails above 1e-5). Scan orders: number of entries that differ from scan_perms.json, official_scan_orders.json,
hilbert_8dir_gather.json and the goldens' own index_flat buffers (fails above 0). Exit status 1 on any failure.

usage: /usr/bin/python3 training/reference/check_goldens.py [--golden-dir DIR] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mambaad import (  # noqa: E402
    MFF_OCE,
    SCAN_TYPES,
    SS2D,
    HSSBlock,
    LSSModule,
    MambaUPNet,
    SHARED_DIR,
    PatchExpand2D,
    anomaly_map,
    direction_gathers,
    scan_order,
    selective_scan,
    use_ieee_fp32,
)
from safetensors_io import read_safetensors  # noqa: E402

DEFAULT_GOLDEN_DIR = SHARED_DIR / 'spec' / 'golden'
OUTPUT_TOL, GRAD_TOL, MAP_TOL = 1e-4, 1e-3, 1e-5


def rel_err(got: torch.Tensor, want: np.ndarray, scale: float | None = None) -> float:
    """max |got - want| / scale, scale defaulting to max |want|."""
    w = torch.from_numpy(want).to(torch.float64)
    g = got.detach().cpu().to(torch.float64)
    if g.shape != w.shape:
        raise ValueError(f'shape {tuple(g.shape)} != golden {tuple(w.shape)}')
    if scale is None:
        scale = w.abs().max().item()
    err = (g - w).abs().max().item()
    return err / scale if scale > 0 else err


def feeds_instance_norm(module: torch.nn.Module, bias_name: str) -> bool:
    """True for the bias of a conv followed by an affine-free InstanceNorm (Sequential(conv, IN, act))."""
    if not bias_name.endswith('.0.bias'):
        return False
    seq = module.get_submodule(bias_name[: -len('.0.bias')])
    return isinstance(seq, torch.nn.Sequential) and isinstance(seq[1], torch.nn.InstanceNorm2d)


def abs_err(got: torch.Tensor, want: np.ndarray) -> float:
    g = got.detach().cpu().to(torch.float64)
    if g.shape != want.shape:
        raise ValueError(f'shape {tuple(g.shape)} != golden {want.shape}')
    return (g - torch.from_numpy(want).to(torch.float64)).abs().max().item()


class Results:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.failures: list[str] = []

    def add(self, name: str, value: float, tol: float) -> None:
        self.values[name] = float(f'{value:.3e}')
        if not value <= tol:  # also catches NaN
            self.failures.append(f'{name}={value:.3e} > {tol:g}')


def prefixed(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_module(module: torch.nn.Module, tensors: dict[str, np.ndarray], device: torch.device) -> None:
    module.load_state_dict({k: torch.from_numpy(v) for k, v in prefixed(tensors, 'param.').items()}, strict=True)
    module.to(device).eval()


def check_module(
    res: Results,
    case: str,
    module: torch.nn.Module,
    tensors: dict[str, np.ndarray],
    input_names: list[str],
    device: torch.device,
) -> None:
    """Forward on input.*, compare output.i; backward with dout.i, compare grad.input.* and grad.param.*."""
    load_module(module, tensors, device)
    inputs = [torch.from_numpy(tensors[f'input.{n}']).to(device).requires_grad_(True) for n in input_names]
    out = module(*inputs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    for i, o in enumerate(outs):
        res.add(f'{case}.output.{i}', rel_err(o, tensors[f'output.{i}']), OUTPUT_TOL)
    douts = [torch.from_numpy(tensors[f'dout.{i}']).to(device) for i in range(len(outs))]
    torch.autograd.backward(outs, douts)
    for n, x in zip(input_names, inputs):
        if f'grad.input.{n}' in tensors:
            res.add(f'{case}.grad.input.{n}', rel_err(x.grad, tensors[f'grad.input.{n}']), GRAD_TOL)
    params = dict(module.named_parameters())
    for name, want in prefixed(tensors, 'grad.param.').items():
        p = params.get(name)
        if p is None or p.grad is None:
            res.failures.append(f'{case}: no gradient for parameter {name}')
            continue
        if feeds_instance_norm(module, name):
            # InstanceNorm removes the per-channel mean, so this gradient is zero up to roundoff in both codes:
            # measure it against the gradient scale of the conv weight beside it.
            weight_grad = tensors[f'grad.param.{name[: -len("bias")]}weight']
            scale = float(np.abs(weight_grad).max())
            res.add(f'{case}.grad.param.{name}(zero:IN)', rel_err(p.grad, want, scale), GRAD_TOL)
        else:
            res.add(f'{case}.grad.param.{name}', rel_err(p.grad, want), GRAD_TOL)


def check_selective_scan(res: Results, t: dict[str, np.ndarray], device: torch.device) -> None:
    names = ['u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias']
    args = [torch.from_numpy(t[f'input.{n}']).to(device).requires_grad_(True) for n in names]
    y = selective_scan(*args)
    res.add('selective_scan.output.0', rel_err(y, t['output.0']), OUTPUT_TOL)
    y.backward(torch.from_numpy(t['dout.0']).to(device))
    for n, a in zip(names, args):
        res.add(f'selective_scan.grad.input.{n}', rel_err(a.grad, t[f'grad.input.{n}']), GRAD_TOL)


def check_mff_oce(res: Results, t: dict[str, np.ndarray], device: torch.device) -> None:
    module = MFF_OCE([64, 128, 256], 512)
    load_module(module, t, device)
    feats = [torch.from_numpy(t[f'input.{n}']).to(device) for n in ('f1', 'f2', 'f3')]
    with torch.no_grad():
        res.add('mff_oce_small.output.eval', rel_err(module(*feats), t['output.eval']), OUTPUT_TOL)
        module.train()
        res.add('mff_oce_small.output.train', rel_err(module(*feats), t['output.train']), OUTPUT_TOL)
    state = module.state_dict()
    for name, want in prefixed(t, 'after_train.').items():
        got = state[name]
        if name.endswith('num_batches_tracked'):
            res.add(f'mff_oce_small.after_train.{name}', abs(int(got.item()) - int(want)), 0)
        else:
            res.add(f'mff_oce_small.after_train.{name}', rel_err(got, want), OUTPUT_TOL)


def check_anomaly_map(res: Results, t: dict[str, np.ndarray], device: torch.device) -> None:
    ft = [torch.from_numpy(t[f'input.ft{i}']).to(device) for i in range(3)]
    fs = [torch.from_numpy(t[f'input.fs{i}']).to(device) for i in range(3)]
    am = anomaly_map(ft, fs, out_size=256, sigma=4.0)
    res.add('anomaly_map.per_scale_upsampled', abs_err(torch.stack(am['upsampled']), t['output.per_scale_upsampled']), MAP_TOL)
    res.add('anomaly_map.map_before_blur', abs_err(am['map_before_blur'], t['output.map_before_blur']), MAP_TOL)
    res.add('anomaly_map.map', abs_err(am['map'], t['output.map']), MAP_TOL)
    res.add('anomaly_map.image_score', abs_err(am['score'], t['output.image_score']), MAP_TOL)


def check_scan_orders(res: Results, spec_dir: Path, golden_dir: Path) -> None:
    perms = json.loads((spec_dir / 'scan_perms.json').read_text())
    official = json.loads((golden_dir / 'official_scan_orders.json').read_text())
    gathers = json.loads((spec_dir / 'hilbert_8dir_gather.json').read_text())
    bad_perm = bad_official = bad_gather = 0
    for size_text, by_scan in perms.items():
        size = int(size_text)
        for scan in SCAN_TYPES:
            mine = scan_order(scan, size)
            bad_perm += int(np.sum(mine != np.asarray(by_scan[scan])))
            bad_official += int(np.sum(mine != np.asarray(official[size_text][scan])))
    for size_text, want in gathers.items():
        size = int(size_text)
        got = direction_gathers(torch.from_numpy(scan_order('hilbert', size)), size, 8).numpy()
        bad_gather += int(np.sum(got != np.asarray(want)))
    res.add('scan_perms.json.mismatches', bad_perm, 0)
    res.add('official_scan_orders.json.mismatches', bad_official, 0)
    res.add('hilbert_8dir_gather.json.mismatches', bad_gather, 0)


def check_index_buffers(res: Results, case: str, t: dict[str, np.ndarray], scan: str) -> None:
    """Every index_flat in a golden equals our generated order for its grid size; index_flat_inv is its inverse."""
    bad = 0
    for name, perm in t.items():
        if name.endswith('scans.index_flat'):
            flat = perm.reshape(-1)
            size = int(round(len(flat) ** 0.5))
            bad += int(np.sum(flat != scan_order(scan, size)))
            bad += int(np.sum(t[name + '_inv'].reshape(-1) != np.argsort(flat)))
    res.add(f'{case}.index_flat.mismatches', bad, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--golden-dir', type=Path, default=DEFAULT_GOLDEN_DIR)
    ap.add_argument('--device', default='cpu')
    args = ap.parse_args()
    device = torch.device(args.device)
    use_ieee_fp32()
    gdir = args.golden_dir.resolve()
    index = json.loads((gdir / 'index.json').read_text())
    res = Results()
    start = time.perf_counter()
    check_scan_orders(res, gdir.parent, gdir)
    for case in index:
        t, meta = read_safetensors(gdir / f'{case}.safetensors')
        info = json.loads(meta['case'])
        module_name = info.get('module')
        if case == 'selective_scan':
            check_selective_scan(res, t, device)
            continue
        if case == 'mff_oce_small':
            check_mff_oce(res, t, device)
            continue
        if module_name == 'SS2D':
            m = SS2D(info['d_model'], info['size'], info['d_state'], info['scan_type'], info['num_direction'])
        elif module_name == 'HSSBlock':
            m = HSSBlock(info['hidden_dim'], info['size'], 0.0, 16, info['scan_type'], info['num_direction'])
        elif module_name == 'LSSModule':
            m = LSSModule(info['hidden_dim'], info['size'], info['depth'], 0.0, 16, info['scan_type'], info['num_direction'])
        elif module_name == 'PatchExpand2D':
            m = PatchExpand2D(info['dim'])
        elif module_name == 'MambaUPNet':
            m = MambaUPNet(info['dims_decoder'], info['depths_decoder'], 16, info['scan_type'], info['num_direction'], 8)
        else:
            res.failures.append(f'{case}: no check for module {module_name!r}')
            continue
        if 'scan_type' in info:
            check_index_buffers(res, case, t, info['scan_type'])
        check_module(res, case, m, t, ['z'] if module_name == 'MambaUPNet' else ['x'], device)
    t, _ = read_safetensors(gdir / 'anomaly_map.safetensors')
    check_anomaly_map(res, t, device)
    res.values['seconds'] = round(time.perf_counter() - start, 1)
    print(json.dumps(res.values))
    if res.failures:
        print('FAILED: ' + '; '.join(res.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
