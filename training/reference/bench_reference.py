"""Times the PyTorch reference forward (MFF_OCE + decoder + anomaly map from encoder features) on one device, and
writes the same random weights as a weights file so the WGSL engine can be timed on identical work in the same run.

usage: python3 training/reference/bench_reference.py --device cuda --batches 1,16 [--weights-out FILE]
Prints one JSON line. The scan is the plain-PyTorch reference scan (no mamba_ssm kernel here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mambaad import MambaADConfig, anomaly_map, build_model, save_weights_file, use_ieee_fp32  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batches', default='1,16')
    parser.add_argument('--scan', default='hilbert')
    parser.add_argument('--directions', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--weights-out')
    args = parser.parse_args()
    use_ieee_fp32()
    config = MambaADConfig(encoder='resnet18', scan=args.scan, directions=args.directions)
    model = build_model(config, args.device, seed=0).eval()
    if args.weights_out:
        save_weights_file(args.weights_out, model)
    record: dict[str, object] = {
        'host': 'pytorch-reference',
        'torch': torch.__version__,
        'device': torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu',
        'what': 'MFF_OCE + decoder + anomaly map from encoder features, fp32, plain-PyTorch scan',
        'forward': [],
    }
    sync = torch.cuda.synchronize if args.device == 'cuda' else (lambda: None)
    for batch in (int(b) for b in args.batches.split(',')):
        size = config.input_size
        feats = [
            torch.rand(batch, c, size // s, size // s, device=args.device)
            for c, s in zip(config.encoder_channels, (4, 8, 16))
        ]
        with torch.no_grad():
            for _ in range(2):
                _, decoded = model.decode(feats)
                anomaly_map(feats, decoded)
            sync()
            start = time.perf_counter()
            for _ in range(args.repeats):
                _, decoded = model.decode(feats)
                maps = anomaly_map(feats, decoded)
            sync()
        ms = (time.perf_counter() - start) / args.repeats * 1000
        record['forward'].append({'batch': batch, 'ms': round(ms, 2), 'images_per_s': round(batch / ms * 1000, 1)})
        del maps
    print(json.dumps(record), flush=True)


if __name__ == '__main__':
    main()
