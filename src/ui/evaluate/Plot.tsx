import type { Config, Data, Layout, LayoutAxis } from 'plotly.js-dist-min';
import { useEffect, useRef, useState } from 'react';

type Plotly = typeof import('plotly.js-dist-min')['default'];

let loading: Promise<Plotly> | undefined;
let loaded: Plotly | undefined;

/** plotly.js is large (about 4.8 MB): it is fetched from our own origin the first time a plot is shown. */
function loadPlotly(): Promise<Plotly> {
  loading ??= import('plotly.js-dist-min').then((module) => {
    loaded = module.default;
    return module.default;
  });
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}

/** Trace colours, one per class or model, readable on the studio's dark background. */
export const SERIES_COLORS = ['#60a5fa', '#f59e0b', '#34d399', '#f472b6', '#a78bfa', '#f87171', '#22d3ee', '#facc15'];

const AXIS: Partial<LayoutAxis> = {
  gridcolor: '#2a3038',
  zerolinecolor: '#3a424d',
  linecolor: '#3a424d',
  tickfont: { size: 11 },
  automargin: true,
};

// No link to plotly's site (the studio reaches nothing beyond its origin); no selection tools that do nothing here.
const CONFIG: Partial<Config> = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ['select2d', 'lasso2d', 'autoScale2d'],
  toImageButtonOptions: { format: 'png', scale: 2 },
};

function themed(layout: Partial<Layout>): Partial<Layout> {
  return {
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: '#151a20',
    font: { family: 'system-ui, sans-serif', color: '#d4d9df', size: 12 },
    margin: { l: 56, r: 16, t: 40, b: 48 },
    colorway: SERIES_COLORS,
    legend: { orientation: 'h', y: -0.22, font: { size: 11 } },
    ...layout,
    title: layout.title ? { font: { size: 14 }, x: 0.02, ...layout.title } : undefined,
    xaxis: { ...AXIS, ...layout.xaxis },
    yaxis: { ...AXIS, ...layout.yaxis },
  };
}

/** A plotly chart; `data` and `layout` should keep their identity between renders unless they change. */
export function Plot(props: { data: Data[]; layout: Partial<Layout>; testId?: string; className?: string }) {
  const element = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string>();
  const { data, layout } = props;

  useEffect(() => {
    let active = true;
    loadPlotly()
      .then(async (plotly) => {
        if (!active || !element.current) return;
        await plotly.react(element.current, data, themed(layout), CONFIG);
        element.current?.setAttribute('data-rendered', 'true');
      })
      .catch((reason: unknown) => active && setError(reason instanceof Error ? reason.message : String(reason)));
    return () => {
      active = false;
    };
  }, [data, layout]);

  useEffect(() => {
    const target = element.current;
    return () => {
      if (target) loaded?.purge(target);
    };
  }, []);

  return (
    <div className={`plot${props.className ? ` ${props.className}` : ''}`}>
      <div ref={element} className="plot-canvas" data-testid={props.testId} />
      {error && (
        <p className="notice error" role="alert">
          The plot could not be drawn: {error}
        </p>
      )}
    </div>
  );
}
