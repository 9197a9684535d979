/**
 * Where a labelled test set comes from: a folder the user picked or dropped (src/ui/common/files.ts; its files are
 * read when their turn comes), or this workplace's sample sets, served read-only under /shared/
 * (scripts/sharedDataPlugin.ts). Either way the one MVTec parser (src/data/mvtecLayout.ts) reads the layout from
 * relative paths.
 */
import { DatasetLayoutError, type MvtecClass, type MvtecDataset, parseMvtecLayout } from '../../data/mvtecLayout.ts';
import type { PickedFile } from '../common/files.ts';

export interface DatasetSource {
  /** What the user sees: the folder's name or the sample sets' names. */
  label: string;
  dataset: MvtecDataset;
  /** A file of the dataset by its parsed path: a File (read lazily by whoever consumes it) or fetched bytes. */
  read(path: string): Promise<Blob | Uint8Array>;
}

/** Parses the files' layout; throws the parser's DatasetLayoutError when it is not the MVTec layout. */
export function folderSource(files: readonly PickedFile[]): DatasetSource {
  // Dropped folders' paths start with '/', loose files have none.
  const byPath = new Map(files.map((f) => [(f.path || f.file.name).replace(/^\.?\//, ''), f.file]));
  const roots = new Set([...byPath.keys()].map((p) => p.split('/')[0]));
  const label = roots.size === 1 ? [...roots][0]! : `${files.length} files`;
  let dataset: MvtecDataset;
  try {
    dataset = parseMvtecLayout([...byPath.keys()]);
  } catch (error) {
    throw error instanceof DatasetLayoutError ? new DatasetLayoutError(`${label}: ${error.message}`) : error;
  }
  return {
    label,
    dataset,
    read: async (path) => {
      const file = byPath.get(path);
      if (!file) throw new Error(`${path} is not in the picked folder`);
      return file;
    },
  };
}

/** One of the sample sets listed in /shared/index.json: data/<name>/256/... */
export interface SampleSet {
  name: string;
  /** Paths under data/<name>/256/, as the index lists them. */
  files: string[];
  testImages: number;
}

const SAMPLE_SET = /^data\/([^/]+)\/256\/(.+)$/;

/** The index's 256-pixel sets that hold test images, by name. */
export function sampleSetsFromIndex(index: { files: readonly string[] }): SampleSet[] {
  const sets = new Map<string, string[]>();
  for (const path of index.files) {
    const match = SAMPLE_SET.exec(path);
    if (!match) continue;
    const name = match[1]!;
    sets.set(name, [...(sets.get(name) ?? []), match[2]!]);
  }
  return [...sets]
    .map(([name, files]) => ({
      name,
      files,
      testImages: files.filter((f) => /(^|\/)test\/[^/]+\/[^/]+$/.test(f)).length,
    }))
    .filter((set) => set.testImages > 0)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The sample sets this server offers (none where /shared/ is absent). */
export async function listSampleSets(): Promise<SampleSet[]> {
  try {
    const response = await fetch(`${import.meta.env.BASE_URL}shared/index.json`);
    if (!response.ok || !response.headers.get('content-type')?.includes('json')) return [];
    const index = (await response.json()) as { files?: unknown };
    return Array.isArray(index.files)
      ? sampleSetsFromIndex({ files: index.files.filter((f) => typeof f === 'string') })
      : [];
  } catch {
    return [];
  }
}

/**
 * The chosen sample sets as one dataset; `fetchBytes` gets each file's URL relative to the studio's base. A set whose files sit directly in train/test/ground_truth becomes a class
 * named after the set; a set with class folders keeps them.
 */
export function sampleSource(
  sets: readonly SampleSet[],
  fetchBytes: (url: string) => Promise<Uint8Array>,
): DatasetSource {
  const urls = new Map<string, string>();
  for (const set of sets) {
    for (const file of set.files) urls.set(`${set.name}/${file}`, `shared/data/${set.name}/256/${file}`);
  }
  return {
    label: sets.map((s) => s.name).join(' + '),
    dataset: parseMvtecLayout([...urls.keys()]),
    read: (path) => {
      const url = urls.get(path);
      if (!url) return Promise.reject(new Error(`${path} is not in the sample sets`));
      return fetchBytes(url);
    },
  };
}

/**
 * At most `perClass` test images of a class, taken in turn from each defect type ("good" first), so a small subset
 * still has good and defective images of every type; they keep the class's order.
 */
export function limitTestImages(c: MvtecClass, perClass: number | undefined): MvtecClass {
  if (perClass === undefined || perClass >= c.test.length) return c;
  const byType = new Map<string, MvtecClass['test']>();
  for (const image of c.test) byType.set(image.defectType, [...(byType.get(image.defectType) ?? []), image]);
  const queues = [...byType].sort(([a], [b]) => (a === 'good' ? -1 : b === 'good' ? 1 : a.localeCompare(b)));
  const picked = new Set<MvtecClass['test'][number]>();
  for (let round = 0; picked.size < perClass; round++) {
    for (const [, images] of queues) {
      if (picked.size < perClass && round < images.length) picked.add(images[round]!);
    }
  }
  return { ...c, test: c.test.filter((image) => picked.has(image)) };
}
