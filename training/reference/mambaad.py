"""PyTorch reference of MambaAD, written from ../shared/spec/MAMBAAD.md (section numbers below refer to it).

It is the oracle for the WGSL engine and the training reference. Only stable torch APIs are used so it runs on
torch 1.13 CPU and on CUDA with torch 2.x; every builder takes a `device`.

State-dict keys match the official code: `net_t.*` (encoder), `mff_oce.*`, `net_s.layers_up.{i}.*`, including the
int64 scan permutations `...self_attention.scans.index_flat` / `index_flat_inv` (kept as buffers here; the official
code keeps them as non-trainable Parameters, which gives the same state-dict entries).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from safetensors_io import read_safetensors, write_safetensors

# ../shared beside the repository root; MAMBAAD_SHARED points elsewhere (e.g. a copy on a GPU server).
SHARED_DIR = Path(os.environ.get('MAMBAAD_SHARED', Path(__file__).resolve().parents[2] / '..' / 'shared'))
CONFIG_FORMAT = 'mambaad-studio/1'
CONFIG_METADATA_KEY = 'mambaad.config'
SCAN_TYPES = ('sweep', 'scan', 'zorder', 'zigzag', 'hilbert')
ENCODER_BLOCKS = {'resnet18': (2, 2, 2), 'resnet34': (3, 4, 6)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------


@dataclass
class MambaADConfig:
    encoder: str = 'resnet34'
    encoder_channels: list[int] = field(default_factory=lambda: [64, 128, 256])
    dims: list[int] = field(default_factory=lambda: [512, 256, 128, 64])
    depths: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    d_state: int = 16
    scan: str = 'hilbert'
    directions: int = 8
    input_size: int = 256

    def validate(self) -> MambaADConfig:
        for name in ('encoder_channels', 'dims', 'depths'):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f'config.{name} must be a list of integers, got {value!r}')
        for name in ('d_state', 'directions', 'input_size'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f'config.{name} must be an integer, got {value!r}')
        if self.encoder not in ENCODER_BLOCKS:
            raise ValueError(f'config.encoder {self.encoder!r} is not one of {sorted(ENCODER_BLOCKS)}')
        if len(self.encoder_channels) != 3 or len(self.dims) != 4 or len(self.depths) != 4:
            raise ValueError('config needs 3 encoder_channels, 4 dims and 4 depths')
        if list(self.encoder_channels) != [64, 128, 256]:
            raise ValueError(f'config.encoder_channels {self.encoder_channels} must be [64, 128, 256] for {self.encoder}')
        if list(self.dims[1:]) != list(reversed(self.encoder_channels)):
            raise ValueError(f'config.dims[1:] {self.dims[1:]} must be encoder_channels reversed {self.encoder_channels}')
        for i in range(1, 4):
            if self.dims[i - 1] != 2 * self.dims[i]:
                raise ValueError(f'config.dims {self.dims}: each stage must halve the width (PatchExpand2D)')
        for d in self.depths:
            lss_split(d)
        if self.scan not in SCAN_TYPES:
            raise ValueError(f'config.scan {self.scan!r} is not one of {SCAN_TYPES}')
        if self.directions not in DIRECTION_SETS:
            raise ValueError(f'config.directions {self.directions} is not one of {sorted(DIRECTION_SETS)}')
        if self.d_state < 1:
            raise ValueError('config.d_state must be positive')
        side = self.input_size // 32
        if self.input_size % 32 or side < 2 or side & (side - 1):
            raise ValueError(f'config.input_size {self.input_size} must be 32 times a power of two >= 2')
        return self

    def to_json(self) -> str:
        return json.dumps({'format': CONFIG_FORMAT, **asdict(self)}, separators=(',', ':'))

    @staticmethod
    def from_json(text: str) -> MambaADConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f'{CONFIG_METADATA_KEY} is not valid JSON: {e}') from e
        if not isinstance(raw, dict):
            raise ValueError(f'{CONFIG_METADATA_KEY} must be a JSON object')
        if raw.get('format') != CONFIG_FORMAT:
            raise ValueError(f'{CONFIG_METADATA_KEY}: format must be {CONFIG_FORMAT!r}, got {raw.get("format")!r}')
        known = set(MambaADConfig.__dataclass_fields__)
        unknown = set(raw) - known - {'format'}
        if unknown:
            raise ValueError(f'{CONFIG_METADATA_KEY}: unknown keys {sorted(unknown)}')
        missing = known - set(raw)
        if missing:
            raise ValueError(f'{CONFIG_METADATA_KEY}: missing keys {sorted(missing)}')
        return MambaADConfig(**{k: raw[k] for k in known}).validate()


def lss_split(depth: int) -> tuple[int, int]:
    """(number of LSS modules, HSS blocks per module) for a stage depth (§4.2)."""
    if depth > 0 and depth % 3 == 0:
        return depth // 3, 3
    if depth > 0 and depth % 2 == 0:
        return depth // 2, 2
    raise ValueError(f'stage depth {depth} is not a positive multiple of 3 or 2')


# --------------------------------------------------------------------------------------------------------------
# Scan orders (§7)
# --------------------------------------------------------------------------------------------------------------


def _hilbert_decode_2d(h: int, bits: int) -> tuple[int, int]:
    """Skilling decode as in numpy-hilbert-curve 1.0.1; returns (x = column, y = row)."""
    X = [0, 0]
    for lvl in range(bits):
        for d in range(2):
            if (h >> ((bits - 1 - lvl) * 2 + (1 - d))) & 1:
                X[d] |= 1 << (bits - 1 - lvl)
    t = X[1] >> 1
    X[1] ^= X[0]
    X[0] ^= t
    Q = 2
    while Q < (1 << bits):
        P = Q - 1
        for i in (1, 0):
            if X[i] & Q:
                X[0] ^= P
            else:
                t = (X[0] ^ X[i]) & P
                X[0] ^= t
                X[i] ^= t
        Q <<= 1
    return X[0], X[1]


def _compact_bits(z: int, start: int) -> int:
    out, k = 0, 0
    z >>= start
    while z:
        out |= (z & 1) << k
        z >>= 2
        k += 1
    return out


def scan_order(scan: str, size: int) -> np.ndarray:
    """perm[t] = raster index (row*size + col) visited at step t."""
    if size < 1 or size & (size - 1):
        raise ValueError(f'scan size {size} must be a power of two')
    S, L = size, size * size
    if scan == 'sweep':
        perm = list(range(L))
    elif scan == 'scan':
        perm = [r * S + (c if r % 2 == 0 else S - 1 - c) for r in range(S) for c in range(S)]
    elif scan == 'zorder':
        perm = [_compact_bits(z, 1) * S + _compact_bits(z, 0) for z in range(L)]
    elif scan == 'zigzag':
        perm = []
        for i in range(2 * S - 1):
            for j in range(max(0, i - S + 1), min(i, S - 1) + 1):
                perm.append((i - j) * S + j if i % 2 == 0 else j * S + (i - j))
    elif scan == 'hilbert':
        bits = S.bit_length() - 1
        perm = []
        for h in range(L):
            x, y = _hilbert_decode_2d(h, bits)
            perm.append(x + y * S)
    else:
        raise ValueError(f'scan {scan!r} is not one of {SCAN_TYPES}')
    return np.asarray(perm, dtype=np.int64)


# Geometric views of the [S,S] grid (§7.2), as the raster index into the original grid of view position (i, j).
_GEOMETRIES = ('identity', 'transpose', 'rot90', 'hflip')
# Directions as (geometry, time-reversed), in the order of the official x_proj_weight / A_logs / Ds blocks: the
# forward views first, then the same views reversed. 4 and 2 directions keep the first 2 and 1 geometries
# (checked against the ss2d_hilbert4 / scan4 / hilbert2 goldens by check_goldens.py).
DIRECTION_SETS: dict[int, list[tuple[str, bool]]] = {
    k: [(g, False) for g in _GEOMETRIES[: k // 2]] + [(g, True) for g in _GEOMETRIES[: k // 2]] for k in (2, 4, 8)
}


def direction_gathers(perm: torch.Tensor, size: int, directions: int) -> torch.Tensor:
    """G[k, t]: raster index of the original grid read at step t of direction k (int64, perm's device)."""
    i, j = perm // size, perm % size
    views = {
        'identity': i * size + j,
        'transpose': j * size + i,
        'rot90': j * size + (size - 1 - i),
        'hflip': i * size + (size - 1 - j),
    }
    return torch.stack([views[g].flip(0) if rev else views[g] for g, rev in DIRECTION_SETS[directions]])


def merge_order(directions: int) -> list[int]:
    """The official code sums decoded directions as forward/reversed pairs: 0, K/2, 1, K/2+1, ..."""
    half = directions // 2
    return [k for g in range(half) for k in (g, g + half)]


# --------------------------------------------------------------------------------------------------------------
# Selective scan (§6.1)
# --------------------------------------------------------------------------------------------------------------


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    delta_bias: torch.Tensor,
) -> torch.Tensor:
    """mamba_ssm selective_scan_ref with z=None and delta_softplus=True, fp32.

    u, delta [b, K*D, L]; A [K*D, N]; B, C [b, K, N, L] (each group of D channels shares B and C); D, delta_bias [K*D].
    Vectorised over batch, channels and states; only the time loop is sequential. Autograd-friendly.
    """
    b, KD, L = u.shape
    K, N = B.shape[1], A.shape[1]
    if KD % K:
        raise ValueError(f'selective_scan: {KD} channels do not split into {K} groups')
    Dg = KD // K
    dt = F.softplus(delta + delta_bias[None, :, None])  # torch's softplus is linear above threshold 20
    # Time-major layouts so each step reads contiguous [b, KD, N] slices.
    dt_t = dt.permute(2, 0, 1)  # [L, b, KD]
    dtu_t = (dt * u).permute(2, 0, 1)
    B_t = B.permute(3, 0, 1, 2)  # [L, b, K, N]
    C_t = C.permute(3, 0, 1, 2)
    # Work in time chunks of about 2^20 state values: the [L, b, KD, N] discretised tensors are never built whole.
    chunk = max(1, min(L, (1 << 20) // (b * KD * N)))
    h = torch.zeros(b, KD, N, dtype=u.dtype, device=u.device)
    ys = []
    for t0 in range(0, L, chunk):
        t1 = min(L, t0 + chunk)
        n = t1 - t0
        dA = torch.exp(dt_t[t0:t1, :, :, None] * A)  # [n, b, KD, N]
        dBu = (dtu_t[t0:t1].reshape(n, b, K, Dg, 1) * B_t[t0:t1, :, :, None, :]).reshape(n, b, KD, N)
        states = []
        # unbind is one autograd node; dA[t] would be one per step, each backward allocating all of dA.
        for dA_s, dBu_s in zip(dA.unbind(0), dBu.unbind(0)):
            h = torch.addcmul(dBu_s, dA_s, h)
            states.append(h)
        H = torch.stack(states).view(n, b, K, Dg, N)
        ys.append(torch.matmul(H, C_t[t0:t1, ..., None]).view(n, b, KD))
    y = torch.cat(ys).permute(1, 2, 0)
    return y + u * D[None, :, None]


# --------------------------------------------------------------------------------------------------------------
# Decoder modules (§4-§7)
# --------------------------------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """timm DropPath, scale_by_keep=True. The per-sample mask is drawn on the CPU (from `generator` when set) so a
    seed gives the same mask on every device."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = (torch.rand(x.shape[0], generator=self.generator) < keep).to(x.dtype) / keep
        return x * mask.to(x.device).view(-1, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f'p={self.p:.6f}'


class HScans(nn.Module):
    """Holds the scan permutation (official `HSCANS`): index_flat = perm, index_flat_inv = argsort(perm)."""

    def __init__(self, size: int, scan: str):
        super().__init__()
        perm = torch.from_numpy(scan_order(scan, size))
        self.register_buffer('index_flat', perm.view(1, 1, -1).clone())
        self.register_buffer('index_flat_inv', torch.argsort(perm).view(1, 1, -1))


class SS2D(nn.Module):
    def __init__(self, d_model: int, size: int, d_state: int = 16, scan: str = 'hilbert', directions: int = 8):
        super().__init__()
        if directions not in DIRECTION_SETS:
            raise ValueError(f'SS2D directions {directions} not one of {sorted(DIRECTION_SETS)}')
        self.size, self.directions, self.d_state = size, directions, d_state
        self.d_inner = Dm = 2 * d_model
        self.dt_rank = R = math.ceil(d_model / 16)
        K, N = directions, d_state
        self.in_proj = nn.Linear(d_model, 2 * Dm, bias=False)
        self.conv2d = nn.Conv2d(Dm, Dm, kernel_size=3, padding=1, groups=Dm, bias=True)
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, Dm))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, Dm, R))
        self.dt_projs_bias = nn.Parameter(torch.empty(K, Dm))
        self.A_logs = nn.Parameter(torch.empty(K * Dm, N))
        self.Ds = nn.Parameter(torch.empty(K * Dm))
        self.out_norm = nn.LayerNorm(Dm, eps=1e-5)
        self.out_proj = nn.Linear(Dm, d_model, bias=False)
        self.scans = HScans(size, scan)
        # Recompute the scan in backward instead of keeping its per-step states (~4x the [B, K*D, L, N] tensor).
        self.checkpoint_scan = False

    @torch.no_grad()
    def reset_ssm_parameters(self, generator: torch.Generator | None = None) -> None:
        """§8: the raw Parameters keep their own init (not touched by the module-wide `apply`)."""
        K, R, Dm, N = self.directions, self.dt_rank, self.d_inner, self.d_state
        dev = self.x_proj_weight.device

        def uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
            return ((torch.rand(shape, generator=generator) * 2 - 1) * bound).to(dev)

        self.x_proj_weight.copy_(uniform((K, R + 2 * N, Dm), Dm**-0.5))
        self.dt_projs_weight.copy_(uniform((K, Dm, R), R**-0.5))
        lo, hi = math.log(1e-3), math.log(1e-1)
        dt = torch.exp(torch.rand((K, Dm), generator=generator) * (hi - lo) + lo).clamp(min=1e-4)
        self.dt_projs_bias.copy_((dt + torch.log(-torch.expm1(-dt))).to(dev))
        self.A_logs.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(K * Dm, 1).to(dev))
        self.Ds.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Bsz, H, W, _ = x.shape
        if H != self.size or W != self.size:
            raise ValueError(f'SS2D built for {self.size}x{self.size} grids got {H}x{W}')
        K, Dm, N, R, L = self.directions, self.d_inner, self.d_state, self.dt_rank, H * W
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv2d(u.permute(0, 3, 1, 2).contiguous())).reshape(Bsz, Dm, L)
        gathers = direction_gathers(self.scans.index_flat.view(-1), self.size, K)  # [K, L]
        xs = u.index_select(2, gathers.reshape(-1)).view(Bsz, Dm, K, L).transpose(1, 2)  # [B, K, D, L]
        x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
        scan_args = (
            xs.reshape(Bsz, K * Dm, L),
            dts.reshape(Bsz, K * Dm, L),
            -torch.exp(self.A_logs.float()),
            Bs.contiguous(),
            Cs.contiguous(),
            self.Ds.float(),
            self.dt_projs_bias.float().view(-1),
        )
        if self.checkpoint_scan and torch.is_grad_enabled():
            y = torch.utils.checkpoint.checkpoint(selective_scan, *scan_args, use_reentrant=False)
        else:
            y = selective_scan(*scan_args)
        y = y.view(Bsz, K, Dm, L)
        # Scatter-add of each direction back to raster order == gather with the inverse permutation.
        inverse = torch.argsort(gathers, dim=1)
        order = merge_order(K)
        merged = y[:, order[0]].index_select(2, inverse[order[0]])
        for k in order[1:]:
            merged = merged + y[:, k].index_select(2, inverse[k])
        out = self.out_norm(merged.transpose(1, 2).reshape(Bsz, H, W, Dm)) * F.silu(z)
        return self.out_proj(out)


class HSSBlock(nn.Module):
    def __init__(self, dim: int, size: int, drop_path: float, d_state: int, scan: str, directions: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-5)
        self.self_attention = SS2D(dim, size, d_state, scan, directions)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


def _conv_in_silu(cin: int, cout: int, k: int, groups: int = 1, bias: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bias), nn.InstanceNorm2d(cout), nn.SiLU()
    )


class LSSModule(nn.Module):
    """§5: n HSS blocks plus 5x5 and 7x7 depthwise branches on the module input, fused by a 1x1 conv."""

    def __init__(self, dim: int, size: int, depth: int, drop_path: float, d_state: int, scan: str, directions: int):
        super().__init__()
        self.smm_blocks = nn.ModuleList(
            [HSSBlock(dim, size, drop_path, d_state, scan, directions) for _ in range(depth)]
        )
        self.conv1b7 = _conv_in_silu(dim, dim, 1)
        self.conv1a7 = _conv_in_silu(dim, dim, 1)
        self.conv1b5 = _conv_in_silu(dim, dim, 1)
        self.conv1a5 = _conv_in_silu(dim, dim, 1)
        self.conv55 = _conv_in_silu(dim, dim, 5, groups=dim, bias=False)
        self.conv77 = _conv_in_silu(dim, dim, 7, groups=dim, bias=False)
        self.finalconv11 = nn.Conv2d(3 * dim, dim, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x
        for blk in self.smm_blocks:
            s = blk(s)
        xc = x.permute(0, 3, 1, 2).contiguous()
        b5 = self.conv1a5(self.conv55(self.conv1b5(xc)))
        b7 = self.conv1a7(self.conv77(self.conv1b7(xc)))
        cat = torch.cat([s.permute(0, 3, 1, 2), b5, b7], dim=1)
        return self.finalconv11(cat).permute(0, 2, 3, 1) + x


class PatchExpand2D(nn.Module):
    """[B,H,W,2*dim] -> Linear(2dim->4dim) -> pixel shuffle with channel layout (p1, p2, c) -> LayerNorm(dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.expand = nn.Linear(2 * dim, 4 * dim, bias=False)
        self.norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Bsz, H, W, _ = x.shape
        y = self.expand(x).view(Bsz, H, W, 2, 2, self.dim).permute(0, 1, 3, 2, 4, 5)
        return self.norm(y.reshape(Bsz, 2 * H, 2 * W, self.dim))


class LSSLayerUp(nn.Module):
    def __init__(self, dim: int, size: int, depth: int, drop_paths: list[float], d_state, scan, directions, upsample):
        super().__init__()
        n_modules, per_module = lss_split(depth)
        self.upsample = PatchExpand2D(dim) if upsample else None
        self.blocks = nn.ModuleList(
            [LSSModule(dim, size, per_module, drop_paths[j], d_state, scan, directions) for j in range(n_modules)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample is not None:
            x = self.upsample(x)
        for blk in self.blocks:
            x = blk(x)
        return x


class MambaUPNet(nn.Module):
    def __init__(
        self,
        dims: list[int],
        depths: list[int],
        d_state: int = 16,
        scan: str = 'hilbert',
        directions: int = 8,
        base_size: int = 8,
        drop_path_rate: float = 0.2,
    ):
        super().__init__()
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).flip(0).tolist()
        starts = np.cumsum([0, *depths]).tolist()
        self.layers_up = nn.ModuleList(
            [
                LSSLayerUp(
                    dims[i], base_size * 2**i, depths[i], dpr[starts[i] : starts[i + 1]], d_state, scan, directions, i > 0
                )
                for i in range(len(dims))
            ]
        )

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        """z [B,C,h,w] NCHW -> [d1, d2, d3] NCHW, high resolution first; stage 0's output is dropped."""
        x = z.permute(0, 2, 3, 1).contiguous()
        outs: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers_up):
            x = layer(x)
            if i > 0:
                outs.insert(0, x.permute(0, 3, 1, 2).contiguous())
        return outs

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """§8 init. Draws on the CPU from `generator` so a seed gives the same weights on every device."""

        def normal(shape, std):
            return torch.randn(shape, generator=generator) * std

        for m in self.modules():
            if isinstance(m, LSSModule):
                for c in m.modules():
                    if isinstance(c, nn.Conv2d):
                        fan_out = c.kernel_size[0] * c.kernel_size[1] * c.out_channels // c.groups
                        c.weight.copy_(normal(c.weight.shape, math.sqrt(2.0 / fan_out)))
                        if c.bias is not None:
                            c.bias.zero_()
        for m in self.modules():
            if isinstance(m, nn.Linear):
                # timm trunc_normal_(std=.02) truncates at the absolute bounds +-2 (100 sigma): a plain normal.
                m.weight.copy_(normal(m.weight.shape, 0.02))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, SS2D):
                m.reset_ssm_parameters(generator)


# --------------------------------------------------------------------------------------------------------------
# MFF_OCE (§3)
# --------------------------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """timm Bottleneck, expansion 4, stride on the 3x3."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


class MFF_OCE(nn.Module):  # noqa: N801 - official class name
    def __init__(self, encoder_channels: list[int], out_channels: int = 512, blocks: int = 3):
        super().__init__()
        c1, c2, c3 = encoder_channels
        planes = out_channels // 4
        self.conv1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c2)
        self.conv2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c3)
        self.conv21 = nn.Conv2d(c2, c2, 1, bias=True)
        self.bn21 = nn.BatchNorm2d(c2)
        self.conv31 = nn.Conv2d(c3, c3, 1, bias=True)
        self.bn31 = nn.BatchNorm2d(c3)
        self.convf = nn.Conv2d(c3, c3, 1, bias=True)
        self.bnf = nn.BatchNorm2d(c3)
        downsample = nn.Sequential(nn.Conv2d(c3, out_channels, 1, stride=2, bias=False), nn.BatchNorm2d(out_channels))
        layers = [Bottleneck(c3, planes, 2, downsample)]
        layers += [Bottleneck(out_channels, planes) for _ in range(1, blocks)]
        self.bn_layer = nn.Sequential(*layers)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor) -> torch.Tensor:
        fpn0 = F.relu(self.bn1(self.conv1(f1)))
        fpn1 = F.relu(self.bn21(self.conv21(f2))) + fpn0
        s = F.relu(self.bn2(self.conv2(fpn1))) + F.relu(self.bn31(self.conv31(f3)))
        s = F.relu(self.bnf(self.convf(s)))
        return self.bn_layer(s)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """§8: kaiming_normal(fan_out, relu) conv weights, default U(+-1/sqrt(fan_in)) conv biases, BN 1/0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    bound = 1.0 / math.sqrt(m.in_channels * m.kernel_size[0] * m.kernel_size[1])
                    m.bias.copy_((torch.rand(m.bias.shape, generator=generator) * 2 - 1) * bound)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.weight.fill_(1.0)
                m.bias.zero_()


# --------------------------------------------------------------------------------------------------------------
# Encoder (§2): ResNet18/34 stem + layer1..3, with BN or with BN folded into conv biases
# --------------------------------------------------------------------------------------------------------------


def _norm(channels: int, folded: bool) -> nn.Module:
    return nn.Identity() if folded else nn.BatchNorm2d(channels)


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, folded: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=folded)
        self.bn1 = _norm(planes, folded)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=folded)
        self.bn2 = _norm(planes, folded)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=folded), _norm(planes, folded)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNetEncoder(nn.Module):
    """Frozen, always in eval mode. Returns [layer1, layer2, layer3] outputs (after their final ReLU)."""

    def __init__(self, name: str, folded: bool):
        super().__init__()
        if name not in ENCODER_BLOCKS:
            raise ValueError(f'encoder {name!r} is not one of {sorted(ENCODER_BLOCKS)}')
        self.name, self.folded = name, folded
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=folded)
        self.bn1 = _norm(64, folded)
        inplanes = 64
        for li, (planes, n) in enumerate(zip((64, 128, 256), ENCODER_BLOCKS[name])):
            stride = 1 if li == 0 else 2
            blocks = [BasicBlock(inplanes, planes, stride, folded)]
            blocks += [BasicBlock(planes, planes, 1, folded) for _ in range(1, n)]
            setattr(self, f'layer{li + 1}', nn.Sequential(*blocks))
            inplanes = planes
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ResNetEncoder:
        return super().train(False)

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(img)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def build_encoder(name: str, state_dict: dict[str, torch.Tensor], device: str | torch.device = 'cpu') -> ResNetEncoder:
    """Builds the encoder from BN-folded weights (conv biases, no BN) or from timm/torchvision weights with BN.
    A `net_t.` prefix (official checkpoints) is stripped; fc.* and layer4.* are ignored."""
    sd = {k[len('net_t.') :] if k.startswith('net_t.') else k: v for k, v in state_dict.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith(('fc.', 'layer4.'))}
    folded = 'conv1.bias' in sd
    enc = ResNetEncoder(name, folded)
    missing, unexpected = enc.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(
            f'{name} encoder weights ({"BN-folded" if folded else "with BN"}) do not fit: '
            f'missing {missing[:5]}{"..." if len(missing) > 5 else ""}, unexpected {unexpected[:5]}'
        )
    return enc.to(device)


# --------------------------------------------------------------------------------------------------------------
# Whole model, anomaly map (§11)
# --------------------------------------------------------------------------------------------------------------


class MambaAD(nn.Module):
    """mff_oce + net_s (trainable) and optionally net_t (frozen encoder); official state-dict names."""

    def __init__(self, config: MambaADConfig, encoder: ResNetEncoder | None = None, drop_path_rate: float = 0.2):
        super().__init__()
        self.config = config.validate()
        if encoder is not None and encoder.name != config.encoder:
            raise ValueError(f'encoder {encoder.name} does not match config.encoder {config.encoder}')
        self.net_t = encoder
        self.mff_oce = MFF_OCE(config.encoder_channels, config.dims[0])
        self.net_s = MambaUPNet(
            config.dims,
            config.depths,
            config.d_state,
            config.scan,
            config.directions,
            config.input_size // 32,
            drop_path_rate,
        )

    def train(self, mode: bool = True) -> MambaAD:
        super().train(mode)
        if self.net_t is not None:
            self.net_t.eval()
        return self

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.mff_oce.reset_parameters(generator)
        self.net_s.reset_parameters(generator)

    def set_drop_path_generator(self, generator: torch.Generator | None) -> None:
        for m in self.modules():
            if isinstance(m, DropPath):
                m.generator = generator

    def set_scan_checkpointing(self, enabled: bool) -> None:
        """Training memory: a full-size batch-16 step took 103 GiB without and 23 GiB with it (H200, +25% time)."""
        for m in self.modules():
            if isinstance(m, SS2D):
                m.checkpoint_scan = enabled

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(('mff_oce.', 'net_s.'))}

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder features [f1, f2, f3] -> (bottleneck z, [d1, d2, d3])."""
        z = self.mff_oce(*feats)
        return z, self.net_s(z)

    def forward(self, img: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self.net_t is None:
            raise ValueError('MambaAD.forward needs an encoder (net_t); use decode() with features instead')
        with torch.no_grad():
            feats_t = [f.detach() for f in self.net_t(img)]
        return feats_t, self.decode(feats_t)[1]


def build_model(
    config: MambaADConfig,
    device: str | torch.device = 'cpu',
    encoder: ResNetEncoder | None = None,
    seed: int | None = None,
    drop_path_rate: float = 0.2,
) -> MambaAD:
    """Builds the model; with `seed`, initialises it (§8) from a CPU generator so every device gets the same weights."""
    model = MambaAD(config, encoder, drop_path_rate)
    if seed is not None:
        model.reset_parameters(torch.Generator().manual_seed(seed))
    return model.to(device)


def use_ieee_fp32() -> None:
    """Turns TF32 off for CUDA matmuls and cuDNN convolutions (cuDNN uses it by default on Ampere and later, which
    moves the encoder features by ~1e-3 relative); the oracle needs IEEE fp32. No effect on CPU."""
    conv = getattr(torch.backends.cudnn, 'conv', None)
    if conv is not None and hasattr(conv, 'fp32_precision'):  # torch >= 2.9; mixing with allow_tf32 is refused
        torch.backends.cuda.matmul.fp32_precision = 'ieee'
        conv.fp32_precision = 'ieee'
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def cosine_distance_maps(feats_t: list[torch.Tensor], feats_s: list[torch.Tensor]) -> list[torch.Tensor]:
    """1 - cos over channels per scale, [B,h,w] each."""
    return [1 - F.cosine_similarity(t, s, dim=1, eps=1e-8) for t, s in zip(feats_t, feats_s)]


def gaussian_blur_scipy(maps: torch.Tensor, sigma: float = 4.0, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter on each [H,W] of [B,H,W] in float64: radius int(truncate*sigma+0.5), 'reflect'
    (half-sample symmetric) borders, rows (axis 0) first, then columns."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=maps.device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    w = w / w.sum()
    out = maps.to(torch.float64)
    for axis in (1, 2):
        n = out.shape[axis]
        idx = torch.arange(-radius, n + radius, device=maps.device)
        # half-sample symmetric reflection: -1 -> 0, -2 -> 1, n -> n-1 (works for radius >= n too)
        idx = idx % (2 * n)
        idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
        padded = out.index_select(axis, idx)
        windows = padded.unfold(axis, 2 * radius + 1, 1)  # [..., n, taps] along `axis`
        out = torch.matmul(windows, w)
    return out


def anomaly_map(
    feats_t: list[torch.Tensor], feats_s: list[torch.Tensor], out_size: int = 256, sigma: float = 4.0
) -> dict[str, torch.Tensor]:
    """ADer cal_anomaly_map (uni_am=False, amap_mode='add', use_cos=True): per-scale 1-cos, bilinear
    align_corners=True upsample (float32), sum in float64 / (3*3), gaussian blur in float64; score = max."""
    cos = cosine_distance_maps(feats_t, feats_s)
    ups = [F.interpolate(c[:, None], size=(out_size, out_size), mode='bilinear', align_corners=True)[:, 0] for c in cos]
    total = torch.zeros(ups[0].shape, dtype=torch.float64, device=ups[0].device)
    for u in ups:
        total = total + u.to(torch.float64)
    before = total / (len(ups) * len(ups))
    blurred = gaussian_blur_scipy(before, sigma)
    return {
        'cos': cos,
        'upsampled': ups,
        'map_before_blur': before,
        'map': blurred,
        'score': blurred.flatten(1).max(dim=1).values,
    }


def load_image(path: str, size: int = 256) -> torch.Tensor:
    """PIL RGB -> antialiased bilinear resize to size^2 -> [1,3,size,size] ImageNet-normalised float32 (§9)."""
    from PIL import Image

    img = Image.open(path).convert('RGB')
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std)[None]


def folded_encoder_state_dict(encoder: ResNetEncoder) -> dict[str, torch.Tensor]:
    """Encoder weights with each eval-mode BatchNorm folded into the conv before it (conv gets a bias), in the key
    layout of ../shared/models/resnet18-imagenet-l1-l3-bnfolded.safetensors."""
    if encoder.folded:
        return {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for name, m in encoder.named_modules():
        if not isinstance(m, nn.Conv2d):
            continue
        parent, _, leaf = name.rpartition('.')
        if leaf == '0':  # downsample.0 -> downsample.1
            bn = encoder.get_submodule(f'{parent}.1')
        else:
            bn = encoder.get_submodule(f'{parent + "." if parent else ""}bn{leaf[len("conv"):]}')
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        out[f'{name}.weight'] = (m.weight * scale[:, None, None, None]).detach().clone()
        out[f'{name}.bias'] = (bn.bias - bn.running_mean * scale).detach().clone()
    return out


# --------------------------------------------------------------------------------------------------------------
# Weights file (README.md: "Weights file")
# --------------------------------------------------------------------------------------------------------------


def save_weights_file(path, model: MambaAD, half: bool = False, extra_metadata: dict[str, str] | None = None) -> None:
    """Writes the trainable parts (mff_oce.*, net_s.*) under their official names: floating tensors as F32 (or F16
    with `half`), scan indices and BN num_batches_tracked as I64; metadata `mambaad.config`."""
    tensors = {}
    for k, v in model.trainable_state_dict().items():
        a = v.detach().cpu()
        if a.is_floating_point():
            a = a.to(torch.float16 if half else torch.float32)
        tensors[k] = a.numpy()
    write_safetensors(path, tensors, {CONFIG_METADATA_KEY: model.config.to_json(), **(extra_metadata or {})})


def load_weights_file(path, device: str | torch.device = 'cpu', encoder: ResNetEncoder | None = None) -> MambaAD:
    tensors, metadata = read_safetensors(path)
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f'{path}: no {CONFIG_METADATA_KEY} metadata, not a MambaAD weights file')
    config = MambaADConfig.from_json(metadata[CONFIG_METADATA_KEY])
    model = MambaAD(config, encoder)
    state = model.trainable_state_dict()
    missing = sorted(set(state) - set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    if missing or unexpected:
        raise ValueError(f'{path}: weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}')
    for k, v in state.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f'{path}: {k} has shape {list(tensors[k].shape)}, config needs {list(v.shape)}')
    model.load_state_dict({k: torch.from_numpy(tensors[k]).to(v.dtype) for k, v in state.items()}, strict=False)
    return model.to(device).eval()
