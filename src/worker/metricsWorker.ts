/// <reference lib="webworker" />
/**
 * The metrics worker: decodes ground-truth masks and accumulates the benchmark's metrics off the main thread, so an
 * evaluation of thousands of images (hundreds of millions of pixel scores) never blocks the UI.
 */
import type { MetricsRequest, MetricsResponse } from './metricsProtocol.ts';
import { MetricsSession } from './metricsSession.ts';

let session = new MetricsSession();
// Mask decoding is asynchronous: requests are handled strictly in arrival order, so a summary sees every image added
// before it was asked for.
let queue: Promise<void> = Promise.resolve();

function reply(message: MetricsResponse): void {
  self.postMessage(message);
}

async function handle(request: MetricsRequest): Promise<void> {
  switch (request.type) {
    case 'reset':
      session = new MetricsSession();
      return;
    case 'add':
      await session.add(request.image);
      return;
    case 'summarize':
      try {
        reply({ type: 'summary', id: request.id, summary: session.summarize() });
      } catch (error) {
        reply({ type: 'failed', id: request.id, error: error instanceof Error ? error.message : String(error) });
      }
      return;
  }
}

self.onmessage = (event: MessageEvent<MetricsRequest>) => {
  queue = queue.then(() => handle(event.data));
};
