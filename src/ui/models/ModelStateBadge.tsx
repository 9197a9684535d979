import { useModelStore } from '../../store/modelStore.ts';
import { useStudioStore } from '../../store/studioStore.ts';

/** The header's note on which model the studio runs; a click opens Models. */
export function ModelStateBadge() {
  const model = useModelStore((s) => s.model);
  const loading = useModelStore((s) => s.loading);
  const defaultModel = useModelStore((s) => s.defaultModel);
  const setTab = useStudioStore((s) => s.setTab);
  const text = model
    ? `Model: ${model.name}`
    : loading || defaultModel === 'checking'
      ? `Loading ${loading ?? 'the default model'}…`
      : 'No model loaded';
  return (
    <button
      type="button"
      className={`model-state${model ? '' : ' none'}`}
      data-testid="model-state"
      title={model ? 'Open Models' : 'Load a model in Models'}
      onClick={() => setTab('models')}
    >
      {text}
    </button>
  );
}
