import type { Data, Layout } from 'plotly.js-dist-min';
import { useMemo } from 'react';
import type { LossPoint } from '../../storage/trainingCheckpoints.ts';
import { Plot } from '../evaluate/Plot.tsx';

/** The loss of every step, with each epoch's mean, on a log axis (the loss falls by orders of magnitude). */
export function LossPlot(props: { losses: readonly LossPoint[]; stepsPerEpoch: number; totalSteps: number }) {
  const { losses, stepsPerEpoch, totalSteps } = props;
  const data = useMemo<Data[]>(() => {
    const epochs = new Map<number, { sum: number; count: number }>();
    for (const p of losses) {
      const epoch = Math.ceil(p.step / stepsPerEpoch);
      const e = epochs.get(epoch) ?? { sum: 0, count: 0 };
      epochs.set(epoch, { sum: e.sum + p.loss, count: e.count + 1 });
    }
    const complete = [...epochs].filter(([, e]) => e.count === stepsPerEpoch);
    return [
      {
        type: 'scatter',
        mode: losses.length > 60 ? 'lines' : 'lines+markers',
        name: 'step loss',
        x: losses.map((p) => p.step),
        y: losses.map((p) => p.loss),
        line: { width: 1.5 },
        marker: { size: 5 },
      },
      {
        type: 'scatter',
        mode: 'markers',
        name: 'epoch mean',
        x: complete.map(([epoch]) => epoch * stepsPerEpoch),
        y: complete.map(([, e]) => e.sum / e.count),
        marker: { size: 8, symbol: 'diamond' },
      },
    ];
  }, [losses, stepsPerEpoch]);
  // A log axis once the loss spans a decade (it falls by orders of magnitude over a run); linear before.
  const spansDecade = useMemo(() => {
    const values = losses.map((p) => p.loss).filter((v) => v > 0);
    return values.length > 1 && Math.max(...values) / Math.min(...values) >= 10;
  }, [losses]);
  const layout = useMemo<Partial<Layout>>(
    () => ({
      title: { text: 'Training loss (5 · Σ MSE of the three scales)' },
      height: 320,
      xaxis: {
        title: { text: 'step' },
        range: [0, Math.max(totalSteps, 1) + 0.5],
        ...(totalSteps <= 12 ? { dtick: 1 } : {}),
      },
      yaxis: { title: { text: 'loss' }, type: spansDecade ? 'log' : 'linear', rangemode: 'tozero' },
    }),
    [totalSteps, spansDecade],
  );
  return (
    <div data-testid="train-loss-plot" data-points={losses.length} data-steps={losses.map((p) => p.step).join(',')}>
      <Plot data={data} layout={layout} testId="train-loss-chart" />
    </div>
  );
}
