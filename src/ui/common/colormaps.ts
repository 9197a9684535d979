/**
 * Colormaps for anomaly maps, as 256-entry RGB lookup tables, and the map-to-pixels step every screen shares.
 * Viridis, inferno and turbo are the published polynomial fits of the matplotlib / Google maps (max error about 1/255);
 * jet is MATLAB's piecewise-linear definition.
 */

export const COLORMAPS = ['jet', 'turbo', 'viridis', 'inferno'] as const;
export type ColormapName = (typeof COLORMAPS)[number];

type Polynomial = readonly (readonly [number, number, number])[];

// Coefficients c0..c6 of r, g, b as polynomials in t (Matt Zucker's fits of the matplotlib maps).
const VIRIDIS: Polynomial = [
  [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
  [0.1050930431085774, 1.404613529898575, 1.384590162594685],
  [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
  [-4.634230498983486, -5.799100973351585, -19.33244095627987],
  [6.228269936347081, 14.17993336680509, 56.69055260068105],
  [4.776384997670288, -13.74514537774601, -65.35303263337234],
  [-5.435455855934631, 4.645852612178535, 26.3124352495832],
];
const INFERNO: Polynomial = [
  [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
  [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
  [11.60249308247187, -3.972853965665698, -15.9423941062914],
  [-41.70399613139459, 17.43639888205313, 44.35414519872813],
  [77.162935699427, -33.40235894210092, -81.80730925738993],
  [-71.31942824499214, 32.62606426397723, 73.20951985803202],
  [25.13112622477341, -12.24266895238567, -23.07032500287172],
];
// Google's turbo fit (degree 5).
const TURBO: Polynomial = [
  [0.13572138, 0.0914026, 0.1066733],
  [4.6153926, 2.19418839, 12.64194608],
  [-42.66032258, 4.84296658, -60.58204836],
  [132.13108234, -14.18503333, 110.36276771],
  [-152.94239396, 4.27729857, -89.90310912],
  [59.28637943, 2.82956604, 27.34824973],
];

function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

function polynomialColor(coefficients: Polynomial, t: number): [number, number, number] {
  const rgb: [number, number, number] = [0, 0, 0];
  for (let channel = 0; channel < 3; channel++) {
    let value = 0;
    for (let k = coefficients.length - 1; k >= 0; k--) value = value * t + coefficients[k]![channel]!;
    rgb[channel] = clamp01(value);
  }
  return rgb;
}

function jetColor(t: number): [number, number, number] {
  return [clamp01(1.5 - Math.abs(4 * t - 3)), clamp01(1.5 - Math.abs(4 * t - 2)), clamp01(1.5 - Math.abs(4 * t - 1))];
}

const tables = new Map<ColormapName, Uint8Array>();

/** 256 x RGB8: entry i is the colour of t = i / 255. */
export function colormapTable(name: ColormapName): Uint8Array {
  let table = tables.get(name);
  if (!table) {
    table = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const t = i / 255;
      const rgb =
        name === 'jet'
          ? jetColor(t)
          : polynomialColor(name === 'viridis' ? VIRIDIS : name === 'inferno' ? INFERNO : TURBO, t);
      for (let c = 0; c < 3; c++) table[3 * i + c] = Math.round(rgb[c]! * 255);
    }
    tables.set(name, table);
  }
  return table;
}

/** A CSS linear-gradient of the colormap, for legends. */
export function colormapGradient(name: ColormapName): string {
  const table = colormapTable(name);
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => {
    const i = Math.round(t * 255);
    return `rgb(${table[3 * i]}, ${table[3 * i + 1]}, ${table[3 * i + 2]}) ${t * 100}%`;
  });
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

/** Value range of a colour scale: `low` maps to the first colour, `high` to the last. */
export interface ColorRange {
  low: number;
  high: number;
}

/** RGBA pixels of `values` (row-major, any numeric array) through the colormap, fully opaque. */
export function colorize(
  values: ArrayLike<number>,
  colormap: ColormapName,
  range: ColorRange,
): Uint8ClampedArray<ArrayBuffer> {
  const table = colormapTable(colormap);
  const out = new Uint8ClampedArray(values.length * 4);
  const span = range.high > range.low ? range.high - range.low : 1;
  for (let i = 0; i < values.length; i++) {
    const t = (values[i]! - range.low) / span;
    const index = t <= 0 ? 0 : t >= 1 ? 255 : (t * 255 + 0.5) | 0;
    out[4 * i] = table[3 * index]!;
    out[4 * i + 1] = table[3 * index + 1]!;
    out[4 * i + 2] = table[3 * index + 2]!;
    out[4 * i + 3] = 255;
  }
  return out;
}
