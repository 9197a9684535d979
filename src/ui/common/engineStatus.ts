import { useSyncExternalStore } from 'react';
import { type EngineStatus, engineClient } from '../../worker/engineClient.ts';

/** The inference engine's status (GPU, encoder, device loss), kept current. */
export function useEngineStatus(): EngineStatus {
  return useSyncExternalStore(
    (onChange) => engineClient().onStatus(onChange),
    () => engineClient().currentStatus,
  );
}

/** Why analysis cannot run now, in words, or undefined when it can. */
export function engineBlocker(status: EngineStatus): string | undefined {
  if (status.gpu.state === 'failed') return status.gpu.message;
  if (status.encoder.state === 'missing' || status.encoder.state === 'failed') return status.encoder.message;
  return undefined;
}
