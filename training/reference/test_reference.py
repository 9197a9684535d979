"""Self-tests of the reference tools that the goldens do not cover (no pytest needed).

Prints one JSON line {"test": "ok" | "FAIL: ..."} and exits 1 on any failure.
usage: /usr/bin/python3 training/reference/test_reference.py
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert_official  # noqa: E402
from mambaad import (  # noqa: E402
    SHARED_DIR,
    SS2D,
    DropPath,
    HSSBlock,
    MambaAD,
    MambaADConfig,
    ResNetEncoder,
    anomaly_map,
    build_encoder,
    build_model,
    folded_encoder_state_dict,
    gaussian_blur_scipy,
    load_weights_file,
    save_weights_file,
    scan_order,
    selective_scan,
)
from safetensors_io import SafetensorsError, read_metadata, read_safetensors, write_safetensors  # noqa: E402

SHARED_ENCODER = SHARED_DIR / 'models' / 'resnet18-imagenet-l1-l3-bnfolded.safetensors'
TMP = Path(tempfile.mkdtemp(prefix='mambaad-ref-test-'))


def expect_error(fn, fragment: str) -> None:
    try:
        fn()
    except (ValueError, SafetensorsError) as e:
        if fragment not in str(e):
            raise AssertionError(f'error {e!r} does not mention {fragment!r}') from e
        return
    raise AssertionError(f'expected an error mentioning {fragment!r}')


def test_safetensors_roundtrip() -> None:
    rng = np.random.default_rng(0)
    tensors = {
        'f32': rng.standard_normal((2, 3)).astype(np.float32),
        'f16': rng.standard_normal((5,)).astype(np.float16),
        'f64': rng.standard_normal((1, 1, 3)),
        'i64': np.arange(-3, 4, dtype=np.int64).reshape(7, 1),
        'u8': np.arange(11, dtype=np.uint8),
        'scalar': np.array(7, dtype=np.int64),
        'empty': np.zeros((0, 4), dtype=np.float32),
    }
    path = TMP / 'roundtrip.safetensors'
    write_safetensors(path, tensors, {'k': 'v', 'json': '{"a":1}'})
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], 'little')
    assert (8 + header_len) % 8 == 0, 'data section must be 8-byte aligned'
    got, meta = read_safetensors(path)
    assert meta == {'k': 'v', 'json': '{"a":1}'} and read_metadata(path) == meta
    assert list(got) == list(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and np.array_equal(got[k], v), k
    header = json.loads(raw[8 : 8 + header_len])
    assert header['f16']['dtype'] == 'F16' and header['u8']['dtype'] == 'U8' and header['i64']['dtype'] == 'I64'
    (TMP / 'short.safetensors').write_bytes(raw[:-3])
    expect_error(lambda: read_safetensors(TMP / 'short.safetensors'), 'offsets')
    (TMP / 'junk.safetensors').write_bytes(b'\x05\x00\x00\x00\x00\x00\x00\x00{abc}')
    expect_error(lambda: read_safetensors(TMP / 'junk.safetensors'), 'not valid JSON')
    expect_error(lambda: write_safetensors(TMP / 'x.safetensors', {'c': np.zeros(2, np.complex64)}), 'not supported')


def test_config_json() -> None:
    cfg = MambaADConfig(encoder='resnet18', scan='zigzag', directions=4)
    again = MambaADConfig.from_json(cfg.to_json())
    assert again == cfg
    raw = json.loads(cfg.to_json())
    assert raw['format'] == 'mambaad-studio/1' and raw['depths'] == [3, 4, 6, 3]
    expect_error(lambda: MambaADConfig.from_json('{"format":"x"}'), 'format must be')
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'scan': 'spiral'})), "'spiral'")
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'directions': 6})), 'directions 6')
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'depths': [3, 4, 5, 3]})), 'depth 5')
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'dims': [256, 256, 128, 64]})), 'halve')
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'input_size': 48})), 'input_size')
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'extra': 1})), 'unknown keys')
    expect_error(lambda: MambaADConfig.from_json(json.dumps({**raw, 'd_state': '16'})), 'integer')


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts() -> None:
    """MAMBAAD.md §13 (counted from the official code there)."""
    model = MambaAD(MambaADConfig(), ResNetEncoder('resnet34', folded=False))
    assert count(model.net_t) == 8_170_304, count(model.net_t)
    assert count(model.mff_oce) == 1_458_304, count(model.mff_oce)
    stages = [count(layer) for layer in model.net_s.layers_up]
    assert stages == [9_435_648, 4_425_728, 1_801_728, 323_520], stages
    blocks = [count(next(m for m in layer.modules() if isinstance(m, HSSBlock))) for layer in model.net_s.layers_up]
    assert blocks == [2_520_064, 735_744, 236_800, 85_632], blocks
    index_entries = sum(b.numel() for n, b in model.named_buffers() if n.endswith('scans.index_flat'))
    assert index_entries * 2 == 39_296, index_entries
    trainable = sum(p.numel() for n, p in model.named_parameters() if not n.startswith('net_t.'))
    assert trainable == 17_444_928, trainable


def test_init_statistics() -> None:
    """§8 init: A_logs = log(1..N), Ds = 1, dt = softplus(dt bias) in [1e-3, 1e-1], conv stds."""
    model = build_model(MambaADConfig(input_size=64), seed=3)
    ss = next(m for m in model.modules() if isinstance(m, SS2D))
    assert torch.allclose(ss.A_logs[5], torch.log(torch.arange(1, 17, dtype=torch.float32)))
    assert torch.all(ss.Ds == 1)
    dt = torch.nn.functional.softplus(ss.dt_projs_bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    assert ss.x_proj_weight.abs().max() <= ss.d_inner**-0.5
    assert abs(ss.in_proj.weight.std().item() - 0.02) < 0.002
    lss = model.net_s.layers_up[3].blocks[0]
    assert abs(lss.conv77[0].weight.std().item() - math.sqrt(2 / 49)) < 0.03
    assert torch.all(lss.conv1b5[0].bias == 0)


def test_encoder_bn_folding() -> None:
    """The BN-folded and the with-BN encoder give the same features; the shared ResNet18 weights load."""
    for name in ('resnet18', 'resnet34'):
        torch.manual_seed(1)
        enc = ResNetEncoder(name, folded=False)
        with torch.no_grad():
            for m in enc.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
        prefixed = {f'net_t.{k}': v for k, v in enc.state_dict().items()}
        unfolded = build_encoder(name, prefixed)
        folded = build_encoder(name, folded_encoder_state_dict(unfolded))
        assert folded.folded and not unfolded.folded
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            for a, b in zip(unfolded(x), folded(x)):
                assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (name, (a - b).abs().max())
    expect_error(lambda: build_encoder('resnet34', read_safetensors(SHARED_ENCODER)[0]), 'missing')
    enc = build_encoder('resnet18', {k: torch.from_numpy(v) for k, v in read_safetensors(SHARED_ENCODER)[0].items()})
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 256, 256))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 64, 64), (1, 128, 32, 32), (1, 256, 16, 16)]
    assert all(f.min() >= 0 for f in feats)


def test_encoder_matches_timm() -> str | None:
    """Our with-BN encoder loaded from timm's features_only ResNet state dict gives timm's features."""
    try:
        import timm
    except ImportError:
        return 'skipped: no timm'
    for name in ('resnet18', 'resnet34'):
        torch.manual_seed(2)
        ref = timm.create_model(name, pretrained=False, features_only=True, out_indices=[1, 2, 3]).eval()
        with torch.no_grad():
            for m in ref.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
            ours = build_encoder(name, {f'net_t.{k}': v for k, v in ref.state_dict().items()})
            x = torch.randn(2, 3, 96, 96)
            for a, b in zip(ref(x), ours(x)):
                assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-4), (name, (a - b).abs().max())
    return None


def test_selective_scan_float64() -> None:
    """Chunked vectorised scan == the §6.1 recurrence written out in float64 (L spans several chunks)."""
    g = torch.Generator().manual_seed(0)
    b, K, D, N, L = 2, 2, 3, 4, 300
    u = torch.randn(b, K * D, L, generator=g)
    delta = torch.randn(b, K * D, L, generator=g) * 3
    delta[0, 0, :5] = 25.0  # above the softplus threshold
    A = -torch.rand(K * D, N, generator=g) * 3
    B = torch.randn(b, K, N, L, generator=g)
    C = torch.randn(b, K, N, L, generator=g)
    Dskip, bias = torch.randn(K * D, generator=g), torch.randn(K * D, generator=g)
    y = selective_scan(u, delta, A, B, C, Dskip, bias)
    u64, d64, A64, B64, C64 = (t.double() for t in (u, delta, A, B, C))
    want = torch.zeros(b, K * D, L, dtype=torch.float64)
    for c in range(K * D):
        k = c // D
        h = torch.zeros(b, N, dtype=torch.float64)
        for t in range(L):
            x = d64[:, c, t] + bias[c].double()
            dt = torch.where(x <= 20, torch.log1p(torch.exp(x)), x)
            h = torch.exp(dt[:, None] * A64[c]) * h + dt[:, None] * B64[:, k, :, t] * u64[:, c, t, None]
            want[:, c, t] = (C64[:, k, :, t] * h).sum(1) + Dskip[c].double() * u64[:, c, t]
    err = ((y.double() - want).abs().max() / want.abs().max()).item()
    assert err < 1e-5, err


def test_scan_checkpointing_same_gradients() -> None:
    grads = []
    for enabled in (False, True):
        torch.manual_seed(4)
        ss = SS2D(16, 8, 4, 'hilbert', 8)
        ss.reset_ssm_parameters(torch.Generator().manual_seed(0))
        with torch.no_grad():
            for p in (ss.in_proj.weight, ss.out_proj.weight, ss.conv2d.weight):
                p.mul_(10.0)  # make the scan path matter
        ss.checkpoint_scan = enabled
        x = torch.randn(2, 8, 8, 16, generator=torch.Generator().manual_seed(9), requires_grad=True)
        ss(x).square().sum().backward()
        grads.append([x.grad] + [p.grad for p in ss.parameters()])
    assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(*grads))


def test_gaussian_blur_matches_scipy() -> str | None:
    try:
        from scipy.ndimage import gaussian_filter
    except ImportError:
        return 'skipped: no scipy'
    x = torch.rand(2, 40, 23, dtype=torch.float64)
    got = gaussian_blur_scipy(x, 4.0)
    for i in range(2):
        want = gaussian_filter(x[i].numpy(), sigma=4)
        assert np.abs(got[i].numpy() - want).max() < 1e-12


def test_drop_path_seeded() -> None:
    dp = DropPath(0.5).train()
    x = torch.ones(64, 3)
    dp.generator = torch.Generator().manual_seed(7)
    a = dp(x)
    dp.generator = torch.Generator().manual_seed(7)
    b = dp(x)
    assert torch.equal(a, b) and set(a[:, 0].tolist()) == {0.0, 2.0}
    assert torch.equal(dp.eval()(x), x)


def test_weights_file_roundtrip() -> None:
    """save_weights_file -> load_weights_file reproduces the model's outputs (small grid: input_size 64)."""
    cfg = MambaADConfig(encoder='resnet18', scan='zorder', directions=4, input_size=64)
    model = build_model(cfg, seed=5).eval()
    path = TMP / 'w.safetensors'
    save_weights_file(path, model)
    tensors, meta = read_safetensors(path)
    assert MambaADConfig.from_json(meta['mambaad.config']) == cfg
    assert tensors['net_s.layers_up.0.blocks.0.smm_blocks.0.self_attention.scans.index_flat'].dtype == np.int64
    assert all(k.startswith(('mff_oce.', 'net_s.')) for k in tensors)
    loaded = load_weights_file(path)
    feats = [torch.rand(1, 64, 16, 16), torch.rand(1, 128, 8, 8), torch.rand(1, 256, 4, 4)]
    with torch.no_grad():
        want, got = model.decode(feats)[1], loaded.decode(feats)[1]
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    am = anomaly_map(feats, got, out_size=64)
    assert am['map'].shape == (1, 64, 64) and am['map'].dtype == torch.float64
    save_weights_file(TMP / 'w16.safetensors', model, half=True)
    assert read_safetensors(TMP / 'w16.safetensors')[0]['mff_oce.conv1.weight'].dtype == np.float16
    load_weights_file(TMP / 'w16.safetensors')
    del tensors['mff_oce.conv1.weight']
    write_safetensors(TMP / 'bad.safetensors', tensors, meta)
    expect_error(lambda: load_weights_file(TMP / 'bad.safetensors'), 'mff_oce.conv1.weight')


def ader_checkpoint(model: MambaAD) -> dict[str, torch.Tensor]:
    """The model's full state dict under ADer's names (conv1b3/conv1a3 for the 7x7 wrappers, plus a dead conv33)."""
    sd = {}
    for k, v in model.state_dict().items():
        sd[k.replace('.conv1b7.', '.conv1b3.').replace('.conv1a7.', '.conv1a3.')] = v.clone()
        if k.endswith('.conv1b7.0.weight'):
            prefix = k[: -len('conv1b7.0.weight')]
            sd[prefix + 'conv33.0.weight'] = torch.randn(v.shape[0], 1, 3, 3)
    return sd


def test_convert_official() -> None:
    cfg = MambaADConfig(encoder='resnet34', scan='zigzag', directions=4)
    model = build_model(cfg, encoder=ResNetEncoder('resnet34', folded=False), seed=11)
    sd = ader_checkpoint(model)
    assert any('.conv1b3.' in k for k in sd) and any('.conv33.' in k for k in sd)
    assert not any('.conv1b7.' in k for k in sd)
    ckpt_path = TMP / 'ckpt.pth'
    torch.save({'net': sd, 'epoch': 3}, ckpt_path)
    got, enc = convert_official.convert(convert_official.load_checkpoint(ckpt_path))
    assert got.config == cfg, got.config
    assert enc is not None and enc.name == 'resnet34'
    want = model.trainable_state_dict()
    have = got.trainable_state_dict()
    assert list(have) == list(want)
    assert all(torch.equal(have[k], want[k]) for k in want)
    # plain state dict with a DataParallel prefix and no encoder; the encoder name comes from the caller
    plain = {f'module.{k}': v for k, v in sd.items() if not k.startswith('net_t.')}
    got2, enc2 = convert_official.convert(plain, 'resnet18')
    assert enc2 is None and got2.config.encoder == 'resnet18'
    # CLI end to end, with the folded encoder written too
    out, enc_out = TMP / 'converted.safetensors', TMP / 'enc.safetensors'
    sys.argv = ['convert_official.py', str(ckpt_path), str(out), '--encoder-out', str(enc_out)]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert convert_official.main() == 0
    assert json.loads(printed.getvalue())['config']['scan'] == 'zigzag'
    loaded = load_weights_file(out)
    assert all(torch.equal(loaded.trainable_state_dict()[k], want[k]) for k in want)
    assert 'conv1.bias' in read_safetensors(enc_out)[0]
    # errors name the problem
    mixed = dict(sd)
    key = 'net_s.layers_up.2.blocks.1.smm_blocks.0.self_attention.scans.index_flat'
    mixed[key] = torch.from_numpy(scan_order('hilbert', 32)).view(1, 1, -1)
    expect_error(lambda: convert_official.convert(mixed), 'do not agree')
    expect_error(lambda: convert_official.convert({**sd, 'head.weight': torch.zeros(1)}), 'head.weight')
    broken = dict(sd)
    del broken['mff_oce.convf.bias']
    expect_error(lambda: convert_official.convert(broken), 'mff_oce.convf.bias')
    expect_error(lambda: convert_official.extract_state_dict({'optimizer': 1}, 'x.pth'), 'state dict')


def main() -> int:
    results: dict[str, str] = {}
    start = time.perf_counter()
    for name, fn in list(globals().items()):
        if name.startswith('test_') and callable(fn):
            try:
                results[name[5:]] = fn() or 'ok'
            except Exception as e:  # report every test, then fail
                traceback.print_exc()
                results[name[5:]] = f'FAIL: {type(e).__name__}: {e}'[:300]
    results['seconds'] = f'{time.perf_counter() - start:.1f}'
    shutil.rmtree(TMP, ignore_errors=True)
    print(json.dumps(results))
    return 1 if any(v.startswith('FAIL') for v in results.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
