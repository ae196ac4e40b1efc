// Streams a GGUF file: header first, then each tensor's bytes in file order, handed to a
// callback (which uploads it to the GPU) so only one tensor is in memory at a time.
import { GgufError, NeedMoreBytes, ggmlTypeName, parseGgufHeader, type GgufHeader, type TensorInfo } from './gguf.js';
import type { ByteReader } from './source.js';

export interface LoadProgress {
  phase: 'header' | 'weights' | 'done';
  loadedBytes: number;
  totalBytes: number | undefined;
  /** The tensor just loaded, during 'weights'. */
  tensor?: string;
}

export type ProgressCallback = (p: LoadProgress) => void;

const FIRST_READ = 256 * 1024;

/**
 * Reads and parses the header, reading more of the source until the whole header is in. The
 * parser bounds every length by the file's size (or MAX_HEADER_BYTES), so a corrupt length
 * fails before more is read.
 */
export async function readGgufHeader(reader: ByteReader): Promise<GgufHeader> {
  let bytes = await reader.readUpTo(FIRST_READ);
  for (;;) {
    try {
      const header = parseGgufHeader(bytes, reader.name, reader.size);
      // Give back what was read past the header, so tensors stream from their offsets.
      const start = Math.min(header.dataOffset, bytes.byteLength);
      reader.unread(bytes.subarray(start));
      return header;
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
      const more = await reader.readUpTo(Math.max(e.needed, bytes.byteLength * 2) - bytes.byteLength);
      if (bytes.byteLength + more.byteLength < e.needed) {
        const what = bytes.byteLength + more.byteLength < 24 ? `file of ${bytes.byteLength + more.byteLength} bytes is too small to be GGUF` :
          `file ends at byte ${bytes.byteLength + more.byteLength}, inside its header (which needs at least ${e.needed} bytes)`;
        throw new GgufError(what, reader.name);
      }
      const next = new Uint8Array(bytes.byteLength + more.byteLength);
      next.set(bytes);
      next.set(more, bytes.byteLength);
      bytes = next;
    }
  }
}

/** Calls `onTensor` for every tensor in file order with exactly its bytes. */
export async function streamTensors(
  reader: ByteReader,
  header: GgufHeader,
  onTensor: (info: TensorInfo, bytes: Uint8Array) => void | Promise<void>,
  onProgress?: ProgressCallback,
): Promise<void> {
  const ordered = [...header.tensors].sort((a, b) => a.offset - b.offset);
  for (const info of ordered) {
    if (info.offset < reader.position) {
      throw new GgufError(`tensor ${info.name} overlaps the previous tensor at offset ${info.offset}`, reader.name);
    }
    await reader.seek(info.offset);
    let bytes: Uint8Array;
    try {
      bytes = await reader.read(info.byteLength);
    } catch (e) {
      throw new GgufError(`tensor ${info.name} (${ggmlTypeName(info.type)}) at offset ${info.offset}: ${(e as Error).message}`, reader.name);
    }
    await onTensor(info, bytes);
    onProgress?.({ phase: 'weights', loadedBytes: reader.position, totalBytes: reader.size, tensor: info.name });
  }
}
