import { KernelError } from './errors.ts';

/**
 * WGSL sources live in kernels/<family>.wgsl, one file per op family with forward and backward entry points side by
 * side. The browser gets them as raw strings from Vite, Node reads them from disk; both hand the registry a loader.
 */
export type KernelSourceLoader = (family: string) => string;

/** Pipeline-overridable constants (WGSL `override` declarations), e.g. the workgroup size. */
export type KernelConstants = Readonly<Record<string, number | boolean>>;

export interface KernelRef {
  /** The file name in kernels/ without .wgsl. */
  readonly family: string;
  readonly entryPoint: string;
  readonly constants?: KernelConstants;
}

export function kernelName(ref: KernelRef): string {
  return `${ref.family}.${ref.entryPoint}`;
}

function cacheKey(ref: KernelRef): string {
  const constants = Object.entries(ref.constants ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${Number(v)}`)
    .join(',');
  return `${ref.family}.${ref.entryPoint}{${constants}}`;
}

/** WebGPU takes override constants as numbers; a WGSL bool override reads 0 as false and anything else as true. */
function numericConstants(constants: KernelConstants = {}): Record<string, number> {
  return Object.fromEntries(Object.entries(constants).map(([k, v]) => [k, Number(v)]));
}

function formatCompilationMessages(info: GPUCompilationInfo): string {
  return info.messages
    .filter((m) => m.type === 'error')
    .map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message}`)
    .join('\n');
}

/** Compiles each kernel family once and caches one pipeline per (family, entry point, constants). */
export class KernelRegistry {
  private readonly modules = new Map<string, Promise<GPUShaderModule>>();
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly ready = new Map<string, GPUComputePipeline>();

  constructor(
    private readonly device: GPUDevice,
    private readonly loadSource: KernelSourceLoader,
  ) {}

  private module(family: string): Promise<GPUShaderModule> {
    let module = this.modules.get(family);
    if (!module) {
      module = (async () => {
        const code = this.loadSource(family);
        this.device.pushErrorScope('validation');
        const shader = this.device.createShaderModule({ code, label: family });
        const [error, info] = await Promise.all([this.device.popErrorScope(), shader.getCompilationInfo()]);
        const messages = formatCompilationMessages(info);
        if (error || messages) throw new KernelError(family, `WGSL does not compile:\n${messages || error?.message}`);
        return shader;
      })();
      // A failed compile is not cached: a fixed source (hot reload) or a new device can try again.
      module.catch(() => this.modules.delete(family));
      this.modules.set(family, module);
    }
    return module;
  }

  /** The pipeline for a kernel, compiled on first use. */
  pipeline(ref: KernelRef): Promise<GPUComputePipeline> {
    const key = cacheKey(ref);
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      pipeline = (async () => {
        const module = await this.module(ref.family);
        try {
          const created = await this.device.createComputePipelineAsync({
            label: key,
            layout: 'auto',
            compute: { module, entryPoint: ref.entryPoint, constants: numericConstants(ref.constants) },
          });
          this.ready.set(key, created);
          return created;
        } catch (error) {
          throw new KernelError(kernelName(ref), `pipeline creation failed: ${(error as Error).message}`);
        }
      })();
      pipeline.catch(() => this.pipelines.delete(key));
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /** The pipeline if it is compiled already: dispatch needs it synchronously while recording a batch. */
  compiled(ref: KernelRef): GPUComputePipeline | undefined {
    return this.ready.get(cacheKey(ref));
  }
}
