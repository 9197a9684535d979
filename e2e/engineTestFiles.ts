/**
 * Files the Inspect, Models and bad-input e2e tests feed the studio, made in the test process: random-weights model
 * files (written once under build/e2e/, git-ignored) and deliberately broken images and weights files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { type TensorToWrite, writeSafetensors } from '../src/io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, PAPER_CONFIG, serializeModelConfig } from '../src/model/config.ts';
import { seededRandom } from '../src/util/random.ts';
import { initialWeightsFile } from '../training/weightsFile.ts';

export const SHARED = join(process.cwd(), '..', 'shared');
export const DEFAULT_MODEL = join(process.cwd(), 'public', 'models', 'default.safetensors');

/** The default model's architecture at 64 px with shallow stages: a forward takes seconds on a software GPU. */
export const SMALL_CONFIG: ModelConfig = { ...PAPER_CONFIG, encoder: 'resnet18', depths: [2, 2, 2, 2], inputSize: 64 };

function weightsFileBytes(config: ModelConfig, metadataConfig: ModelConfig = config): Uint8Array {
  const file = initialWeightsFile(config, seededRandom(7));
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of file.names) {
    const t = file.tensor(name);
    tensors[name] =
      t.dtype === 'I64'
        ? { dtype: 'I64', shape: t.shape, data: t.data as BigInt64Array }
        : { dtype: 'F16', shape: t.shape, data: file.float32(name) };
  }
  return writeSafetensors(tensors, { [CONFIG_METADATA_KEY]: serializeModelConfig(metadataConfig) });
}

/** A random-weights model file for `config` (cached under build/e2e/), returned as its path. */
export function randomModelFile(fileName: string, config: ModelConfig = SMALL_CONFIG): string {
  const dir = join(process.cwd(), 'build', 'e2e');
  const path = join(dir, fileName);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, weightsFileBytes(config));
  }
  return path;
}

/** A weights file whose tensors were made for one config while its metadata names another (the paper's depths). */
export function mismatchedModelBytes(): Buffer {
  return Buffer.from(weightsFileBytes(SMALL_CONFIG, { ...SMALL_CONFIG, depths: [3, 4, 6, 3] }));
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A well-formed PNG header for a 20000 x 20000 RGB image followed by a few rows of real image data: a decoder that
 * allocated the image first would ask for 1.2 GB; ours must refuse from the header.
 */
export function hugePng(side = 20_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  const rows = Buffer.alloc(4 * (1 + side * 3)); // four scanlines of filter 0 and black pixels
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A real PNG cut off in the middle of its image data. */
export function truncatedPng(): Buffer {
  const png = readFileSync(join(SHARED, 'data/mvtec-bottle/original/test/good/000.png'));
  return png.subarray(0, Math.floor(png.length * 0.6));
}

/** A text file under an image's name. */
export function textAsPng(): Buffer {
  return Buffer.from('These are meeting notes, not an image.\n');
}

/** The first `fraction` of a file, e.g. a weights file cut short by an interrupted download. */
export function truncatedFile(path: string, fraction = 0.5): Buffer {
  const bytes = readFileSync(path);
  return bytes.subarray(0, Math.floor(bytes.length * fraction));
}
