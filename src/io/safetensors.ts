/**
 * safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian tensor bytes.
 * https://github.com/huggingface/safetensors#format
 *
 * Every check names what is wrong, so a truncated, foreign or corrupted file is reported, never half-read.
 */

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'I64' | 'I32' | 'U8' | 'BOOL';

export type TensorData = Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The tensor's values. F16 is widened to Float32Array; the bytes of the file are never aliased. */
  readonly data: TensorData;
}

export interface SafetensorsFile {
  readonly metadata: Readonly<Record<string, string>>;
  readonly names: readonly string[];
  has(name: string): boolean;
  /** Throws SafetensorsError naming the tensor when it is absent. */
  tensor(name: string): SafetensorsTensor;
  /** The tensor as float32 (F64 narrowed, F16 widened, integers converted); throws for BOOL/U8. */
  float32(name: string): Float32Array;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };

/** The header is JSON; anything much larger than this is not a safetensors file we wrote or can trust. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data_offsets: [number, number];
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && value in BYTES_PER_ELEMENT;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function parseHeader(
  bytes: Uint8Array,
  what: string,
): { entries: Map<string, HeaderEntry>; metadata: Record<string, string>; dataStart: number } {
  if (bytes.byteLength < 8) {
    throw new SafetensorsError(`${what}: file is ${bytes.byteLength} bytes, too short to hold a safetensors header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength < 2 || headerLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError(`${what}: not a safetensors file (header length field reads ${headerLength})`);
  }
  if (8 + headerLength > bytes.byteLength) {
    throw new SafetensorsError(
      `${what}: truncated: the header claims ${headerLength} bytes but the file has only ${bytes.byteLength - 8} after the length field`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new SafetensorsError(`${what}: not a safetensors file (header is not valid UTF-8 JSON: ${String(error)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(`${what}: not a safetensors file (header is not a JSON object)`);
  }
  const dataStart = 8 + headerLength;
  const dataBytes = bytes.byteLength - dataStart;
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null) throw new SafetensorsError(`${what}: __metadata__ is not an object`);
      metadata = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const entry = raw as Partial<HeaderEntry> | null;
    if (!entry || !isDtype(entry.dtype)) {
      throw new SafetensorsError(`${what}: tensor "${name}" has unsupported dtype ${JSON.stringify(entry?.dtype)}`);
    }
    const { shape, data_offsets: offsets } = entry;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${what}: tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new SafetensorsError(`${what}: tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets;
    const expected = elementCount(shape) * BYTES_PER_ELEMENT[entry.dtype];
    if (end - begin !== expected) {
      throw new SafetensorsError(
        `${what}: tensor "${name}" spans ${end - begin} bytes but ${entry.dtype}[${shape.join(',')}] needs ${expected}`,
      );
    }
    if (end > dataBytes) {
      throw new SafetensorsError(
        `${what}: truncated: tensor "${name}" ends at byte ${end} of the data section, which has only ${dataBytes}`,
      );
    }
    entries.set(name, { dtype: entry.dtype, shape: [...shape], data_offsets: [begin, end] });
  }
  return { entries, metadata, dataStart };
}

function float16ToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function float32ToFloat16(value: number): number {
  // Round-to-nearest-even through a Float32 view; covers normals, subnormals, overflow to Inf and NaN.
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (half + (rest > halfway || (rest === halfway && half & 1) ? 1 : 0));
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa rounds up into the exponent, which is the correct result.
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half += 1;
  return sign | half;
}

function decodeTensor(bytes: Uint8Array, dataStart: number, name: string, entry: HeaderEntry): TensorData {
  const begin = dataStart + entry.data_offsets[0];
  const end = dataStart + entry.data_offsets[1];
  // Copy so that the result is aligned and independent of the file's buffer.
  const copy = bytes.slice(begin, end);
  const little = new DataView(copy.buffer);
  const n = elementCount(entry.shape);
  const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (!isLittleEndianHost) throw new SafetensorsError(`tensor "${name}": big-endian hosts are not supported`);
  switch (entry.dtype) {
    case 'F64':
      return new Float64Array(copy.buffer);
    case 'F32':
      return new Float32Array(copy.buffer);
    case 'I64':
      return new BigInt64Array(copy.buffer);
    case 'I32':
      return new Int32Array(copy.buffer);
    case 'U8':
    case 'BOOL':
      return copy;
    case 'F16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = float16ToFloat32(little.getUint16(2 * i, true));
      return out;
    }
  }
}

/** Parses a safetensors file. `what` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, what = 'weights file'): SafetensorsFile {
  const { entries, metadata, dataStart } = parseHeader(bytes, what);
  const names = [...entries.keys()];
  const tensor = (name: string): SafetensorsTensor => {
    const entry = entries.get(name);
    if (!entry) throw new SafetensorsError(`${what}: missing tensor "${name}"`);
    return { name, dtype: entry.dtype, shape: entry.shape, data: decodeTensor(bytes, dataStart, name, entry) };
  };
  return {
    metadata,
    names,
    has: (name) => entries.has(name),
    tensor,
    float32(name) {
      const t = tensor(name);
      if (t.data instanceof Float32Array) return t.data;
      if (t.dtype === 'U8' || t.dtype === 'BOOL') {
        throw new SafetensorsError(`${what}: tensor "${name}" is ${t.dtype}, not a floating-point tensor`);
      }
      const out = new Float32Array(t.data.length);
      for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
      return out;
    },
  };
}

/** The tensors of `file` whose names start with `prefix`, under the rest of their names (a case file's `param.*`). */
export function prefixedView(file: SafetensorsFile, prefix: string): SafetensorsFile {
  return {
    metadata: file.metadata,
    names: file.names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)),
    has: (name) => file.has(`${prefix}${name}`),
    tensor: (name) => file.tensor(`${prefix}${name}`),
    float32: (name) => file.float32(`${prefix}${name}`),
  };
}

export interface TensorToWrite {
  readonly dtype: 'F32' | 'F16' | 'F64' | 'I64' | 'U8';
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array | BigInt64Array | Uint8Array;
}

/** Writes a safetensors file. Tensors are laid out in name order, as the Python library does. */
export function writeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const n = elementCount(t.shape);
    if (t.data.length !== n) {
      throw new SafetensorsError(`tensor "${name}": ${t.data.length} values for shape [${t.shape.join(',')}]`);
    }
    let bytes: Uint8Array;
    if (t.dtype === 'F16') {
      const half = new Uint16Array(n);
      for (let i = 0; i < n; i++) half[i] = float32ToFloat16(Number(t.data[i]));
      bytes = new Uint8Array(half.buffer);
    } else {
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    }
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.byteLength;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.byteLength;
  }
  return out;
}
