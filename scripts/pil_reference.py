#!/usr/bin/python3
"""PIL 9.4 reference outputs for src/image/preprocess.test.ts.

Usage: /usr/bin/python3 scripts/pil_reference.py OUT_DIR [IMAGE ...]

Writes test fixtures into OUT_DIR/fixtures: images PIL writes itself (PNG, JPEG, WebP, BMP in many modes) and
PNG/BMP variants PIL cannot write (16-bit RGB, 2/4-bit gray, interlaced, every PNG filter type, short palettes,
RLE and bit-field BMPs), written by the small encoders below and read back by PIL like any other file.
Then, for every fixture and every IMAGE given, writes what the reference pipeline computes:
  ref/N.full    np.array(Image.open(f).convert('RGB'))                      (H x W x 3 uint8)
  ref/N.r256    np.array(that.resize((256, 256), Image.BILINEAR))           (256 x 256 x 3 uint8)
  ref/N.mask    ADer's mask: convert('L') > 0 -> *255 -> resize -> ToTensor > 0.5   (256 x 256 uint8, 0/1)
  ref/N.tensor  ToTensor + Normalize(ImageNet) in torch float32 (only for the first IMAGE; 3 x 256 x 256)
and OUT_DIR/manifest.json listing, per input, its path, PIL's mode and size, or the error PIL raised.
"""

import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

SIZE = (256, 256)


def synthetic_rgb(width, height, seed=0):
    """Gradients, a hard-edged disc and noise: smooth and sharp content for the codecs and the resizer."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 127.5 + 127.5 * np.sin(x / max(width, 1) * 12.0 + y / max(height, 1) * 3.0)
    green = 255.0 * x / max(width - 1, 1)
    blue = 230.0 * (((x - width / 2) ** 2 + (y - height / 2) ** 2) < (min(width, height) / 3) ** 2)
    img = np.stack([red, green, blue], -1) + rng.normal(0, 12, (height, width, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --- a small PNG writer: any colour type and depth, all five filter types, Adam7, split IDAT ---


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """One row of samples (1-D) as PNG bytes: big-endian 16-bit, bytes, or MSB-first packed sub-byte samples."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    bits = np.unpackbits(samples.astype(np.uint8)[:, None], axis=1)[:, 8 - depth :].reshape(-1)
    return np.packbits(bits).tobytes()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_row(kind, row, prev, bpp):
    x = np.frombuffer(row, np.uint8).astype(np.int32)
    b = np.frombuffer(prev, np.uint8).astype(np.int32)
    a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])
    predictor = [0 * x, a, b, (a + b) // 2, paeth(a, b, c)][kind]
    return bytes([kind]) + ((x - predictor) & 0xFF).astype(np.uint8).tobytes()


def png_bytes(pixels, depth, color_type, interlace=False, extra=b"", idat_parts=1):
    """pixels: (H, W, samples) array of sample values. Rows cycle through filter types 0..4."""
    height, width, samples = pixels.shape
    bpp = max(1, samples * depth // 8)
    passes = (
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        if interlace
        else [(0, 0, 1, 1)]
    )
    raw = bytearray()
    row_index = 0
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = bytes(len(pack_row(sub[0].reshape(-1), depth)))
        for row in sub:
            packed = pack_row(row.reshape(-1), depth)
            raw += filter_row(row_index % 5, packed, prev, bpp)
            prev = packed
            row_index += 1
    compressed = zlib.compress(bytes(raw), 9)
    step = -(-len(compressed) // idat_parts)
    idats = b"".join(png_chunk(b"IDAT", compressed[i : i + step]) for i in range(0, len(compressed), step))
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 1 if interlace else 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra + idats + png_chunk(b"IEND", b"")


# --- a small BMP writer: palette, RLE8/RLE4, 16-bit, bit fields, top-down ---


def bmp_bytes(rows_bytes, width, height, bits, compression=0, palette=b"", masks=None, top_down=False):
    """rows_bytes: the pixel data exactly as stored (already padded / RLE-coded), in file order."""
    data = b"".join(rows_bytes)
    header_size = 108 if masks is not None and len(masks) == 4 else 40
    info = struct.pack(
        "<IiiHHIIiiII",
        header_size,
        width,
        -height if top_down else height,
        1,
        bits,
        compression,
        len(data),
        2835,
        2835,
        len(palette) // 4,
        0,
    )
    if header_size == 108:
        info += struct.pack("<4I", *masks) + b"\0" * (108 - 40 - 16)
    elif masks is not None:
        info += struct.pack("<3I", *masks)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


def pad4(row):
    return row + b"\0" * (-len(row) % 4)


def rle8_rows(indices):
    """RLE8 with encoded runs, absolute runs, a delta escape on the first row, end-of-line and end-of-bitmap."""
    out = []
    for r, row in enumerate(indices[::-1]):
        row = list(row)
        code = bytearray()
        i = 0
        if r == 0 and len(row) > 4:
            code += bytes([0, 2, 3, 0])  # delta: skip 3 pixels (PIL fills them with index 0)
            row[:3] = [0, 0, 0]
            i = 3
        while i < len(row):
            run = 1
            while i + run < len(row) and row[i + run] == row[i] and run < 255:
                run += 1
            if run >= 3 or len(row) - i < 3:
                code += bytes([run, row[i]])
                i += run
            else:
                lit = min(len(row) - i, 255)
                lit = 3 if lit < 3 else lit
                take = row[i : i + min(lit, 10)]
                code += bytes([0, len(take)]) + bytes(take) + (b"\0" if len(take) % 2 else b"")
                i += len(take)
        out.append(bytes(code) + b"\0\0")
    out[-1] += b"\0\1"
    return out


def rle4_rows(indices):
    """RLE4 with encoded two-colour runs and absolute runs (even lengths), end-of-line and end-of-bitmap."""
    out = []
    for row in indices[::-1]:
        code = bytearray()
        for i in range(0, len(row), 8):
            chunk = list(row[i : i + 8])
            if len(chunk) >= 4 and len(chunk) % 2 == 0 and i % 16 == 0:
                packed = bytes((chunk[j] << 4) | chunk[j + 1] for j in range(0, len(chunk), 2))
                code += bytes([0, len(chunk)]) + packed + (b"\0" if len(packed) % 2 else b"")
            else:
                for j in range(0, len(chunk), 2):
                    pair = chunk[j : j + 2]
                    code += bytes([len(pair), (pair[0] << 4) | (pair[-1] if len(pair) > 1 else 0)])
        out.append(bytes(code) + b"\0\0")
    out[-1] += b"\0\1"
    return out


# --- a tiny baseline JPEG encoder for layouts PIL does not write: 4:4:0, 4:1:1, mixed sampling, restart markers,
# one scan per component, Adobe RGB / YCCK / CMYK, 'R','G','B' component ids. libjpeg (via PIL) decodes them. ---


def jpeg_tables_from_pil():
    """The quantization and Huffman tables libjpeg writes (quality 75, Annex K Huffman tables)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", quality=75)
    data = buf.getvalue()
    quant, huffman = {}, {}
    pos = 2
    while data[pos + 1] != 0xDA:
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        seg = data[pos + 4 : pos + 2 + length]
        i = 0
        while data[pos + 1] == 0xDB and i < len(seg):
            zigzag = np.frombuffer(seg[i + 1 : i + 65], np.uint8).astype(np.int32)
            quant[seg[i] & 15] = zigzag
            i += 65
        while data[pos + 1] == 0xC4 and i < len(seg):
            counts = seg[i + 1 : i + 17]
            n = sum(counts)
            huffman[seg[i]] = (bytes(counts), bytes(seg[i + 17 : i + 17 + n]))
            i += 17 + n
        pos += 2 + length
    return quant, huffman


ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
     21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60,
     61, 54, 47, 55, 62, 63]
)
DCT8 = np.array([[np.sqrt((1 if u else 0.5) / 4) * np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)] for u in range(8)])


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, length):
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xFF
            self.out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def huffman_codes(counts, values):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            codes[values[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


def encode_block(bits, zz, pred, dc, ac):
    diff = int(zz[0]) - pred
    cat = abs(diff).bit_length()
    bits.put(*dc[cat])
    bits.put(diff if diff >= 0 else diff + (1 << cat) - 1, cat)
    run = 0
    for v in zz[1:]:
        v = int(v)
        if v == 0:
            run += 1
            continue
        while run > 15:
            bits.put(*ac[0xF0])
            run -= 16
        cat = abs(v).bit_length()
        bits.put(*ac[(run << 4) | cat])
        bits.put(v if v >= 0 else v + (1 << cat) - 1, cat)
        run = 0
    if run:
        bits.put(*ac[0])
    return int(zz[0])


def jpeg_bytes(planes, sampling, ids=None, jfif=True, adobe=None, restart=0, separate_scans=False):
    """planes: full-resolution component planes (H x W floats 0..255), subsampled here by box averaging."""
    quant, huffman = jpeg_tables_from_pil()
    height, width = planes[0].shape
    max_h = max(h for h, _ in sampling)
    max_v = max(v for _, v in sampling)
    mcus_x, mcus_y = -(-width // (8 * max_h)), -(-height // (8 * max_v))
    ids = ids or list(range(1, len(planes) + 1))
    comps = []
    for ci, (plane, (h, v)) in enumerate(zip(planes, sampling)):
        fx, fy = max_h // h, max_v // v
        padded = np.pad(plane, ((0, -height % fy), (0, -width % fx)), mode="edge")
        small = padded.reshape(padded.shape[0] // fy, fy, padded.shape[1] // fx, fx).mean(axis=(1, 3))
        full = np.pad(small, ((0, mcus_y * v * 8 - small.shape[0]), (0, mcus_x * h * 8 - small.shape[1])), mode="edge")
        table = 0 if ci == 0 else 1
        q = np.zeros(64, np.int32)
        q[ZIGZAG] = quant[table]
        blocks = {}
        for by in range(full.shape[0] // 8):
            for bx in range(full.shape[1] // 8):
                f = DCT8 @ (full[by * 8 : by * 8 + 8, bx * 8 : bx * 8 + 8] - 128.0) @ DCT8.T
                blocks[by, bx] = np.rint(f.reshape(64) / q).astype(np.int32)[ZIGZAG]
        comps.append(dict(h=h, v=v, table=table, blocks=blocks, wb=-(-small.shape[1] // 8), hb=-(-small.shape[0] // 8)))
    dc = [huffman_codes(*huffman[0x00]), huffman_codes(*huffman[0x01])]
    ac = [huffman_codes(*huffman[0x10]), huffman_codes(*huffman[0x11])]

    def seg(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    out = b"\xff\xd8"
    if jfif:
        out += seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        out += seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([adobe]))
    for t in (0, 1):
        out += seg(0xDB, bytes([t]) + quant[t].astype(np.uint8).tobytes())
    sof = struct.pack(">BHHB", 8, height, width, len(comps))
    for cid, c in zip(ids, comps):
        sof += bytes([cid, (c["h"] << 4) | c["v"], c["table"]])
    out += seg(0xC0, sof)
    for key, (counts, values) in sorted(huffman.items()):
        out += seg(0xC4, bytes([key]) + counts + values)
    if restart:
        out += seg(0xDD, struct.pack(">H", restart))
    scans = [[i] for i in range(len(comps))] if separate_scans else [list(range(len(comps)))]
    for scan in scans:
        header = bytes([len(scan)]) + b"".join(bytes([ids[i], (comps[i]["table"] << 4) | comps[i]["table"]]) for i in scan)
        out += seg(0xDA, header + b"\x00\x3f\x00")
        bits = BitWriter()
        preds = [0] * len(comps)
        if len(scan) == 1:
            c = comps[scan[0]]
            units = [[(scan[0], by, bx)] for by in range(c["hb"]) for bx in range(c["wb"])]
        else:
            units = [
                [(i, my * comps[i]["v"] + v, mx * comps[i]["h"] + h) for i in scan for v in range(comps[i]["v"]) for h in range(comps[i]["h"])]
                for my in range(mcus_y)
                for mx in range(mcus_x)
            ]
        for n, unit in enumerate(units):
            if restart and n and n % restart == 0:
                bits.flush()
                bits.out += bytes([0xFF, 0xD0 + (n // restart - 1) % 8])
                preds = [0] * len(comps)
            for i, by, bx in unit:
                c = comps[i]
                preds[i] = encode_block(bits, c["blocks"][by, bx], preds[i], dc[c["table"]], ac[c["table"]])
        bits.flush()
        out += bytes(bits.out)
    return out + b"\xff\xd9"


def write_fixtures(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    files = []

    def save(name, data_or_image, **params):
        path = os.path.join(out_dir, name)
        if isinstance(data_or_image, bytes):
            with open(path, "wb") as f:
                f.write(data_or_image)
        else:
            data_or_image.save(path, **params)
        files.append(path)

    rgb = synthetic_rgb(333, 251)
    im = Image.fromarray(rgb)
    gray = im.convert("L")
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 333).astype(np.uint8), (251, 1)))
    rgba = im.copy()
    rgba.putalpha(alpha)
    la = gray.copy()
    la.putalpha(alpha)
    palette = im.quantize(256)
    palette16 = im.quantize(16)

    # PNG written by PIL
    save("png_rgb.png", im)
    save("png_rgba.png", rgba)
    save("png_gray.png", gray)
    save("png_gray_alpha.png", la)
    save("png_palette.png", palette)
    save("png_palette_4bit.png", palette16)
    save("png_palette_trns_bytes.png", palette, transparency=bytes(range(0, 256)))
    save("png_palette_trns_index.png", palette, transparency=7)
    save("png_1bit.png", gray.convert("1"))
    save("png_gray16.png", Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)))
    save("png_gray16_low.png", Image.fromarray((rgb[..., 0].astype(np.uint16) + rgb[..., 2]).astype(np.uint16)))
    save("png_1x1.png", Image.fromarray(rgb[:1, :1]))
    save("png_257x3.png", Image.fromarray(synthetic_rgb(257, 3, 1)))
    save("png_3x257.png", Image.fromarray(synthetic_rgb(3, 257, 2)))
    save("png_upscale_100x60.png", Image.fromarray(synthetic_rgb(100, 60, 3)))
    save("png_256x256.png", Image.fromarray(synthetic_rgb(256, 256, 4)))
    # The streaming decode + resize path (src/image/preprocess.test.ts decodes it under a tight pixel budget).
    save("png_large_2000x1500.png", Image.fromarray(synthetic_rgb(2000, 1500, 9)), compress_level=1)

    # PNG variants PIL cannot write
    wide = (rgb.astype(np.uint16) * 257 + np.arange(333, dtype=np.uint16)[None, :, None]) & 0xFFFF
    alpha16 = (np.asarray(alpha, np.uint16) * 257)[..., None]
    gray16 = np.asarray(gray, np.uint16)[..., None] * 257 + 3
    save("png_rgb16.png", png_bytes(wide, 16, 2))
    save("png_rgba16.png", png_bytes(np.concatenate([wide, alpha16], -1), 16, 6))
    save("png_gray_alpha16.png", png_bytes(np.concatenate([gray16, alpha16], -1), 16, 4))
    save("png_rgb8_filters.png", png_bytes(rgb, 8, 2, idat_parts=7))
    save("png_gray2.png", png_bytes((np.asarray(gray) >> 6)[..., None], 2, 0))
    save("png_gray4.png", png_bytes((np.asarray(gray) >> 4)[..., None], 4, 0))
    trns = png_chunk(b"tRNS", struct.pack(">HHH", *rgb[0, 0]))
    save("png_rgb_trns.png", png_bytes(rgb, 8, 2, extra=trns))
    short_palette = png_chunk(b"PLTE", bytes(range(30)))  # 10 entries; higher indices read as gray
    save("png_short_palette.png", png_bytes((np.asarray(gray) >> 4)[..., None] * 3, 8, 3, extra=short_palette))
    odd = synthetic_rgb(37, 29, 5)
    save("png_interlaced_rgb.png", png_bytes(odd, 8, 2, interlace=True))
    save("png_interlaced_rgb_big.png", png_bytes(rgb, 8, 2, interlace=True))
    save("png_interlaced_gray4.png", png_bytes((odd[..., :1] >> 4), 4, 0, interlace=True))
    save("png_interlaced_gray1.png", png_bytes((odd[..., :1] >> 7), 1, 0, interlace=True))
    odd_alpha = np.full((29, 37, 1), 200, np.uint16)
    save("png_interlaced_rgba16.png", png_bytes(np.concatenate([odd * 257, odd_alpha * 257], -1), 16, 6, interlace=True))
    pal = png_chunk(b"PLTE", np.asarray(palette16.getpalette()[:48], np.uint8).tobytes())
    save("png_interlaced_palette4.png", png_bytes(np.asarray(palette16)[:29, :37, None], 4, 3, interlace=True, extra=pal))
    save("png_interlaced_2x2.png", png_bytes(odd[:2, :2], 8, 2, interlace=True))

    # JPEG written by PIL (libjpeg-turbo)
    save("jpeg_420.jpg", im, quality=75)
    save("jpeg_444.jpg", im, quality=90, subsampling=0)
    save("jpeg_422.jpg", im, quality=85, subsampling=1)
    save("jpeg_q100.jpg", im, quality=100)
    save("jpeg_optimized.jpg", im, quality=80, optimize=True)
    save("jpeg_progressive.jpg", im, quality=80, progressive=True)
    save("jpeg_progressive_444.jpg", im, quality=92, progressive=True, subsampling=0)
    save("jpeg_gray.jpg", gray, quality=85)
    save("jpeg_gray_progressive.jpg", gray, quality=85, progressive=True)
    save("jpeg_cmyk.jpg", im.convert("CMYK"), quality=90)
    save("jpeg_257x3.jpg", Image.fromarray(synthetic_rgb(257, 3, 1)), quality=80)
    save("jpeg_3x257.jpg", Image.fromarray(synthetic_rgb(3, 257, 2)), quality=80)
    save("jpeg_17x9.jpg", Image.fromarray(synthetic_rgb(17, 9, 6)), quality=80)
    save("jpeg_2x2.jpg", Image.fromarray(synthetic_rgb(2, 2, 7)), quality=80)
    save("jpeg_1x1.jpg", Image.fromarray(rgb[:1, :1]), quality=80)

    # JPEG layouts PIL cannot write
    tiny = synthetic_rgb(61, 45, 10).astype(np.float64)
    r, g, b = tiny[..., 0], tiny[..., 1], tiny[..., 2]
    ycc = [0.299 * r + 0.587 * g + 0.114 * b, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b, 128 + 0.5 * r - 0.418688 * g - 0.081312 * b]
    ramp = np.tile(np.linspace(0, 255, 61), (45, 1))
    save("jpeg_py_440.jpg", jpeg_bytes(ycc, [(1, 2), (1, 1), (1, 1)]))
    save("jpeg_py_411.jpg", jpeg_bytes(ycc, [(4, 1), (1, 1), (1, 1)]))
    save("jpeg_py_mixed.jpg", jpeg_bytes(ycc, [(2, 2), (1, 2), (1, 1)]))
    save("jpeg_py_restart.jpg", jpeg_bytes(ycc, [(2, 2), (1, 1), (1, 1)], restart=3))
    save("jpeg_py_restart_gray.jpg", jpeg_bytes(ycc[:1], [(1, 1)], restart=5))
    save("jpeg_py_gray_2x2_factors.jpg", jpeg_bytes(ycc[:1], [(2, 2)]))
    save("jpeg_py_separate_scans.jpg", jpeg_bytes(ycc, [(2, 2), (1, 1), (1, 1)], separate_scans=True))
    save("jpeg_py_adobe_rgb.jpg", jpeg_bytes([r, g, b], [(1, 1)] * 3, jfif=False, adobe=0))
    save("jpeg_py_rgb_ids.jpg", jpeg_bytes([r, g, b], [(1, 1)] * 3, ids=[82, 71, 66], jfif=False))
    save("jpeg_py_ycck.jpg", jpeg_bytes(ycc + [ramp], [(2, 2), (1, 1), (1, 1), (2, 2)], jfif=False, adobe=2))
    save("jpeg_py_cmyk_no_adobe.jpg", jpeg_bytes([r, g, b, ramp], [(1, 1)] * 4, jfif=False))

    # WebP written by PIL (libwebp)
    save("webp_lossy.webp", im, quality=80)
    save("webp_lossless.webp", im, lossless=True)
    save("webp_lossy_alpha.webp", rgba, quality=80)
    save("webp_lossless_alpha.webp", rgba, lossless=True, exact=True)
    save("webp_17x9.webp", Image.fromarray(synthetic_rgb(17, 9, 6)), quality=70)

    # BMP written by PIL
    save("bmp_24.bmp", im)
    save("bmp_32_rgba.bmp", rgba)
    save("bmp_8_palette.bmp", palette)
    save("bmp_8_gray.bmp", gray)
    save("bmp_1bit.bmp", gray.convert("1"))
    save("bmp_257x3.bmp", Image.fromarray(synthetic_rgb(257, 3, 1)))

    # BMP variants PIL cannot write
    small = synthetic_rgb(37, 29, 8)
    idx16 = np.asarray(Image.fromarray(small).quantize(16))
    pal16 = b"".join(bytes([c[2], c[1], c[0], 0]) for c in np.asarray(palette16.getpalette()[:48]).reshape(16, 3))
    save("bmp_4bit.bmp", bmp_bytes([pad4(pack_row(r, 4)) for r in idx16[::-1]], 37, 29, 4, palette=pal16))
    save("bmp_rle4.bmp", bmp_bytes(rle4_rows(idx16), 37, 29, 4, compression=2, palette=pal16))
    idx256 = np.asarray(Image.fromarray(small).quantize(200))
    pal200 = b"".join(bytes([c[2], c[1], c[0], 0]) for c in np.asarray(palette.getpalette()[:600]).reshape(200, 3))
    save("bmp_rle8.bmp", bmp_bytes(rle8_rows(idx256), 37, 29, 8, compression=1, palette=pal200))
    px = small.astype(np.uint32)
    p555 = ((px[..., 0] >> 3) << 10) | ((px[..., 1] >> 3) << 5) | (px[..., 2] >> 3)
    p565 = ((px[..., 0] >> 3) << 11) | ((px[..., 1] >> 2) << 5) | (px[..., 2] >> 3)
    save("bmp_16_555.bmp", bmp_bytes([pad4(r.astype("<u2").tobytes()) for r in p555[::-1]], 37, 29, 16))
    save(
        "bmp_16_565.bmp",
        bmp_bytes([pad4(r.astype("<u2").tobytes()) for r in p565[::-1]], 37, 29, 16, 3, masks=(0xF800, 0x7E0, 0x1F)),
    )
    bgra = np.concatenate([small[..., ::-1], np.full((29, 37, 1), 77, np.uint8)], -1)
    save(
        "bmp_32_bitfields_topdown.bmp",
        bmp_bytes([r.tobytes() for r in bgra], 37, 29, 32, 3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), top_down=True),
    )
    save("bmp_24_topdown.bmp", bmp_bytes([pad4(r[..., ::-1].tobytes()) for r in small], 37, 29, 24, top_down=True))
    return files


def mask_pipeline(image):
    """ADer: convert('L'), > 0 -> 255, Resize bilinear, ToTensor, > 0.5."""
    binary = (np.asarray(image.convert("L")) > 0).astype(np.uint8) * 255
    resized = np.asarray(Image.fromarray(binary, mode="L").resize(SIZE, Image.BILINEAR))
    return ((resized.astype(np.float32) / np.float32(255)) > 0.5).astype(np.uint8)


def torch_tensor(rgb256):
    """torchvision ToTensor + Normalize, written out (torchvision is not installed here)."""
    import torch

    t = torch.from_numpy(rgb256.copy()).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.as_tensor([0.485, 0.456, 0.406], dtype=torch.float32)[:, None, None]
    std = torch.as_tensor([0.229, 0.224, 0.225], dtype=torch.float32)[:, None, None]
    return t.sub_(mean).div_(std).numpy()


def main():
    out_dir = sys.argv[1]
    inputs = sys.argv[2:]
    fixtures = write_fixtures(os.path.join(out_dir, "fixtures"))
    ref_dir = os.path.join(out_dir, "ref")
    os.makedirs(ref_dir, exist_ok=True)
    entries = []
    for n, path in enumerate(inputs + fixtures):
        entry = {"path": os.path.abspath(path), "fixture": path in fixtures}
        try:
            with Image.open(path) as opened:
                entry["mode"] = opened.mode
                entry["width"], entry["height"] = opened.size
                rgb = opened.convert("RGB")
                mask_source = opened.copy()
        except Exception as error:  # PIL's refusal is the expected outcome for this input
            entry["error"] = f"{type(error).__name__}: {error}"
            entries.append(entry)
            continue
        full = np.asarray(rgb)
        r256 = np.asarray(rgb.resize(SIZE, Image.BILINEAR))
        base = os.path.join(ref_dir, str(n))
        full.tofile(base + ".full")
        r256.tofile(base + ".r256")
        mask_pipeline(mask_source).tofile(base + ".mask")
        if n == 0 and inputs:
            torch_tensor(r256).astype(np.float32).tofile(base + ".tensor")
            entry["tensor"] = base + ".tensor"
        entry.update(full=base + ".full", r256=base + ".r256", mask=base + ".mask")
        entries.append(entry)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"pil": Image.__version__, "entries": entries}, f, indent=1)


if __name__ == "__main__":
    main()
