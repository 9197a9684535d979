"""Builds the training-step check cases for the WGSL engine (`npm run gradcheck`), layouts in README.md:

- the full case: the full-size model (ResNet18 channels, dims [512,256,128,64], depths [3,4,6,3]) initialised and
  perturbed as in make_parity_case.py, encoder features of real train images, MFF_OCE in training mode, drop-path 0;
  one forward + backward of the §10 loss (loss, decoder outputs, every parameter gradient, running statistics), then
  STEPS AdamW steps on the same batch (the loss before each, the final weights);
- with --mff-oce-small: MFF_OCE alone in training mode on the official golden mff_oce_small (its parameters and
  inputs), backward of a seeded output gradient: the gradient of every MFF_OCE parameter, checked here against float64
  finite differences.

usage: /usr/bin/python3 training/reference/make_gradcheck_case.py --scan hilbert --directions 8 --seed 0 --batch 2
           --steps 5 --out build/gradcheck/full_hilbert8_b2.safetensors [--size 128]
       /usr/bin/python3 training/reference/make_gradcheck_case.py --mff-oce-small
           --out build/gradcheck/mff_oce_small_grads.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_parity_case import DEFAULT_ENCODER, calibrate_batchnorm, parity_config, perturb  # noqa: E402
from mambaad import (  # noqa: E402
    CONFIG_METADATA_KEY,
    DIRECTION_SETS,
    MFF_OCE,
    SCAN_TYPES,
    SHARED_DIR,
    MambaAD,
    build_encoder,
    build_model,
    load_image,
    use_ieee_fp32,
)
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

DEFAULT_IMAGE_DIR = SHARED_DIR / 'data' / 'mvtec-bottle' / '256' / 'train' / 'good'
MFF_OCE_GOLDEN = SHARED_DIR / 'spec' / 'golden' / 'mff_oce_small.safetensors'
LOSS_WEIGHT = 5.0
ADAMW = {'lr': 5e-3, 'betas': (0.9, 0.999), 'eps': 1e-8, 'weight_decay': 1e-4}
MAX_GRAD_NORM = 5.0


def f32(t: torch.Tensor) -> np.ndarray:
    # .numpy() shares storage with a CPU float32 tensor: copy, or later optimiser steps rewrite what was saved.
    return t.detach().cpu().to(torch.float32).numpy().copy()


def state(model: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """The trainable state dict (float tensors as float32, counters and scan indices as int64) under `prefix`."""
    sd = model.trainable_state_dict() if isinstance(model, MambaAD) else model.state_dict()
    return {f'{prefix}{k}': (f32(v) if v.is_floating_point() else v.cpu().numpy().copy()) for k, v in sd.items()}


def running_statistics(model: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in state(model, prefix).items() if k.rsplit('.', 1)[-1].startswith(('running_', 'num_'))}


def mse_loss(feats: list[torch.Tensor], decoded: list[torch.Tensor]) -> torch.Tensor:
    """§10: 5 · Σ over the three scales of mean((f - d)²)."""
    return sum(LOSS_WEIGHT * F.mse_loss(d, f) for f, d in zip(feats, decoded))


def adamw(model: MambaAD) -> torch.optim.AdamW:
    """ADer's add_weight_decay: no decay for 1-D parameters and names ending in '.bias'."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim == 1 or name.endswith('.bias') else decay).append(p)
    return torch.optim.AdamW(
        [{'params': no_decay, 'weight_decay': 0.0}, {'params': decay, 'weight_decay': ADAMW['weight_decay']}],
        lr=ADAMW['lr'],
        betas=ADAMW['betas'],
        eps=ADAMW['eps'],
    )


def full_case(args: argparse.Namespace) -> dict:
    images = args.image or [str(p) for p in sorted(DEFAULT_IMAGE_DIR.glob('*.png'))[: args.batch]]
    if len(images) != args.batch:
        raise SystemExit(f'--batch {args.batch} needs {args.batch} images, have {len(images)}')
    device = torch.device(args.device)
    t0 = time.perf_counter()
    config = parity_config(args.scan, args.directions, args.size)
    encoder_sd = {k: torch.from_numpy(v) for k, v in read_safetensors(args.encoder_weights)[0].items()}
    encoder = build_encoder('resnet18', encoder_sd, device)
    model = build_model(config, device, seed=args.seed, drop_path_rate=0.0)
    img = torch.cat([load_image(p, args.size) for p in images]).to(device)
    with torch.no_grad():
        feats = [f.detach() for f in encoder(img)]
        calibrate_batchnorm(model, feats)
        perturb(model, torch.Generator().manual_seed(args.seed + 1))
    tensors = state(model, 'param.')
    tensors.update({f'input.f{i + 1}': f32(f) for i, f in enumerate(feats)})
    model.train()
    optimizer = adamw(model)
    t_setup = time.perf_counter()
    losses, step_seconds = [], []
    for step in range(args.steps):
        t_step = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _, decoded = model.decode(feats)
        loss = mse_loss(feats, decoded)
        loss.backward()
        losses.append(float(loss))
        if step == 0:
            tensors['output.loss'] = np.array(float(loss), dtype=np.float32)
            tensors.update({f'output.d{i + 1}': f32(d) for i, d in enumerate(decoded)})
            tensors.update({f'grad.{n}': f32(p.grad) for n, p in model.named_parameters() if p.requires_grad})
            tensors.update({k.replace('param.', 'after.', 1): v for k, v in running_statistics(model, 'param.').items()})
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
        optimizer.step()
        step_seconds.append(round(time.perf_counter() - t_step, 2))
        print(f'step {step + 1}/{args.steps}: loss {losses[-1]:.6f}, {step_seconds[-1]} s', file=sys.stderr)
    tensors['output.loss_steps'] = np.array(losses, dtype=np.float32)
    tensors.update(state(model, 'final.'))

    # How far float32 rounding alone moves this trajectory: the same steps from the same weights, with the features
    # moved by ~1e-6 relative (the size of the rounding differences between two fp32 implementations). AdamW moves
    # every parameter by about ±lr on its first steps whatever its gradient's size, so parameters whose gradient is
    # at roundoff level take random-sign steps and the losses drift apart step by step.
    model.load_state_dict(
        {k[len('param.') :]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith('param.')}, strict=False
    )
    optimizer = adamw(model)
    noise = torch.Generator().manual_seed(args.seed + 2)
    nudged = [f * (1 + 1e-6 * torch.randn(f.shape, generator=noise).to(f.device)) for f in feats]
    perturbed_losses = []
    for _ in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        _, decoded = model.decode(nudged)
        loss = mse_loss(nudged, decoded)
        loss.backward()
        perturbed_losses.append(float(loss))
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
        optimizer.step()
    tensors['output.loss_steps_perturbed'] = np.array(perturbed_losses, dtype=np.float32)
    case = {
        'what': 'MambaAD training step: MFF_OCE in training mode, drop-path 0, loss 5·Σ MSE; then AdamW steps',
        'seed': args.seed,
        'images': [Path(p).name for p in images],
        'encoder_weights': Path(args.encoder_weights).name,
        'steps': args.steps,
        'optimizer': {**ADAMW, 'grouping': 'no decay for 1-D and *.bias', 'clip_grad_norm': MAX_GRAD_NORM},
        'layout': 'param.* initial weights; input.f* NCHW; output.loss [] and output.d* of the first forward; grad.* '
        'its gradients (before clipping); after.* running statistics after it; output.loss_steps [steps] the loss '
        'before each step; final.* the weights (and running statistics) after the last step; '
        'output.loss_steps_perturbed the same steps with the features moved by 1e-6 relative',
    }
    write_safetensors(args.out, tensors, {CONFIG_METADATA_KEY: config.to_json(), 'case': json.dumps(case)})
    return {
        'out': args.out,
        'scan': args.scan,
        'directions': args.directions,
        'batch': args.batch,
        'size': args.size,
        'loss_steps': [round(v, 6) for v in losses],
        'loss_steps_perturbed_features_1e-6': [round(v, 6) for v in perturbed_losses],
        'seconds_setup': round(t_setup - t0, 2),
        'seconds_per_step': step_seconds,
        'seconds_total': round(time.perf_counter() - t0, 2),
    }


def mff_oce_from_golden(tensors: dict[str, np.ndarray], dtype: torch.dtype) -> MFF_OCE:
    module = MFF_OCE([64, 128, 256], 512)
    module.load_state_dict({k[len('param.') :]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith('param.')})
    return module.to(dtype).train()


def gradient_scale(grads: dict[str, torch.Tensor], name: str) -> float:
    """Max |gradient| of `name`; for a conv bias that feeds a training-mode BatchNorm (every MFF_OCE conv bias) the
    gradient is zero up to roundoff (BN removes the channel mean), so it is measured against its conv weight's."""
    if name.startswith('conv') and name.endswith('.bias'):
        name = name[: -len('bias')] + 'weight'
    return float(grads[name].abs().max())


def relative_error(actual: torch.Tensor, expected: torch.Tensor, grads: dict[str, torch.Tensor], name: str) -> float:
    return float((actual.double() - expected.double()).abs().max()) / gradient_scale(grads, name)


def mff_oce_small_case(args: argparse.Namespace) -> dict:
    """MFF_OCE (training mode) gradients on the golden's inputs for a seeded output gradient, float32 autograd; the
    float64 autograd of the same case is checked against central differences along random directions."""
    golden, _ = read_safetensors(MFF_OCE_GOLDEN)
    inputs = [torch.from_numpy(golden[f'input.f{i}']) for i in (1, 2, 3)]
    module = mff_oce_from_golden(golden, torch.float32)
    z = module(*inputs)
    dout = torch.randn(z.shape, generator=torch.Generator().manual_seed(args.seed))
    z.backward(dout)
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}

    # float64: the same gradients, and central differences of <z, dout> along random parameter directions.
    module64 = mff_oce_from_golden(golden, torch.float64)
    inputs64 = [x.double() for x in inputs]
    dout64 = dout.double()
    snapshot = {k: v.clone() for k, v in module64.state_dict().items()}

    def objective() -> float:
        module64.load_state_dict(snapshot)  # running statistics as at the start: each call is one training forward
        with torch.no_grad():
            return float((module64(*inputs64) * dout64).sum())

    module64.load_state_dict(snapshot)
    (module64(*inputs64) * dout64).sum().backward()
    grads64 = {n: p.grad.clone() for n, p in module64.named_parameters()}
    float32_error = {n: relative_error(grads[n], g, grads64, n) for n, g in grads64.items()}
    generator = torch.Generator().manual_seed(args.seed + 1)
    eps = 1e-8
    fd_errors = []
    for _ in range(args.fd_directions):
        directions = {n: torch.randn(p.shape, generator=generator, dtype=torch.float64) for n, p in grads64.items()}
        analytic = sum(float((grads64[n] * d).sum()) for n, d in directions.items())
        shifted = []
        for sign in (1, -1):
            for n, d in directions.items():
                snapshot[n].add_(sign * eps * d)
            shifted.append(objective())
            for n, d in directions.items():
                snapshot[n].sub_(sign * eps * d)
        numeric = (shifted[0] - shifted[1]) / (2 * eps)
        fd_errors.append(abs(numeric - analytic) / abs(analytic))

    tensors = {'input.dout': f32(dout), 'output.z': f32(z)}
    tensors.update({f'grad.{n}': f32(g) for n, g in grads.items()})
    case = {
        'what': 'MFF_OCE (training mode, batch statistics) on mff_oce_small: parameters and inputs from the golden, '
        'backward of input.dout (standard normal, seed below); grad.* relative to the module (conv1.weight, ...)',
        'golden': MFF_OCE_GOLDEN.name,
        'seed': args.seed,
    }
    write_safetensors(args.out, tensors, {'case': json.dumps(case)})
    return {
        'out': args.out,
        'parameters': len(grads),
        'float32_vs_float64_autograd_max_relative': max(float32_error.values()),
        'worst': max(float32_error, key=float32_error.get),
        'float64_autograd_vs_central_differences': [float(f'{e:.2e}') for e in fd_errors],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--mff-oce-small', action='store_true', help='write the MFF_OCE gradient case instead')
    ap.add_argument('--scan', choices=SCAN_TYPES, default='hilbert')
    ap.add_argument('--directions', type=int, choices=sorted(DIRECTION_SETS), default=8)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    # 128, not the official 256: the plain-PyTorch scan keeps every step's state, and a batch-2 step at 256 took over
    # 16 GB and about a minute here (5 steps would be ~5 min); at 128 the grids are 4/8/16/32 instead of 8/16/32/64.
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--fd-directions', type=int, default=4, help='--mff-oce-small: finite-difference directions')
    ap.add_argument('--encoder-weights', default=str(DEFAULT_ENCODER))
    ap.add_argument('--image', nargs='*', help=f'input images (default: the first BATCH PNGs of {DEFAULT_IMAGE_DIR})')
    ap.add_argument('--device', default='cpu')
    args = ap.parse_args()
    if args.batch < 1 or args.steps < 1:
        ap.error('--batch and --steps must be at least 1')
    use_ieee_fp32()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report = mff_oce_small_case(args) if args.mff_oce_small else full_case(args)
    print(json.dumps(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
