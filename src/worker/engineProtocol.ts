/**
 * The messages between the studio (src/worker/engineClient.ts) and the inference engine worker
 * (src/worker/engineWorker.ts), and the public types of the engine's API. Everything here is structured-cloneable.
 */
import type { ModelConfig } from '../model/config.ts';

/** Metadata key of the decision threshold chosen in the studio, saved with a model (a number as JSON). */
export const THRESHOLD_METADATA_KEY = 'mambaad.threshold';

/** Metadata key of an evaluation record (metrics per class), as the evaluation tools write it (JSON object). */
export const EVALUATION_RECORD_KEY = 'mambaad.evaluation';

/** What the engine knows about a weights file it accepted. */
export interface ModelSummary {
  name: string;
  config: ModelConfig;
  /** Trainable parameters (BatchNorm statistics and scan tables excluded). */
  parameterCount: number;
  /** The file's `mambaad.training` metadata (JSON object), when it has one. */
  trainingRecord?: Record<string, unknown>;
  /** The file's `mambaad.evaluation` metadata (JSON object), when it has one. */
  evaluationRecord?: Record<string, unknown>;
  /** The file's `mambaad.threshold` metadata, when it has one. */
  threshold?: number;
}

/**
 * One image to analyse: the raw file bytes (decoding happens in the worker), or a Blob such as a File, which the
 * worker reads itself when the image's turn comes (so a folder of thousands of files is never all in memory).
 */
export interface AnalyzeInput {
  id: string;
  name: string;
  bytes: Uint8Array | Blob;
}

export type AnalyzeResult =
  | {
      id: string;
      name: string;
      ok: true;
      /** Image score: the maximum of the final map. */
      score: number;
      /** The original image's size. */
      width: number;
      height: number;
      /** The final anomaly map (1 - cos per scale, upsampled, averaged, blurred; MAMBAAD.md §11), size x size. */
      map: Float32Array;
      /** The model's input size (256 for the default config). */
      size: number;
      /** The size x size RGB8 image the model saw (the reference's PIL bilinear resize), e.g. for thumbnails. */
      modelInput: Uint8Array;
      /** Where the time went: decoding this file, then the encoder and MambaAD for its whole batch. */
      timing?: AnalyzeTiming;
    }
  | { id: string; name: string; ok: false; error: string };

export interface AnalyzeTiming {
  decodeMs: number;
  encoderMs: number;
  /** MFF_OCE, the decoder, the anomaly map and the read-back. */
  modelMs: number;
  /** Images in the batch the encoder and model times are for. */
  batch: number;
}

export interface AnalyzeProgress {
  done: number;
  total: number;
  imagesPerSecond: number;
  /** NaN until the first image is done. */
  etaSeconds: number;
}

export type EngineGpuStatus =
  | { state: 'starting' }
  | { state: 'ready'; adapterName: string; isSoftwareAdapter: boolean }
  /** The device was lost; a new one is being opened and the model re-loaded. */
  | { state: 'recovering'; message: string }
  | { state: 'failed'; message: string };

export type EngineEncoderStatus =
  | { state: 'loading' }
  | { state: 'ready'; backend: string; reason: string }
  /** The encoder weights were not found: the user can pick the file (EngineClient.setEncoderWeights). */
  | { state: 'missing'; message: string }
  | { state: 'failed'; message: string };

export interface EngineStatus {
  gpu: EngineGpuStatus;
  encoder: EngineEncoderStatus;
  /** The model the worker runs, if any. */
  model?: { name: string };
  /** The last GPU device loss, so the UI can say what happened after recovering. */
  lastDeviceLoss?: { message: string; at: number };
  /** An image or batch is on the GPU now. */
  busy: boolean;
}

export const INITIAL_ENGINE_STATUS: EngineStatus = {
  gpu: { state: 'starting' },
  encoder: { state: 'loading' },
  busy: false,
};

/** Debug-only (studio opened with ?debug): make the GPU device go away now, or in the middle of the next image. */
export type DeviceLossTiming = 'now' | 'next-image';

export type EngineRequest =
  | { type: 'init'; debug: boolean; pageHasWebGpu: boolean; encoderWeightsUrl: string }
  | { type: 'load-model'; requestId: number; bytes: Uint8Array; name: string }
  | { type: 'set-encoder-weights'; requestId: number; bytes: Uint8Array; name: string }
  | { type: 'analyze'; jobId: number; total: number }
  /** The next inputs of a job, in answer to 'need'; an empty list means there are no more. */
  | { type: 'inputs'; jobId: number; inputs: AnalyzeInput[] }
  | { type: 'cancel'; jobId: number }
  | { type: 'debug-lose-device'; requestId: number; when: DeviceLossTiming };

export type EngineReply =
  | { type: 'status'; status: EngineStatus }
  | { type: 'reply'; requestId: number; ok: true; value?: ModelSummary }
  | { type: 'reply'; requestId: number; ok: false; error: string }
  | { type: 'need'; jobId: number; count: number }
  | { type: 'result'; jobId: number; result: AnalyzeResult }
  | { type: 'job-done'; jobId: number; error?: string };
