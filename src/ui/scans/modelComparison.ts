/**
 * Comparing models that differ in their scan method: each weights file is loaded into the engine in turn (it holds
 * one model at a time), run on the chosen image and, optionally, evaluated on a labelled set with the Evaluate
 * pipeline; the user's own model is loaded back at the end, whatever happened.
 */
import { parseSafetensors } from '../../io/safetensors.ts';
import { CONFIG_METADATA_KEY, type ModelConfig, parseModelConfig } from '../../model/config.ts';
import type { AnalyzeResult } from '../../worker/engineClient.ts';
import type { MetricsSink } from '../../worker/metricsClient.ts';
import type { DatasetSource } from '../evaluate/datasetSource.ts';
import {
  type Analyzer,
  type EvaluationOutcome,
  type EvaluationProgress,
  runEvaluation,
} from '../evaluate/evaluationRun.ts';

export interface CandidateModel {
  id: string;
  name: string;
  bytes: Uint8Array;
  config: ModelConfig;
}

/** Reads a weights file's config from its metadata; throws a message naming the file when it has none or a bad one. */
export function readCandidate(id: string, name: string, bytes: Uint8Array): CandidateModel {
  const json = parseSafetensors(bytes, name).metadata[CONFIG_METADATA_KEY];
  if (json === undefined) {
    throw new Error(`${name}: no "${CONFIG_METADATA_KEY}" in its metadata, so it is not a MambaAD Studio weights file`);
  }
  return { id, name, bytes, config: parseModelConfig(json, name) };
}

const CONFIG_FIELDS: { key: keyof ModelConfig; label: string }[] = [
  { key: 'encoder', label: 'encoder' },
  { key: 'dims', label: 'decoder widths' },
  { key: 'depths', label: 'decoder depths' },
  { key: 'dState', label: 'state size' },
  { key: 'inputSize', label: 'input size' },
];

/** How the models differ beyond the scan method and direction count, in words (empty when they do not). */
export function otherDifferences(models: readonly CandidateModel[]): string[] {
  return CONFIG_FIELDS.flatMap(({ key, label }) => {
    const values = [...new Set(models.map((m) => String(m.config[key])))];
    return values.length > 1 ? [`${label}: ${values.join(' vs ')}`] : [];
  });
}

/** What the comparison needs of the engine client. */
export interface ComparisonEngine extends Analyzer {
  loadModel(bytes: Uint8Array, name: string): Promise<unknown>;
}

/** One image as the engine analysed it: map, score and the model's input image. */
export type ModelMap = Extract<AnalyzeResult, { ok: true }>;

export interface ModelComparisonResult {
  modelId: string;
  /** Why the model could not be loaded: nothing else was run with it. */
  loadError?: string;
  map?: ModelMap;
  mapError?: string;
  evaluation?: EvaluationOutcome;
  evaluationError?: string;
}

export type ComparisonProgress =
  | { stage: 'loading'; model: number; models: number; name: string }
  | { stage: 'image'; model: number; models: number; name: string }
  | { stage: 'evaluating'; model: number; models: number; name: string; evaluation: EvaluationProgress }
  | { stage: 'restoring'; name: string };

export interface ComparisonRequest {
  models: readonly CandidateModel[];
  image?: { name: string; bytes: Blob | Uint8Array };
  labelled?: { source: DatasetSource; perClass?: number };
  engine: ComparisonEngine;
  metrics: MetricsSink;
  /** The model to load back at the end (the studio's current model), if any. */
  restore?: { bytes: Uint8Array; name: string };
  signal: AbortSignal;
  onProgress(progress: ComparisonProgress): void;
  onResult(result: ModelComparisonResult): void;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function mapOf(engine: Analyzer, image: NonNullable<ComparisonRequest['image']>, signal: AbortSignal) {
  let map: ModelMap | undefined;
  let error: string | undefined;
  await engine.analyze([{ id: 'compare', name: image.name, bytes: image.bytes }], {
    signal,
    onResult: (result) => {
      if (result.ok) map = result;
      else error = result.error;
    },
  });
  if (!map) throw new Error(error ?? 'the engine returned no map');
  return map;
}

/**
 * Runs every model in turn; each model's result is reported as soon as it is complete. Stops between steps when
 * `signal` aborts (rejecting with an AbortError) and always loads `restore` back before returning.
 */
export async function compareModels(request: ComparisonRequest): Promise<void> {
  let failure: { error: unknown } | undefined;
  try {
    await runModels(request);
  } catch (error) {
    failure = { error };
  }
  if (request.restore) {
    const { bytes, name } = request.restore;
    request.onProgress({ stage: 'restoring', name });
    try {
      await request.engine.loadModel(bytes, name);
    } catch (error) {
      throw new Error(`your model ${name} could not be loaded back (${errorText(error)}); load it again in Models`);
    }
  }
  if (failure) throw failure.error;
}

async function runModels(request: ComparisonRequest): Promise<void> {
  const { models, image, labelled, engine, signal, onProgress } = request;
  for (const [index, model] of models.entries()) {
    signal.throwIfAborted();
    const where = { model: index + 1, models: models.length, name: model.name };
    const result: ModelComparisonResult = { modelId: model.id };
    onProgress({ stage: 'loading', ...where });
    try {
      await engine.loadModel(model.bytes, model.name);
    } catch (error) {
      request.onResult({ ...result, loadError: errorText(error) });
      continue;
    }
    if (image) {
      onProgress({ stage: 'image', ...where });
      try {
        result.map = await mapOf(engine, image, signal);
      } catch (error) {
        signal.throwIfAborted();
        result.mapError = errorText(error);
      }
    }
    if (labelled) {
      try {
        result.evaluation = await runEvaluation({
          ...labelled,
          analyzer: engine,
          metrics: request.metrics,
          signal,
          onProgress: (evaluation) => onProgress({ stage: 'evaluating', ...where, evaluation }),
        });
      } catch (error) {
        signal.throwIfAborted();
        result.evaluationError = errorText(error);
      }
      // A run cancelled part-way is not a fair comparison with the models before it.
      signal.throwIfAborted();
    }
    request.onResult(result);
  }
}
