import type { Data, Layout } from 'plotly.js-dist-min';
import { useMemo } from 'react';
import type { EvaluationSummary, PixelScoreHistogram } from '../../worker/metricsProtocol.ts';
import { Plot, SERIES_COLORS } from './Plot.tsx';

/** Bars shown for the pixel-score histogram: the worker's fine bins merged in equal groups. */
const DISPLAY_BINS = 80;

const GOOD_COLOR = '#60a5fa';
const DEFECT_COLOR = '#f87171';

/** The fine histogram merged to about DISPLAY_BINS bars, each as a share of its kind's pixels. */
export function displayHistogram(histogram: PixelScoreHistogram) {
  const fine = histogram.normal.length;
  const group = Math.max(1, Math.ceil(fine / DISPLAY_BINS));
  const bars = Math.ceil(fine / group);
  const centers = new Float64Array(bars);
  const normal = new Float64Array(bars);
  const defect = new Float64Array(bars);
  const total = (counts: Float64Array) => counts.reduce((s, v) => s + v, 0) || 1;
  const [normalTotal, defectTotal] = [total(histogram.normal), total(histogram.defect)];
  for (let bar = 0; bar < bars; bar++) {
    const first = bar * group;
    const last = Math.min(fine, first + group);
    centers[bar] = (histogram.edges[first]! + histogram.edges[last]!) / 2;
    for (let i = first; i < last; i++) {
      normal[bar]! += histogram.normal[i]! / normalTotal;
      defect[bar]! += histogram.defect[i]! / defectTotal;
    }
  }
  const width = histogram.edges[Math.min(fine, group)]! - histogram.edges[0]!;
  return { centers, normal, defect, width };
}

function thresholdLine(threshold: number): Partial<Layout>['shapes'] {
  return [
    {
      type: 'line',
      xref: 'x',
      yref: 'paper',
      x0: threshold,
      x1: threshold,
      y0: 0,
      y1: 1,
      line: { color: '#fbbf24', width: 2, dash: 'dot' },
    },
  ];
}

const unitAxes = (x: string, y: string): Partial<Layout> => ({
  xaxis: { title: { text: x }, range: [0, 1] },
  yaxis: { title: { text: y }, range: [0, 1.02] },
});

/** ROC, PR and PRO curves per class, and the score histograms with the slider's threshold drawn on them. */
export function EvaluationPlots(props: { summary: EvaluationSummary; threshold: number }) {
  const { summary, threshold } = props;
  const curves = useMemo(() => {
    const perClass = (pick: 'roc' | 'pr'): Data[] =>
      summary.classes.flatMap((c, i) => {
        const color = SERIES_COLORS[i % SERIES_COLORS.length];
        const image = pick === 'roc' ? c.imageRoc : c.imagePr;
        const pixel = pick === 'roc' ? c.pixelRoc : c.pixelPr;
        return [
          { x: image.x, y: image.y, name: `${c.className} · image`, mode: 'lines', line: { color, width: 2 } },
          {
            x: pixel.x,
            y: pixel.y,
            name: `${c.className} · pixel`,
            mode: 'lines',
            line: { color, width: 2, dash: 'dash' },
          },
        ] satisfies Data[];
      });
    const pro: Data[] = summary.classes.map((c, i) => ({
      x: c.pro.x,
      y: c.pro.y,
      name: c.className,
      mode: 'lines',
      line: { color: SERIES_COLORS[i % SERIES_COLORS.length], width: 2 },
    }));
    const proLayout: Partial<Layout> = {
      title: { text: 'Per-region overlap (AU-PRO integrates to FPR 0.3)' },
      xaxis: { title: { text: 'False positive rate' }, range: [0, 0.3] },
      yaxis: { title: { text: 'PRO' }, range: [0, 1.02] },
    };
    return {
      roc: {
        data: perClass('roc'),
        layout: { title: { text: 'ROC' }, ...unitAxes('False positive rate', 'True positive rate') },
      },
      pr: { data: perClass('pr'), layout: { title: { text: 'Precision–recall' }, ...unitAxes('Recall', 'Precision') } },
      pro: { data: pro, layout: proLayout },
    };
  }, [summary]);

  const imageScores = useMemo(() => {
    const good: number[] = [];
    const defective: number[] = [];
    for (const c of summary.classes) {
      c.imageScores.forEach((score, i) => {
        (c.imageLabels[i] ? defective : good).push(score);
      });
    }
    // Both kinds on the same bins, about 2·√n of them.
    const all = [...good, ...defective];
    const [low, high] = [Math.min(...all), Math.max(...all)];
    const bins = Math.min(30, Math.max(6, Math.ceil(2 * Math.sqrt(all.length))));
    const xbins = { start: low, end: high + (high - low) * 1e-9, size: (high - low) / bins || 1 };
    const data: Data[] = [
      { type: 'histogram', x: good, name: 'good images', marker: { color: GOOD_COLOR }, opacity: 0.7, xbins },
      {
        type: 'histogram',
        x: defective,
        name: 'defective images',
        marker: { color: DEFECT_COLOR },
        opacity: 0.7,
        xbins,
      },
    ];
    return { data, low, high, count: all.length };
  }, [summary]);

  const pixelScores = useMemo(() => {
    const bars = displayHistogram(summary.pixelHistogram);
    const data: Data[] = [
      {
        type: 'bar',
        x: bars.centers,
        y: bars.normal,
        width: bars.width,
        name: 'normal pixels',
        marker: { color: GOOD_COLOR },
        opacity: 0.7,
      },
      {
        type: 'bar',
        x: bars.centers,
        y: bars.defect,
        width: bars.width,
        name: 'defect pixels',
        marker: { color: DEFECT_COLOR },
        opacity: 0.7,
      },
    ];
    return data;
  }, [summary]);

  const imageLayout = useMemo((): Partial<Layout> => {
    // The threshold line stays in view when it lies below (or above) every image score.
    const low = Math.min(imageScores.low, threshold);
    const high = Math.max(imageScores.high, threshold);
    const pad = 0.04 * (high - low || 1);
    return {
      title: { text: 'Image scores (all classes)' },
      barmode: 'overlay',
      xaxis: { title: { text: 'Image score (max of the map)' }, range: [low - pad, high + pad] },
      yaxis: { title: { text: 'Images' }, dtick: Math.max(1, Math.ceil(imageScores.count / 10)) },
      shapes: thresholdLine(threshold),
    };
  }, [imageScores, threshold]);
  const pixelLayout = useMemo(
    (): Partial<Layout> => ({
      title: { text: 'Pixel scores (all classes)' },
      barmode: 'overlay',
      bargap: 0,
      xaxis: { title: { text: 'Anomaly map value' } },
      yaxis: { title: { text: 'Share of pixels (log)' }, type: 'log', dtick: 1, exponentformat: 'power' },
      shapes: thresholdLine(threshold),
    }),
    [threshold],
  );

  return (
    <div className="plot-grid">
      <Plot data={curves.roc.data} layout={curves.roc.layout} testId="plot-roc" />
      <Plot data={curves.pr.data} layout={curves.pr.layout} testId="plot-pr" />
      <Plot data={curves.pro.data} layout={curves.pro.layout} testId="plot-pro" />
      <Plot data={imageScores.data} layout={imageLayout} testId="plot-image-scores" />
      <Plot data={pixelScores} layout={pixelLayout} testId="plot-pixel-scores" />
    </div>
  );
}
