export { requestGpuDevice, assertDeviceAlive, GpuDeviceLostError, GpuOutOfMemoryError, GpuUnavailableError } from './device.js';
export type { GpuDevice, GpuFeatures, AdapterDescription, DeviceOptions } from './device.js';
export { BufferManager, BufferUsage, STORAGE } from './buffers.js';
export { PipelineCache, type PipelineKey } from './pipelines.js';
export { composeShader, shaderSource, type ShaderDefines } from './shaders.js';
export { GpuRuntime, type Binding } from './runtime.js';
export type { KernelTime } from './profiler.js';
export type { Arithmetic } from './arithmetic.js';
