/**
 * One-click sample images: the original-size test images of the data sets this server shares under /shared/
 * (scripts/sharedDataPlugin.ts lists them in /shared/index.json). A server without them simply offers none.
 */

export interface SampleImage {
  /** Path under /shared/, e.g. data/mvtec-bottle/original/test/broken_large/000.png */
  readonly path: string;
  /** Data set, e.g. mvtec-bottle. */
  readonly dataset: string;
  /** Test category, e.g. broken_large or good. */
  readonly category: string;
  readonly fileName: string;
}

const SAMPLE = /^data\/([^/]+)\/original\/test\/([^/]+)\/([^/]+\.(?:png|jpe?g|bmp|webp))$/i;

export function samplesFromIndex(files: readonly string[]): SampleImage[] {
  return files.flatMap((path) => {
    const match = SAMPLE.exec(path);
    return match ? [{ path, dataset: match[1]!, category: match[2]!, fileName: match[3]! }] : [];
  });
}

export async function listSamples(): Promise<SampleImage[]> {
  try {
    const response = await fetch(`${import.meta.env.BASE_URL}shared/index.json`);
    if (!response.ok || !response.headers.get('content-type')?.includes('json')) return [];
    const index = (await response.json()) as { files?: unknown };
    return Array.isArray(index.files) ? samplesFromIndex(index.files.filter((f) => typeof f === 'string')) : [];
  } catch {
    return [];
  }
}

export function sampleName(sample: SampleImage): string {
  return `${sample.dataset} ${sample.category}/${sample.fileName}`;
}

export async function fetchSample(sample: SampleImage): Promise<Blob> {
  const response = await fetch(`${import.meta.env.BASE_URL}shared/${sample.path}`);
  if (!response.ok) throw new Error(`sample ${sample.path}: HTTP ${response.status}`);
  return response.blob();
}
