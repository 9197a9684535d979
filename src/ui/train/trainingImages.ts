/**
 * The normal images a run trains on, gathered from the sample sets this server shares (their train/good images),
 * picked files, or a picked folder (only its train/good images when it has the MVTec layout). Nothing is read until
 * training starts; then each image is handed to the worker as a Blob (a File, or a fetched sample).
 */
import { DatasetLayoutError } from '../../data/mvtecLayout.ts';
import type { TrainingImageFile } from '../../storage/trainingCheckpoints.ts';
import { isImageName, type PickedFile } from '../common/files.ts';
import { folderSource, type SampleSet, sampleSource } from '../evaluate/datasetSource.ts';

export interface TrainingImageEntry {
  /** Shown in messages and kept in the run's record: the path inside the set or folder. */
  name: string;
  read(): Promise<Blob | Uint8Array>;
}

export interface TrainingImageGroup {
  id: string;
  label: string;
  /** Where the images come from, in a few words ("train/good of 1 class"). */
  detail: string;
  images: TrainingImageEntry[];
}

async function fetchBlob(url: string): Promise<Blob> {
  const response = await fetch(`${import.meta.env.BASE_URL}${url}`);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.blob();
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A sample set's train/good images. */
export function sampleSetGroup(set: SampleSet): TrainingImageGroup {
  const source = sampleSource([set], async (url) => new Uint8Array(await (await fetchBlob(url)).arrayBuffer()));
  const classes = source.dataset.classes;
  return {
    id: `sample:${set.name}`,
    label: set.name,
    detail: `train/good of ${plural(classes.length, 'class')}`,
    images: classes.flatMap((c) => c.train.map((path) => ({ name: path, read: () => source.read(path) }))),
  };
}

/**
 * Picked files or a picked folder. A folder with the MVTec layout contributes its train/good images only (its test
 * images include defects); otherwise every image counts. Files that are not images are left out and counted.
 */
export function pickedGroup(files: readonly PickedFile[], id: string): { group: TrainingImageGroup; skipped: number } {
  const images = files.filter((f) => isImageName(f.file.name));
  const skipped = files.length - images.length;
  const nameOf = (f: PickedFile) => (f.path || f.file.name).replace(/^\.?\//, '');
  const fromFolder = images.some((f) => f.fromFolder);
  if (fromFolder) {
    try {
      const source = folderSource(images);
      const train = source.dataset.classes.flatMap((c) => c.train);
      if (train.length > 0) {
        const byName = new Map(images.map((f) => [nameOf(f), f.file]));
        return {
          group: {
            id,
            label: source.label,
            detail: `train/good of ${plural(source.dataset.classes.length, 'class')} (MVTec layout)`,
            images: train.map((path) => ({ name: path, read: async () => byName.get(path)! })),
          },
          skipped,
        };
      }
    } catch (error) {
      if (!(error instanceof DatasetLayoutError)) throw error;
    }
  }
  const folder = fromFolder ? nameOf(images[0]!).split('/')[0] : undefined;
  return {
    group: {
      id,
      label: folder ?? plural(images.length, 'picked file'),
      detail: folder ? 'every image in the folder' : 'picked files',
      images: images.map((f) => ({ name: nameOf(f), read: async () => f.file })),
    },
    skipped,
  };
}

/** At most `limit` images, taken in turn from each group so that every set is represented. */
export function chooseImages(groups: readonly TrainingImageGroup[], limit?: number): TrainingImageEntry[] {
  const total = groups.reduce((n, g) => n + g.images.length, 0);
  const count = limit === undefined ? total : Math.min(limit, total);
  const chosen: TrainingImageEntry[] = [];
  for (let round = 0; chosen.length < count; round++) {
    for (const group of groups) {
      const image = group.images[round];
      if (image && chosen.length < count) chosen.push(image);
    }
  }
  return chosen;
}

/** Reads the chosen images for the worker (sample images are fetched; files stay Files). */
export async function readImages(
  images: readonly TrainingImageEntry[],
  onProgress?: (done: number) => void,
): Promise<TrainingImageFile[]> {
  const out: TrainingImageFile[] = [];
  for (const image of images) {
    try {
      out.push({ name: image.name, bytes: await image.read() });
    } catch (error) {
      throw new Error(`${image.name} could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
    onProgress?.(out.length);
  }
  return out;
}
