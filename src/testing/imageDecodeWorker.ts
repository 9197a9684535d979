/// <reference lib="webworker" />
/** Test helper: runs the image pipeline inside a Web Worker (used by src/image/decode.gpu.test.ts). */
import { preprocessImage } from '../image/preprocess.ts';

self.onmessage = async (event: MessageEvent<Uint8Array>) => {
  try {
    const { rgb, info } = await preprocessImage(event.data);
    self.postMessage({ rgb, format: info.format });
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  }
};
