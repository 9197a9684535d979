"""Minimal safetensors reader/writer on numpy (no external package).

Format: 8-byte little-endian header length N, N bytes of JSON header, then the raw little-endian tensor bytes.
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
start of the data section) and may hold "__metadata__": {str: str}.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES: dict[str, np.dtype] = {
    'F64': np.dtype('<f8'),
    'F32': np.dtype('<f4'),
    'F16': np.dtype('<f2'),
    'I64': np.dtype('<i8'),
    'I32': np.dtype('<i4'),
    'U8': np.dtype('u1'),
    'BOOL': np.dtype('?'),
}
_NAMES: dict[np.dtype, str] = {v: k for k, v in _DTYPES.items()}

# Headers above this size are not plausible for our files and indicate a corrupt or foreign file.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    pass


def _parse_header(buf: bytes | memoryview, what: str) -> tuple[dict, int]:
    if len(buf) < 8:
        raise SafetensorsError(f'{what}: {len(buf)} bytes is too short for a safetensors file')
    (n,) = struct.unpack('<Q', bytes(buf[:8]))
    if n > _MAX_HEADER_BYTES or 8 + n > len(buf):
        raise SafetensorsError(f'{what}: header length {n} does not fit the file of {len(buf)} bytes')
    try:
        header = json.loads(bytes(buf[8 : 8 + n]).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f'{what}: header is not valid JSON ({e})') from e
    if not isinstance(header, dict):
        raise SafetensorsError(f'{what}: header is not a JSON object')
    return header, 8 + n


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Returns (tensors, metadata). Arrays are writable copies in native byte order."""
    what = str(path)
    buf = Path(path).read_bytes()
    header, start = _parse_header(buf, what)
    metadata = header.pop('__metadata__', None) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsError(f'{what}: __metadata__ must map strings to strings')
    data_len = len(buf) - start
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        dtype_name = info.get('dtype')
        if dtype_name not in _DTYPES:
            raise SafetensorsError(f'{what}: tensor {name!r} has unsupported dtype {dtype_name!r}')
        dtype = _DTYPES[dtype_name]
        shape = tuple(int(s) for s in info['shape'])
        begin, end = (int(o) for o in info['data_offsets'])
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= begin <= end <= data_len) or end - begin != count * dtype.itemsize:
            raise SafetensorsError(
                f'{what}: tensor {name!r} offsets [{begin},{end}) do not match {dtype_name}{list(shape)} '
                f'within {data_len} data bytes'
            )
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start + begin).reshape(shape)
        tensors[name] = arr.astype(dtype.newbyteorder('='), copy=True)
    return tensors, dict(metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    with open(path, 'rb') as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f'{path}: too short for a safetensors file')
        (n,) = struct.unpack('<Q', head)
        if n > _MAX_HEADER_BYTES:
            raise SafetensorsError(f'{path}: implausible header length {n}')
        header, _ = _parse_header(head + f.read(n), str(path))
    return dict(header.get('__metadata__') or {})


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Writes tensors in the given order, 8-byte aligned data section (header padded with spaces)."""
    header: dict[str, object] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f'metadata {k!r}: keys and values must be strings')
        header['__metadata__'] = dict(metadata)
    blobs: list[bytes] = []
    offset = 0
    for name, arr in tensors.items():
        a = np.asarray(arr)
        dtype = a.dtype.newbyteorder('<') if a.dtype.byteorder not in ('|',) else a.dtype
        if dtype not in _NAMES:
            raise SafetensorsError(f'tensor {name!r}: dtype {a.dtype} is not supported')
        blob = np.ascontiguousarray(a, dtype=dtype).tobytes()
        header[name] = {'dtype': _NAMES[dtype], 'shape': list(a.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(',', ':')).encode('utf-8')
    raw += b' ' * (-(8 + len(raw)) % 8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)
