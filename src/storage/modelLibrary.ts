/**
 * The local model library: weights files kept in IndexedDB (store 'models'), each as a small description record
 * (listed without reading the weights) and the file's bytes under a second key. Also the one edit the studio makes to
 * a weights file before saving it: its studio metadata (the chosen threshold).
 */
import { SafetensorsError } from '../io/safetensors.ts';
import { idbGet, idbKeys, idbWriteAll } from './idb.ts';

export interface LibraryEntry {
  readonly id: string;
  readonly name: string;
  /** ISO time of saving. */
  readonly savedAt: string;
  /** Bytes of the weights file. */
  readonly size: number;
  /** A one-line description of the model (config), shown in the list. */
  readonly description: string;
}

const ENTRY = 'entry:';
const BYTES = 'bytes:';

function isEntry(value: unknown): value is LibraryEntry {
  const v = value as Partial<LibraryEntry> | undefined;
  return typeof v?.id === 'string' && typeof v.name === 'string' && typeof v.savedAt === 'string';
}

/** Every saved model, newest first. */
export async function listLibrary(): Promise<LibraryEntry[]> {
  const keys = (await idbKeys('models')).filter((k) => k.startsWith(ENTRY));
  const entries = await Promise.all(keys.map((k) => idbGet<unknown>('models', k)));
  return entries.filter(isEntry).sort((a, b) => b.savedAt.localeCompare(a.savedAt));
}

export async function saveToLibrary(name: string, bytes: Uint8Array, description: string): Promise<LibraryEntry> {
  const entry: LibraryEntry = {
    id: crypto.randomUUID(),
    name,
    savedAt: new Date().toISOString(),
    size: bytes.byteLength,
    description,
  };
  // One transaction: a listed entry always has its file (a full disk stores neither).
  await idbWriteAll('models', {
    put: [
      [BYTES + entry.id, bytes],
      [ENTRY + entry.id, entry],
    ],
  });
  return entry;
}

export async function loadFromLibrary(id: string): Promise<Uint8Array> {
  const bytes = await idbGet<unknown>('models', BYTES + id);
  if (!(bytes instanceof Uint8Array)) throw new Error('this library entry has lost its weights file; delete it');
  return bytes;
}

export async function deleteFromLibrary(id: string): Promise<void> {
  await idbWriteAll('models', { delete: [ENTRY + id, BYTES + id] });
}

/**
 * A copy of a safetensors file with metadata keys set (a string) or removed (undefined); the tensors' bytes are
 * copied unchanged. Throws SafetensorsError for a file whose header cannot be read.
 */
export function withMetadata(bytes: Uint8Array, changes: Record<string, string | undefined>): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8) throw new SafetensorsError('the weights file is too short to hold a header');
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.byteLength) throw new SafetensorsError('the weights file is truncated');
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const metadata = { ...((header.__metadata__ as Record<string, string> | undefined) ?? {}) };
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) delete metadata[key];
    else metadata[key] = value;
  }
  header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  // Keep the data section 8-byte aligned, as safetensors writers do.
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const data = bytes.subarray(8 + headerLength);
  const out = new Uint8Array(8 + headerBytes.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.byteLength);
  return out;
}
