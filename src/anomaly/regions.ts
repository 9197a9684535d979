/**
 * Connected-component labelling as skimage.measure.label(image) does it for a 2-D image with its defaults
 * (connectivity = ndim = 2, i.e. 8-connectivity; background 0): two pixels belong to one region when they are
 * 8-neighbours and hold the same non-zero value. Regions are numbered 1..count in raster order of their first pixel,
 * which is skimage's numbering (checked against skimage in scripts/metrics-check.ts).
 */

export interface LabelledImage {
  /** Row-major, one label per pixel: 0 for background, otherwise 1..count. */
  readonly labels: Int32Array;
  readonly count: number;
}

function findRoot(parent: Int32Array, label: number): number {
  let root = label;
  while (parent[root]! !== root) root = parent[root]!;
  // Path compression keeps later finds short.
  let node = label;
  while (parent[node]! !== root) {
    const next = parent[node]!;
    parent[node] = root;
    node = next;
  }
  return root;
}

/** Merges two provisional labels; the smaller label becomes the root, so a root is its region's first label. */
function union(parent: Int32Array, a: number, b: number): number {
  const rootA = findRoot(parent, a);
  const rootB = findRoot(parent, b);
  if (rootA === rootB) return rootA;
  if (rootA < rootB) {
    parent[rootB] = rootA;
    return rootA;
  }
  parent[rootA] = rootB;
  return rootB;
}

/** The label of a pixel so far (0: none yet) joined with a neighbour's label. */
function join(parent: Int32Array, label: number, neighbour: number): number {
  return label === 0 ? neighbour : union(parent, label, neighbour);
}

/**
 * Labels the 8-connected regions of equal non-zero value. `out`, when given, receives the labels (it must hold
 * width * height elements) so that a caller labelling many images can reuse one buffer.
 */
export function labelRegions(image: Uint8Array, width: number, height: number, out?: Int32Array): LabelledImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`labelRegions: width and height must be positive integers, got ${width}x${height}`);
  }
  const n = width * height;
  if (image.length !== n) {
    throw new RangeError(`labelRegions: image has ${image.length} pixels, but ${width}x${height} needs ${n}`);
  }
  const labels = out ?? new Int32Array(n);
  if (labels.length !== n) {
    throw new RangeError(`labelRegions: output buffer has ${labels.length} elements, ${n} needed`);
  }
  // Provisional labels are created in raster order, at most one per pixel; parent[0] is unused.
  const parent = new Int32Array(n + 1);
  let provisional = 0;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const i = row + x;
      const value = image[i]!;
      if (value === 0) {
        labels[i] = 0;
        continue;
      }
      // Join the already-visited 8-neighbours of equal value: west, north-west, north, north-east.
      let label = 0;
      if (x > 0 && image[i - 1] === value) label = join(parent, label, labels[i - 1]!);
      if (y > 0) {
        const above = i - width;
        if (x > 0 && image[above - 1] === value) label = join(parent, label, labels[above - 1]!);
        if (image[above] === value) label = join(parent, label, labels[above]!);
        if (x + 1 < width && image[above + 1] === value) label = join(parent, label, labels[above + 1]!);
      }
      if (label === 0) {
        provisional += 1;
        parent[provisional] = provisional;
        label = provisional;
      }
      labels[i] = label;
    }
  }
  // Every parent pointer points to a smaller label and a root is its region's smallest label, so one pass in label
  // order resolves each label to its final number (stored negated), numbering the regions in raster order of their
  // first pixel.
  let count = 0;
  for (let label = 1; label <= provisional; label++) {
    const up = parent[label]!;
    if (up === label) {
      count += 1;
      parent[label] = -count;
    } else {
      parent[label] = parent[up]!;
    }
  }
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    if (label !== 0) labels[i] = -parent[label]!;
  }
  return { labels, count };
}

/** Pixel count of each region: areas[k] is the area of label k + 1. */
export function regionAreas(labelled: LabelledImage): Int32Array {
  const areas = new Int32Array(labelled.count);
  for (const label of labelled.labels) if (label > 0) areas[label - 1]! += 1;
  return areas;
}
