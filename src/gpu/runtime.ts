// The GPU runtime every kernel goes through: a device, its buffers and pipelines, and a
// recorder that puts a whole step's dispatches into one command submission.
//
// Binding convention of every kernel in shaders/: @group(0) @binding(0) is a uniform struct
// of parameters (when the kernel has any), then storage buffers at bindings 1, 2, ... in the
// order the kernel wrapper passes them.
import { BufferManager, BufferUsage } from './buffers.js';
import { assertDeviceAlive, GpuOutOfMemoryError, requestGpuDevice, type DeviceOptions, type GpuDevice } from './device.js';
import { probeArithmetic, type Arithmetic } from './arithmetic.js';
import { PipelineCache, type PipelineKey } from './pipelines.js';
import { Profiler } from './profiler.js';

/** A buffer binding: the whole buffer, or a range of it. */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment upper bound
const UNIFORM_SLOTS = 4096;

/**
 * Per-submission uniform parameters, packed into one buffer written once before submit.
 * Slots are handed out in call order, so the same sequence of kernels each step lands on the
 * same offsets and the cached bind groups keep matching.
 */
class UniformArena {
  readonly buffer: GPUBuffer;
  private readonly mirror = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  private used = 0;

  constructor(buffers: BufferManager) {
    this.buffer = buffers.create('uniforms', this.mirror.byteLength, BufferUsage.UNIFORM | BufferUsage.COPY_DST);
  }

  push(params: ArrayBufferView): { offset: number; size: number } {
    if (params.byteLength > UNIFORM_SLOT) throw new Error(`uniform params of ${params.byteLength} bytes exceed ${UNIFORM_SLOT}`);
    if (this.used >= UNIFORM_SLOTS) throw new Error(`more than ${UNIFORM_SLOTS} dispatches in one submission`);
    const offset = this.used++ * UNIFORM_SLOT;
    new Uint8Array(this.mirror, offset, params.byteLength).set(new Uint8Array(params.buffer, params.byteOffset, params.byteLength));
    return { offset, size: Math.ceil(params.byteLength / 16) * 16 };
  }

  flush(queue: GPUQueue): void {
    if (this.used) queue.writeBuffer(this.buffer, 0, this.mirror, 0, this.used * UNIFORM_SLOT);
    this.used = 0;
  }
}

export class GpuRuntime {
  readonly buffers: BufferManager;
  readonly pipelines: PipelineCache;
  readonly profiler: Profiler;
  private readonly uniforms: UniformArena;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /**
   * Kernel shapes for a CPU adapter (SwiftShader): there, every workgroup barrier switches
   * between fibers of the workgroup's invocations, so reductions use a few threads per
   * workgroup instead of a GPU's hundreds (a 256-thread RMSNorm runs 55x slower than an
   * 8-thread one). Defaults to the adapter's kind; tests flip it to cover the GPU shapes.
   */
  softwareShapes: boolean;
  /** The device's fma() and a * b + c rounding (arithmetic.ts); known after create(). */
  arithmetic: Arithmetic = { fusedFma: false, contractsMulAdd: false };

  constructor(readonly gpu: GpuDevice) {
    this.softwareShapes = gpu.adapter.isSoftware;
    this.buffers = new BufferManager(gpu.device);
    this.pipelines = new PipelineCache(gpu.device);
    this.uniforms = new UniformArena(this.buffers);
    this.profiler = new Profiler(gpu, this.buffers);
    this.pipelines.globals.FUSED_FMA = 'false';
  }

  /**
   * Runs `allocate` (which creates buffers) and resolves to its result, or throws a
   * GpuOutOfMemoryError naming `what` if the device ran out of memory meanwhile; `release` then
   * frees what was made.
   */
  async allocating<T>(what: string, allocate: () => T, release: (made: T) => void): Promise<T> {
    this.device.pushErrorScope('out-of-memory');
    let made: { value: T } | { thrown: unknown };
    try {
      made = { value: allocate() };
    } catch (e) {
      made = { thrown: e };
    }
    const error = await this.device.popErrorScope();
    if ('thrown' in made) throw made.thrown;
    if (!error) return made.value;
    release(made.value);
    throw new GpuOutOfMemoryError(`not enough GPU memory for ${what} (${error.message})`);
  }

  static async create(options?: DeviceOptions): Promise<GpuRuntime> {
    const rt = new GpuRuntime(await requestGpuDevice(options));
    rt.arithmetic = await probeArithmetic(rt);
    // The exact kernels take the hardware's fma when it rounds once (shaders/exact.wgsl fma4).
    rt.pipelines.globals.FUSED_FMA = String(rt.arithmetic.fusedFma);
    if (rt.arithmetic.contractsMulAdd) {
      options?.log?.('wgserve: this GPU compiler fuses a * b + c; numerics \'llama.cpp\' may differ from llama.cpp in last bits');
    }
    return rt;
  }

  get device(): GPUDevice {
    return this.gpu.device;
  }

  /**
   * Records one kernel dispatch into the current submission (opened on first use).
   * `params` goes to binding 0 as a uniform; `bindings` follow at 1, 2, ...
   */
  dispatch(key: PipelineKey, params: ArrayBufferView | null, bindings: Binding[], workgroups: [number, number?, number?]): void {
    assertDeviceAlive(this.gpu);
    const pipeline = this.pipelines.get(key);
    const entries: Binding[] = [];
    if (params) entries.push({ buffer: this.uniforms.buffer, ...this.uniforms.push(params) });
    entries.push(...bindings);
    const group = this.bindGroup(pipeline, entries);
    const label = `${key.shader}:${key.entryPoint}`;
    const pass = this.profiler.enabled ? this.profiledPass(label) : this.currentPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    const [x, y = 1, z = 1] = workgroups;
    this.checkWorkgroups(label, x, y, z);
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    if (this.profiler.enabled) this.endPass();
  }

  /** Records a buffer copy in order with the dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.currentEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Command buffers submitted so far (a forward step is one; tests check it). */
  submissions = 0;

  /** Submits everything recorded since the last submit as one command buffer. */
  submit(): void {
    if (!this.encoder) return;
    this.submissions++;
    this.endPass();
    this.profiler.resolve(this.encoder);
    this.uniforms.flush(this.device.queue);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
  }

  /** Waits until the GPU has run everything submitted, and fails if the device is lost. */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    assertDeviceAlive(this.gpu);
  }

  destroy(): void {
    this.submit();
    this.buffers.destroyAll();
    this.bindGroups.clear();
    this.gpu.device.destroy();
  }

  private checkWorkgroups(label: string, ...counts: number[]): void {
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (counts.some((c) => c > max)) throw new Error(`${label}: dispatch of ${counts.join('x')} workgroups exceeds the limit ${max}`);
  }

  private currentEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private currentPass(): GPUComputePassEncoder {
    this.pass ??= this.currentEncoder().beginComputePass();
    return this.pass;
  }

  private profiledPass(label: string): GPUComputePassEncoder {
    this.endPass();
    this.pass = this.currentEncoder().beginComputePass({ timestampWrites: this.profiler.nextWrites(label) });
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private id(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = this.nextId++));
    return id;
  }

  private bindGroup(pipeline: GPUComputePipeline, entries: Binding[]): GPUBindGroup {
    const parts = entries.map((e) => (isRange(e) ? `${this.id(e.buffer)}@${e.offset}+${e.size}` : `${this.id(e)}`));
    const key = `${this.id(pipeline)}:${parts.join(',')}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      group = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: entries.map((e, binding) => ({ binding, resource: isRange(e) ? e : { buffer: e } })),
      });
      if (this.bindGroups.size > 20000) this.bindGroups.clear();
      this.bindGroups.set(key, group);
    }
    return group;
  }

  /** Forgets cached bind groups of a buffer about to be destroyed. */
  forget(buffer: GPUBuffer): void {
    const id = `${this.id(buffer)}`;
    for (const key of this.bindGroups.keys()) {
      if (key.split(':')[1].split(',').some((p) => p === id || p.startsWith(id + '@'))) this.bindGroups.delete(key);
    }
  }
}

function isRange(b: Binding): b is { buffer: GPUBuffer; offset: number; size: number } {
  return 'buffer' in b && typeof (b as { offset?: unknown }).offset === 'number';
}
