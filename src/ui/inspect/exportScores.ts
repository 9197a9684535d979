/** The Inspect session's scores as CSV and JSON files. */
import type { InspectItem } from '../../store/inspectStore.ts';

export interface ScoreExportContext {
  modelName: string | undefined;
  /** The decision threshold, when one was chosen; without it no image is called anomalous. */
  threshold: number | undefined;
}

function csvField(value: string | number | boolean | undefined): string {
  if (value === undefined) return '';
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

interface ScoreRow {
  name: string;
  score?: number;
  width?: number;
  height?: number;
  anomalous?: boolean;
  error?: string;
}

function rows(items: readonly InspectItem[], threshold: number | undefined): ScoreRow[] {
  return items
    .filter((item) => item.state === 'done' || item.state === 'failed')
    .map((item) =>
      item.result
        ? {
            name: item.name,
            score: item.result.score,
            width: item.result.width,
            height: item.result.height,
            anomalous: threshold === undefined ? undefined : item.result.score >= threshold,
          }
        : { name: item.name, error: item.error ?? 'not analysed' },
    );
}

export function scoresCsv(items: readonly InspectItem[], context: ScoreExportContext): string {
  const header = 'name,score,width,height,anomalous,error';
  const lines = rows(items, context.threshold).map((r) =>
    [r.name, r.score, r.width, r.height, r.anomalous, r.error].map(csvField).join(','),
  );
  return `${[header, ...lines].join('\n')}\n`;
}

export function scoresJson(items: readonly InspectItem[], context: ScoreExportContext): string {
  return `${JSON.stringify(
    { model: context.modelName ?? null, threshold: context.threshold ?? null, images: rows(items, context.threshold) },
    null,
    2,
  )}\n`;
}
