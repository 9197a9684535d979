import { anomalyMaps, disposeAnomalyMaps } from '../anomaly/anomalyMap.ts';
import type { GpuRuntime } from '../gpu/runtime.ts';
import type { Tensor } from '../gpu/tensor.ts';
import {
  parseSafetensors,
  prefixedView,
  type SafetensorsFile,
  type TensorToWrite,
  writeSafetensors,
} from '../io/safetensors.ts';
import { CONFIG_METADATA_KEY } from '../model/config.ts';
import {
  DirectionTables,
  decoderForward,
  hssForward,
  loadDecoder,
  loadHss,
  loadLss,
  loadPatchExpand,
  loadSs2d,
  lssForward,
  patchExpandForward,
  type ScanSettings,
  ss2dForward,
} from '../model/decoder.ts';
import { loadMambaAD, mambaadForward } from '../model/mambaad.ts';
import { loadMffOceWeights, mffOceForward } from '../model/mffOce.ts';
import { nchwToNhwc, nhwcToNchw } from '../model/ops/layout.ts';
import { ParameterReader } from '../model/parameters.ts';
import { type DirectionCount, isScanOrder } from '../model/scanOrders.ts';
import { loadGolden } from '../testing/goldens.ts';
import { maxAbsoluteError, maxRelativeError } from '../testing/reference.ts';

/**
 * Our WGSL engine against the official goldens (module by module) and against the PyTorch reference at full size.
 * Each check returns its errors; the targets are applied by scripts/parity.ts so that a failing run still reports
 * every figure.
 */

export interface ParityRecord {
  adapter: string;
  /** The official anomaly map golden (ADer's evaluator): max absolute errors of the final map and the scores. */
  anomalyMap: { map: number; scores: number };
  /** What the loader says about damaged copies of the first full-size case's weights. */
  rejections: Record<string, string>;
  /** Max relative error (max |ours - golden| / max |golden|) per golden module output. */
  goldens: Record<string, number>;
  /** Full-size cases against training/reference: relative errors of outputs, absolute errors of maps. */
  fullSize: Record<string, FullSizeErrors>;
}

export interface FullSizeErrors {
  z: number;
  decoded: number[];
  cosineMaps: number[];
  map: number;
  scores: number;
  forwardMs: number;
}

interface GoldenMeta {
  scan_type?: string;
  num_direction?: number;
  size?: number;
  d_model?: number;
  hidden_dim?: number;
  dim?: number;
  depth?: number;
  dims_decoder?: number[];
  depths_decoder?: number[];
}

function meta(file: SafetensorsFile): GoldenMeta {
  return JSON.parse(file.metadata.case ?? '{}') as GoldenMeta;
}

function scanOf(m: GoldenMeta): ScanSettings {
  const order = m.scan_type ?? '';
  const directions = m.num_direction;
  if (!isScanOrder(order) || (directions !== 2 && directions !== 4 && directions !== 8)) {
    throw new Error(`golden metadata names an unknown scan: ${order} x${directions}`);
  }
  return { order, directions: directions as DirectionCount };
}

async function compare(runtime: GpuRuntime, out: Tensor, golden: SafetensorsFile, name: string): Promise<number> {
  const error = maxRelativeError(await runtime.read(out), golden.float32(name));
  out.dispose();
  return error;
}

/** Runs `build` with a reader over the golden's `param.*` tensors and checks that every parameter was readable. */
function withReader<T>(
  runtime: GpuRuntime,
  golden: SafetensorsFile,
  name: string,
  build: (r: ParameterReader) => T,
): T {
  const reader = new ParameterReader(runtime, golden, name);
  const result = build(reader);
  reader.finish();
  return result;
}

const SS2D_GOLDENS = [
  'ss2d_hilbert8_s16_d64',
  'ss2d_hilbert4_s8_d32',
  'ss2d_hilbert2_s8_d32',
  'ss2d_zigzag8_s16_d32',
  'ss2d_sweep8_s8_d32',
  'ss2d_scan4_s16_d32',
  'ss2d_zorder8_s16_d32',
];

export async function checkGoldens(runtime: GpuRuntime): Promise<Record<string, number>> {
  const errors: Record<string, number> = {};

  for (const name of SS2D_GOLDENS) {
    const golden = await loadGolden(name);
    const m = meta(golden);
    const tables = new DirectionTables(runtime, scanOf(m));
    const weights = withReader(runtime, golden, name, (r) => loadSs2d(r, 'param.', m.d_model!, m.size!, tables));
    const x = runtime.upload(golden.tensor('input.x').shape, golden.float32('input.x'));
    errors[name] = await compare(runtime, ss2dForward(runtime, weights, x), golden, 'output.0');
  }

  {
    const name = 'hss_block_hilbert8_s16_d64';
    const golden = await loadGolden(name);
    const m = meta(golden);
    const tables = new DirectionTables(runtime, scanOf(m));
    const weights = withReader(runtime, golden, name, (r) => loadHss(r, 'param.', m.hidden_dim!, m.size!, tables));
    const x = runtime.upload(golden.tensor('input.x').shape, golden.float32('input.x'));
    errors[name] = await compare(runtime, hssForward(runtime, weights, x), golden, 'output.0');
  }

  {
    const name = 'lss_module_depth2_hilbert8_s16_d64';
    const golden = await loadGolden(name);
    const m = meta(golden);
    const tables = new DirectionTables(runtime, scanOf(m));
    const weights = withReader(runtime, golden, name, (r) =>
      loadLss(r, 'param.', m.hidden_dim!, m.depth!, m.size!, tables),
    );
    const x = runtime.upload(golden.tensor('input.x').shape, golden.float32('input.x'));
    errors[name] = await compare(runtime, lssForward(runtime, weights, x), golden, 'output.0');
  }

  {
    const name = 'patch_expand_d32';
    const golden = await loadGolden(name);
    const weights = withReader(runtime, golden, name, (r) => loadPatchExpand(r, 'param.', meta(golden).dim!));
    const x = runtime.upload(golden.tensor('input.x').shape, golden.float32('input.x'));
    errors[name] = await compare(runtime, patchExpandForward(runtime, weights, x), golden, 'output.0');
  }

  {
    const name = 'mambaupnet_dims64-32-16-8_depths2222_hilbert8';
    const golden = await loadGolden(name);
    const m = meta(golden);
    const z = nchwToNhwc(runtime, runtime.upload(golden.tensor('input.z').shape, golden.float32('input.z')));
    const weights = withReader(runtime, golden, name, (r) =>
      loadDecoder(r, 'param.', m.dims_decoder!, m.depths_decoder!, z.shape[1]!, scanOf(m)),
    );
    const outputs = decoderForward(runtime, weights, z);
    for (const [i, out] of outputs.entries()) {
      errors[`${name}/output.${i}`] = await compare(runtime, nhwcToNchw(runtime, out), golden, `output.${i}`);
    }
  }

  {
    const name = 'mff_oce_small';
    const golden = await loadGolden(name);
    const weights = loadMffOceWeights(runtime, golden, 'param.');
    const [f1, f2, f3] = ['f1', 'f2', 'f3'].map((f) =>
      nchwToNhwc(runtime, runtime.upload(golden.tensor(`input.${f}`).shape, golden.float32(`input.${f}`))),
    );
    const z = mffOceForward(runtime, weights, f1!, f2!, f3!);
    errors[`${name}/eval`] = await compare(runtime, nhwcToNchw(runtime, z), golden, 'output.eval');
  }

  return errors;
}

/** A case written by training/reference/make_parity_case.py: weights, encoder features and the reference's outputs. */
export async function checkFullSize(runtime: GpuRuntime, caseBytes: Uint8Array, name: string): Promise<FullSizeErrors> {
  const file = parseSafetensors(caseBytes, name);
  const model = loadMambaAD(runtime, prefixedView(file, 'param.'), name);
  const features = ['f1', 'f2', 'f3'].map((f) =>
    nchwToNhwc(runtime, runtime.upload(file.tensor(`input.${f}`).shape, file.float32(`input.${f}`))),
  );
  await runtime.flush();
  const start = performance.now();
  const { z, decoded } = mambaadForward(runtime, model, features);
  const maps = await anomalyMaps(runtime, features, decoded);
  const forwardMs = performance.now() - start;

  const errors: FullSizeErrors = {
    z: maxRelativeError(await runtime.read(nhwcToNchw(runtime, z)), file.float32('output.z')),
    decoded: [],
    cosineMaps: [],
    map: maxAbsoluteError(await runtime.read(maps.map), file.float32('output.map')),
    scores: maxAbsoluteError(maps.scores, file.float32('output.score')),
    forwardMs: Math.round(forwardMs),
  };
  for (const [i, d] of decoded.entries()) {
    errors.decoded.push(maxRelativeError(await runtime.read(nhwcToNchw(runtime, d)), file.float32(`output.d${i + 1}`)));
    errors.cosineMaps.push(
      maxAbsoluteError(await runtime.read(maps.distances[i]!), file.float32(`output.cos${i + 1}`)),
    );
  }
  disposeAnomalyMaps(maps);
  return errors;
}

async function checkAnomalyMapGolden(runtime: GpuRuntime): Promise<{ map: number; scores: number }> {
  const golden = await loadGolden('anomaly_map');
  const upload = (name: string) => nchwToNhwc(runtime, runtime.upload(golden.tensor(name).shape, golden.float32(name)));
  const features = [0, 1, 2].map((i) => upload(`input.ft${i}`));
  const decoded = [0, 1, 2].map((i) => upload(`input.fs${i}`));
  const maps = await anomalyMaps(runtime, features, decoded);
  const result = {
    map: maxAbsoluteError(await runtime.read(maps.map), Float64Array.from(golden.tensor('output.map').data, Number)),
    scores: maxAbsoluteError(maps.scores, Float64Array.from(golden.tensor('output.image_score').data, Number)),
  };
  disposeAnomalyMaps(maps);
  return result;
}

/** Damaged copies of a weights file must be refused with a message that names the problem. */
function checkRejections(runtime: GpuRuntime, caseBytes: Uint8Array): Record<string, string> {
  const file = parseSafetensors(caseBytes);
  const weights: Record<string, TensorToWrite> = {};
  for (const name of file.names.filter((n) => n.startsWith('param.'))) {
    const t = file.tensor(name);
    weights[name.slice('param.'.length)] =
      t.dtype === 'I64'
        ? { dtype: 'I64', shape: t.shape, data: t.data as BigInt64Array }
        : { dtype: 'F32', shape: t.shape, data: file.float32(name) };
  }
  const metadata = { [CONFIG_METADATA_KEY]: file.metadata[CONFIG_METADATA_KEY] ?? '' };
  const good = writeSafetensors(weights, metadata);
  const attempt = (bytes: Uint8Array): string => {
    try {
      loadMambaAD(runtime, parseSafetensors(bytes, 'damaged.safetensors'), 'damaged.safetensors');
      return 'accepted';
    } catch (error) {
      return (error as Error).message;
    }
  };
  const victim = 'net_s.layers_up.1.blocks.0.smm_blocks.0.self_attention.out_proj.weight';
  const { [victim]: removed, ...missing } = weights;
  const reshaped = {
    ...weights,
    [victim]: { dtype: 'F32' as const, shape: [1, removed!.data.length], data: removed!.data },
  };
  return {
    intact: attempt(good),
    truncated: attempt(good.subarray(0, good.length - 1000)),
    wrongShape: attempt(writeSafetensors(reshaped, metadata)),
    missingKey: attempt(writeSafetensors(missing, metadata)),
    noConfig: attempt(writeSafetensors(weights)),
  };
}

export async function runParity(runtime: GpuRuntime, fullSizeCases: readonly string[]): Promise<ParityRecord> {
  const record: ParityRecord = {
    adapter: runtime.adapterName,
    goldens: await checkGoldens(runtime),
    anomalyMap: await checkAnomalyMapGolden(runtime),
    rejections: {},
    fullSize: {},
  };
  for (const [i, path] of fullSizeCases.entries()) {
    const response = await fetch(`/${path}`);
    if (!response.ok) throw new Error(`cannot read ${path}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (i === 0) record.rejections = checkRejections(runtime, bytes);
    record.fullSize[path] = await checkFullSize(runtime, bytes, path);
  }
  return record;
}
