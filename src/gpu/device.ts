// One way to get a WebGPU device in a page, a worker and Node (the `webgpu` package, with
// SwiftShader as the fallback when no hardware adapter is there).

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation (SwiftShader, llvmpipe, WARP): fine for tests, slow for serving. */
  isSoftware: boolean;
}

export interface GpuFeatures {
  shaderF16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
}

export class GpuDeviceLostError extends Error {
  constructor(readonly reason: string, message: string) {
    super(`GPU device lost (${reason}): ${message || 'no message'}`);
    this.name = 'GpuDeviceLostError';
  }
}

export class GpuUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuUnavailableError';
  }
}

/** The device could not allocate GPU memory for something (the message says what and how much). */
export class GpuOutOfMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuOutOfMemoryError';
  }
}

export interface DeviceOptions {
  /** Log line sink for notes such as "using SwiftShader" (Node prints them to stderr). */
  log?: (line: string) => void;
  powerPreference?: GPUPowerPreference;
}

export interface GpuDevice {
  device: GPUDevice;
  adapter: AdapterDescription;
  features: GpuFeatures;
  limits: GPUSupportedLimits;
  /** Set once the device is lost; every later GPU call should fail with it. */
  lostError: GpuDeviceLostError | null;
  /** Resolves when the device is lost (never for a healthy device). */
  lost: Promise<GpuDeviceLostError>;
  /** GPU errors no error scope caught (validation, out of memory, internal), with the latest one's text. */
  uncapturedErrors: { count: number; last: string | null };
}

const nodeGpuInstances: GPU[] = [];
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';
}

async function nodeGpu(log: (line: string) => void): Promise<{ gpu: GPU; adapter: GPUAdapter | null }> {
  // require, not import(): the native addon must load once, outside any bundler's module graph.
  const nodeModule = 'node:module';
  const { createRequire } = (await import(/* @vite-ignore */ nodeModule)) as typeof import('node:module');
  const require = createRequire(import.meta.url);
  const mod = require('webgpu') as { create: (flags: string[]) => GPU; globals: object };
  Object.assign(globalThis, mod.globals);
  const { existsSync } = require('node:fs') as typeof import('node:fs');
  const tryCreate = async () => {
    const gpu = mod.create([]);
    // dawn.node aborts the process if its GPU instance is garbage collected while a device
    // made from it is alive; keep every instance reachable for the life of the process.
    nodeGpuInstances.push(gpu);
    return { gpu, adapter: await gpu.requestAdapter() };
  };
  if (!process.env.VK_ICD_FILENAMES) {
    const first = await tryCreate();
    if (first.adapter && !describeAdapter(first.adapter.info).isSoftware) return first;
    if (existsSync(SWIFTSHADER_ICD)) {
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      log('wgserve: no hardware GPU adapter; using SwiftShader (software Vulkan) from ' + SWIFTSHADER_ICD);
    }
  } else if (process.env.VK_ICD_FILENAMES.includes('swiftshader')) {
    log('wgserve: using SwiftShader (software Vulkan) from VK_ICD_FILENAMES');
  }
  return tryCreate();
}

function describeAdapter(info: GPUAdapterInfo | undefined): AdapterDescription {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const description = info?.description ?? '';
  const text = `${vendor} ${architecture} ${description}`.toLowerCase();
  return { vendor, architecture, description, isSoftware: /swiftshader|llvmpipe|lavapipe|warp|software/.test(text) };
}

/** Requests an adapter and a device with the largest buffer limits and the useful features. */
export async function requestGpuDevice(options: DeviceOptions = {}): Promise<GpuDevice> {
  const log = options.log ?? (() => {});
  let adapter: GPUAdapter | null;
  if (isNode()) {
    adapter = (await nodeGpu(log)).adapter;
  } else {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) throw new GpuUnavailableError('WebGPU is not available in this browser (navigator.gpu is missing)');
    adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  }
  if (!adapter) throw new GpuUnavailableError('no WebGPU adapter was found (no GPU, and no software fallback installed)');

  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
  const requiredFeatures = wanted.filter((f) => adapter!.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const result: GpuDevice = {
    device,
    adapter: describeAdapter(adapter.info),
    features: {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      timestampQuery: device.features.has('timestamp-query'),
    },
    limits: device.limits,
    lostError: null,
    uncapturedErrors: { count: 0, last: null },
    lost: device.lost.then((info) => {
      const err = new GpuDeviceLostError(info.reason, info.message);
      result.lostError = err;
      return err;
    }),
  };
  // Reported as log lines (stderr in Node), never left to Dawn, which prints them on stdout.
  const report = options.log ?? ((line: string) => console.error(line));
  device.onuncapturederror = (event) => {
    event.preventDefault();
    const kind = event.error.constructor?.name?.replace(/^GPU|Error$/g, '') || 'GPU';
    const message = `${kind} error: ${event.error.message}`;
    result.uncapturedErrors.count++;
    result.uncapturedErrors.last = message;
    report(`wgserve: GPU ${message}`);
  };
  return result;
}

/** Throws the device-lost error if the device is gone. Call before recording GPU work. */
export function assertDeviceAlive(gpu: GpuDevice): void {
  if (gpu.lostError) throw gpu.lostError;
}
