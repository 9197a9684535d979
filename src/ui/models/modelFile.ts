import { withMetadata } from '../../storage/modelLibrary.ts';
import type { LoadedModel } from '../../store/modelStore.ts';
import { THRESHOLD_METADATA_KEY } from '../../worker/engineProtocol.ts';

/** The model's weights file as it should be saved: with its current threshold in the metadata (or none). */
export function modelFileBytes(model: LoadedModel): Uint8Array {
  return withMetadata(model.bytes, {
    [THRESHOLD_METADATA_KEY]: model.threshold === undefined ? undefined : String(model.threshold),
  });
}

/** A one-line description of a model's config, e.g. for the library list. */
export function describeConfig(model: Pick<LoadedModel, 'config' | 'parameterCount'>): string {
  const c = model.config;
  return `${c.encoder} · ${c.inputSize}px · ${c.scan}×${c.directions} · dims ${c.dims.join('/')} · ${formatCount(model.parameterCount)} parameters`;
}

export function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}
