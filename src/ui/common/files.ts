/**
 * Files from drag-and-drop and pickers, folders included (DataTransferItem.webkitGetAsEntry and
 * <input webkitdirectory>). Files the user picked one by one are all kept, so a wrong file gets a clear message
 * instead of vanishing; files found inside folders are kept only when their names look like images or weights.
 */

const IMAGE_EXTENSIONS = /\.(png|jpe?g|bmp|webp)$/i;
const WEIGHTS_EXTENSION = /\.safetensors$/i;

export interface PickedFile {
  readonly file: File;
  /** The path inside a dropped or picked folder ('' for a file picked on its own). */
  readonly path: string;
  /** True when the file came from inside a folder. */
  readonly fromFolder: boolean;
}

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.test(name);
}

export function isWeightsName(name: string): boolean {
  return WEIGHTS_EXTENSION.test(name);
}

/** Keeps every file picked on its own; inside folders, only images and weights files. */
export function keepUseful(files: readonly PickedFile[]): { kept: PickedFile[]; skipped: number } {
  const kept = files.filter((f) => !f.fromFolder || isImageName(f.file.name) || isWeightsName(f.file.name));
  return { kept, skipped: files.length - kept.length };
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function entryFile(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function walkEntry(entry: FileSystemEntry, out: PickedFile[], inFolder: boolean): Promise<void> {
  if (entry.isFile) {
    out.push({ file: await entryFile(entry as FileSystemFileEntry), path: entry.fullPath, fromFolder: inFolder });
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries returns the listing in chunks (about 100 at a time in Chromium) until an empty one.
  for (let chunk = await readEntries(reader); chunk.length > 0; chunk = await readEntries(reader)) {
    for (const child of chunk) await walkEntry(child, out, true);
  }
}

/** Every file of a drop, walking dropped folders. Call it from the drop handler itself (entries expire after it). */
export function filesFromDrop(transfer: DataTransfer): Promise<PickedFile[]> {
  const entries = Array.from(transfer.items, (item) => (item.kind === 'file' ? item.webkitGetAsEntry() : null));
  if (entries.some((e) => e === null) || entries.length === 0) {
    return Promise.resolve(Array.from(transfer.files, (file) => ({ file, path: '', fromFolder: false })));
  }
  return (async () => {
    const out: PickedFile[] = [];
    for (const entry of entries) await walkEntry(entry!, out, false);
    return out;
  })();
}

/** The files of an <input type=file>, with their folder paths when it is a folder picker. */
export function filesFromInput(input: HTMLInputElement): PickedFile[] {
  return Array.from(input.files ?? [], (file) => ({
    file,
    path: file.webkitRelativePath,
    fromFolder: file.webkitRelativePath !== '',
  }));
}
