import type { GpuRuntime } from '../../gpu/runtime.ts';
import { shapeToString, type Tensor } from '../../gpu/tensor.ts';

/**
 * kernels/layout.wgsl: layout changes between NCHW and channels-last NHWC, PatchExpand's shuffle, channel blocks.
 * Backward: nchwToNhwc and nhwcToNchw are each other's backward; patchExpandShuffleBackward undoes the shuffle;
 * splitChannels is concatChannels' backward (and sliceChannels one block of it).
 */
const family = 'layout';
const WORKGROUP_SIZE = 256;

function image(what: string, x: Tensor): [number, number, number, number] {
  if (x.shape.length !== 4) throw new Error(`${what}: expected a 4-D tensor, got ${shapeToString(x.shape)}`);
  return x.shape as [number, number, number, number];
}

/** [batch, rows, cols] -> [batch, cols, rows]. */
function transposeBatched(runtime: GpuRuntime, x: Tensor, batch: number, rows: number, cols: number, shape: number[]) {
  const out = runtime.empty(shape, 'transpose');
  runtime.dispatch({
    kernel: { family, entryPoint: 'transpose', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(batch * rows * cols, rows, cols),
    buffers: [x, out],
    workgroups: runtime.workgroupsFor(batch * rows * cols, WORKGROUP_SIZE),
  });
  return out;
}

/** [B, C, H, W] -> [B, H, W, C] (encoder features arrive NCHW). */
export function nchwToNhwc(runtime: GpuRuntime, x: Tensor): Tensor {
  const [b, c, h, w] = image('nchwToNhwc', x);
  return transposeBatched(runtime, x, b, c, h * w, [b, h, w, c]);
}

/** [B, H, W, C] -> [B, C, H, W] (PyTorch's layout, for outputs and goldens). */
export function nhwcToNchw(runtime: GpuRuntime, x: Tensor): Tensor {
  const [b, h, w, c] = image('nhwcToNchw', x);
  return transposeBatched(runtime, x, b, h * w, c, [b, c, h, w]);
}

/**
 * PatchExpand2D's rearrangement after its Linear: [B, H, W, 4·dim] -> [B, 2H, 2W, dim] with
 * out[b, 2h + p1, 2w + p2, c] = in[b, h, w, p1·2·dim + p2·dim + c] (MAMBAAD.md §4).
 */
export function patchExpandShuffle(runtime: GpuRuntime, x: Tensor): Tensor {
  const [b, h, w, channels] = image('patchExpandShuffle', x);
  if (channels % 4 !== 0) throw new Error(`patchExpandShuffle: ${channels} channels are not 4·dim`);
  const dim = channels / 4;
  const out = runtime.empty([b, 2 * h, 2 * w, dim], 'patchExpand');
  runtime.dispatch({
    kernel: { family, entryPoint: 'patch_expand', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(out.size, h, w, dim),
    buffers: [x, out],
    workgroups: runtime.workgroupsFor(out.size, WORKGROUP_SIZE),
  });
  return out;
}

/** The backward of patchExpandShuffle: dy [B, 2H, 2W, dim] -> dx [B, H, W, 4·dim], the inverse permutation. */
export function patchExpandShuffleBackward(runtime: GpuRuntime, dy: Tensor): Tensor {
  const [b, outH, outW, dim] = image('patchExpandShuffleBackward', dy);
  if (outH % 2 !== 0 || outW % 2 !== 0) {
    throw new Error(`patchExpandShuffleBackward: ${shapeToString(dy.shape)} is not a 2x-expanded image`);
  }
  const [h, w] = [outH / 2, outW / 2];
  const dx = runtime.empty([b, h, w, 4 * dim], 'patchExpand dx');
  runtime.dispatch({
    kernel: { family, entryPoint: 'patch_expand_backward', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(dx.size, h, w, dim),
    buffers: [dy, dx],
    workgroups: runtime.workgroupsFor(dx.size, WORKGROUP_SIZE),
  });
  return dx;
}

/** Copies all rows of src's channels [srcOffset, srcOffset + channels) to dst's channels from dstOffset. */
function copyChannels(
  runtime: GpuRuntime,
  src: Tensor,
  srcOffset: number,
  dst: Tensor,
  dstOffset: number,
  channels: number,
): void {
  const srcStride = src.shape.at(-1) ?? 0;
  const dstStride = dst.shape.at(-1) ?? 0;
  const count = (src.size / srcStride) * channels;
  runtime.dispatch({
    kernel: { family, entryPoint: 'copy_channels', constants: { WORKGROUP_SIZE } },
    params: Uint32Array.of(count, channels, srcStride, srcOffset, dstStride, dstOffset),
    buffers: [src, dst],
    workgroups: runtime.workgroupsFor(count, WORKGROUP_SIZE),
  });
}

/** Concatenates channels-last tensors [..., C_i] of equal leading dimensions along the last axis, in order. */
export function concatChannels(runtime: GpuRuntime, inputs: readonly Tensor[]): Tensor {
  const [first] = inputs;
  if (!first || first.shape.length === 0)
    throw new Error('concatChannels: needs at least one tensor with a channel axis');
  const leading = first.shape.slice(0, -1);
  for (const t of inputs) {
    if (t.shape.length !== first.shape.length || t.shape.slice(0, -1).some((d, i) => d !== leading[i])) {
      throw new Error(
        `concatChannels: shapes ${inputs.map((u) => shapeToString(u.shape)).join(', ')} differ outside the last axis`,
      );
    }
  }
  const total = inputs.reduce((n, t) => n + (t.shape.at(-1) ?? 0), 0);
  const out = runtime.empty([...leading, total], 'concat');
  let offset = 0;
  for (const t of inputs) {
    const channels = t.shape.at(-1) ?? 0;
    if (channels > 0) copyChannels(runtime, t, 0, out, offset, channels);
    offset += channels;
  }
  return out;
}

/** Channels [start, start + count) of x [..., C] as a new tensor [..., count]. */
export function sliceChannels(runtime: GpuRuntime, x: Tensor, start: number, count: number): Tensor {
  const channels = x.shape.at(-1) ?? 0;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > channels) {
    throw new Error(`sliceChannels: channels [${start}, ${start + count}) are outside ${shapeToString(x.shape)}`);
  }
  const out = runtime.empty([...x.shape.slice(0, -1), count], 'slice');
  copyChannels(runtime, x, start, out, 0, count);
  return out;
}

/**
 * The backward of concatChannels: dy [..., Σ widths] cut along the last axis into [..., widths[i]], in order.
 */
export function splitChannels(runtime: GpuRuntime, dy: Tensor, widths: readonly number[]): Tensor[] {
  const total = widths.reduce((n, c) => n + c, 0);
  if (widths.some((c) => !Number.isInteger(c) || c < 1) || dy.shape.length === 0 || dy.shape.at(-1) !== total) {
    throw new Error(`splitChannels: widths [${widths.join(', ')}] do not split ${shapeToString(dy.shape)}`);
  }
  let offset = 0;
  return widths.map((channels) => {
    const part = sliceChannels(runtime, dy, offset, channels);
    offset += channels;
    return part;
  });
}
