// GPU buffers: creation with byte accounting, uploads, and readback through reused staging buffers.

/** Buffer usage flags as numbers, so this module needs no GPUBufferUsage global at import time. */
export const BufferUsage = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  QUERY_RESOLVE: 0x200,
} as const;

export const STORAGE = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;

export class BufferManager {
  private live = new Set<GPUBuffer>();
  private staging = new Map<number, GPUBuffer[]>();
  bytesAllocated = 0;

  constructor(private readonly device: GPUDevice) {}

  /** A storage buffer (size rounded up to 4 bytes, at least 16). */
  create(label: string, size: number, usage: number = STORAGE): GPUBuffer {
    const bytes = Math.max(16, Math.ceil(size / 4) * 4);
    const max = this.device.limits.maxBufferSize;
    if (bytes > max) {
      throw new Error(`not enough GPU memory: buffer ${label} needs ${bytes} bytes, the device allows at most ${max} per buffer`);
    }
    const buffer = this.device.createBuffer({ label, size: bytes, usage });
    this.live.add(buffer);
    this.bytesAllocated += bytes;
    return buffer;
  }

  /** A storage buffer holding `data`. */
  createWith(label: string, data: ArrayBufferView, usage: number = STORAGE): GPUBuffer {
    const buffer = this.create(label, data.byteLength, usage);
    this.write(buffer, data);
    return buffer;
  }

  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    const padded = data.byteLength % 4 === 0 ? data : padTo4(data);
    this.device.queue.writeBuffer(buffer, offset, padded.buffer, padded.byteOffset, padded.byteLength);
  }

  destroy(buffer: GPUBuffer): void {
    if (this.live.delete(buffer)) {
      this.bytesAllocated -= buffer.size;
      buffer.destroy();
    }
  }

  destroyAll(): void {
    for (const b of [...this.live]) this.destroy(b);
    for (const list of this.staging.values()) list.forEach((b) => b.destroy());
    this.staging.clear();
  }

  /** Copies `size` bytes at `offset` of `buffer` back to the CPU. */
  async read(buffer: GPUBuffer, offset = 0, size = buffer.size - offset): Promise<ArrayBuffer> {
    const stagingSize = Math.max(256, 2 ** Math.ceil(Math.log2(size)));
    const pool = this.staging.get(stagingSize) ?? [];
    this.staging.set(stagingSize, pool);
    const staging = pool.pop() ?? this.device.createBuffer({
      label: `staging ${stagingSize}`,
      size: stagingSize,
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
    });
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, offset, staging, 0, Math.ceil(size / 4) * 4);
    this.device.queue.submit([encoder.finish()]);
    try {
      await staging.mapAsync(0x1, 0, Math.ceil(size / 4) * 4);
      const out = staging.getMappedRange(0, Math.ceil(size / 4) * 4).slice(0, size);
      staging.unmap();
      pool.push(staging);
      return out;
    } catch (e) {
      staging.destroy();
      throw e;
    }
  }

  async readF32(buffer: GPUBuffer, offset = 0, count?: number): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, offset, count === undefined ? undefined : count * 4));
  }

  async readI32(buffer: GPUBuffer, offset = 0, count?: number): Promise<Int32Array> {
    return new Int32Array(await this.read(buffer, offset, count === undefined ? undefined : count * 4));
  }
}

function padTo4(data: ArrayBufferView): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}
