// Compute pipelines compiled once per (shader, defines, entry point) and kept.
import { composeShader, type ShaderDefines } from './shaders.js';

export interface PipelineKey {
  shader: string;
  entryPoint: string;
  defines?: ShaderDefines;
}

export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  /** Defines every shader gets (a key's own defines override them). */
  readonly globals: ShaderDefines = {};

  constructor(private readonly device: GPUDevice) {}

  get(key: PipelineKey): GPUComputePipeline {
    const defines = { ...this.globals, ...key.defines };
    const id = `${key.shader}|${key.entryPoint}|${JSON.stringify(defines)}`;
    let pipeline = this.pipelines.get(id);
    if (!pipeline) {
      pipeline = this.device.createComputePipeline({
        label: `${key.shader}:${key.entryPoint}`,
        layout: 'auto',
        compute: { module: this.module(key.shader, defines), entryPoint: key.entryPoint },
      });
      this.pipelines.set(id, pipeline);
    }
    return pipeline;
  }

  private module(shader: string, defines: ShaderDefines): GPUShaderModule {
    const code = composeShader(shader, defines);
    let mod = this.modules.get(code);
    if (!mod) {
      mod = this.device.createShaderModule({ label: shader, code });
      this.modules.set(code, mod);
    }
    return mod;
  }

  /** Compiles the pipeline now; a WGSL or validation error is thrown with the shader's name. */
  async check(key: PipelineKey): Promise<void> {
    this.device.pushErrorScope('validation');
    this.get(key);
    const error = await this.device.popErrorScope();
    if (error) throw new Error(`${key.shader}.wgsl (${key.entryPoint}): ${error.message}`);
  }
}
