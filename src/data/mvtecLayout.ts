/**
 * The MVTec AD folder layout, read from a list of relative file paths (a walked directory in Node, a dropped folder's
 * webkitRelativePath entries in a browser), so both hosts share one parser and one set of messages:
 *
 *   <class>/train/good/*.png
 *   <class>/test/<type>/*.png                 (type "good" for normal images)
 *   <class>/ground_truth/<type>/<name>_mask.png  (one per defective test image)
 *
 * Several classes may sit side by side, and the root may itself be one class folder.
 */

export interface MvtecTestImage {
  path: string;
  defectType: string;
  /** 1 for a defect type, 0 for "good". */
  label: 0 | 1;
  /** The ground-truth mask; undefined for good images (an all-zero mask). */
  maskPath?: string;
}

export interface MvtecClass {
  name: string;
  train: string[];
  test: MvtecTestImage[];
}

export interface MvtecDataset {
  classes: MvtecClass[];
  /** Files that are not part of the layout (readme, licence, …), for the UI to mention. */
  ignored: string[];
}

export class DatasetLayoutError extends Error {
  override name = 'DatasetLayoutError';
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g|bmp|webp)$/i;

function stem(fileName: string): string {
  return fileName.replace(/\.[^.]+$/, '');
}

/** Parses the layout. Throws DatasetLayoutError naming what is missing when no class fits it. */
export function parseMvtecLayout(paths: readonly string[]): MvtecDataset {
  const normalized = paths.map((p) => p.replaceAll('\\', '/').replace(/^\.?\//, ''));
  interface ClassFiles {
    train: string[];
    tests: Map<string, string[]>;
    masks: Map<string, string>;
  }
  const classes = new Map<string, ClassFiles>();
  const ignored: string[] = [];
  for (const path of normalized) {
    const parts = path.split('/');
    const file = parts.at(-1) ?? '';
    // Find "<class>/<split>/<type>/<file>" at the end of the path; anything above it is a shared root.
    const [className, split, type] = parts.slice(-4, -1);
    if (parts.length < 4 || !IMAGE_EXTENSIONS.test(file) || !className || !split || !type) {
      ignored.push(path);
      continue;
    }
    const entry: ClassFiles = classes.get(className) ?? { train: [], tests: new Map(), masks: new Map() };
    if (split === 'train' && type === 'good') entry.train.push(path);
    else if (split === 'test') entry.tests.set(type, [...(entry.tests.get(type) ?? []), path]);
    else if (split === 'ground_truth') entry.masks.set(`${type}/${stem(file).replace(/_mask$/, '')}`, path);
    else {
      ignored.push(path);
      continue;
    }
    classes.set(className, entry);
  }
  if (classes.size === 0) {
    throw new DatasetLayoutError(
      'no images in the MVTec layout: expected <class>/train/good/*.png, <class>/test/<type>/*.png and ' +
        `<class>/ground_truth/<type>/*_mask.png (looked at ${paths.length} files)`,
    );
  }
  const result: MvtecClass[] = [];
  const problems: string[] = [];
  for (const [name, entry] of [...classes].sort(([a], [b]) => a.localeCompare(b))) {
    const test: MvtecTestImage[] = [];
    for (const [type, images] of [...entry.tests].sort(([a], [b]) => a.localeCompare(b))) {
      for (const path of images.sort()) {
        if (type === 'good') {
          test.push({ path, defectType: type, label: 0 });
          continue;
        }
        const maskPath = entry.masks.get(`${type}/${stem(path.split('/').at(-1)!)}`);
        if (!maskPath) problems.push(`${name}: no ground_truth/${type} mask for ${path}`);
        else test.push({ path, defectType: type, label: 1, maskPath });
      }
    }
    if (entry.train.length === 0 && test.length === 0) problems.push(`${name}: neither train/good nor test images`);
    result.push({ name, train: entry.train.sort(), test });
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ');
    throw new DatasetLayoutError(
      `the folder is not in the MVTec layout: ${shown}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`,
    );
  }
  return { classes: result, ignored };
}
