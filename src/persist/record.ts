// The context store's record: one KV page of one model (all layers, K and V), keyed by its
// chained page hash (the prefix cache's), in a binary format that is checked whole before use.
//
// Little-endian throughout (version 2; a few fixed bytes per page, so q8_0 records of small
// pages stay near the page bytes themselves):
//   0  magic "WGKV"        4  version u16 (RECORD_VERSION)     6  chunk count u16
//   8  chunks, each: tag (4 ASCII bytes), length u32, CRC-32 of the payload u32, payload padded
//      to 4 bytes. In order:
//      "META"  0 the model fingerprint's first 16 bytes (SHA-256), 16 the tokenizer hash's first
//              8 bytes, 24 layers, numKvHeads, headDim, pageSize (u16 each), 32 format (u8, index
//              in KV_FORMATS), 33 token id width (u8: 2 when every id of the page is below 65536,
//              else 4), 34 key bytes, 35 parent bytes (u8; 0 = no parent), 36 token count u16,
//              38 key then parent (the hex page hashes as bytes), then the token ids (u16 or i32)
//      "PAGE"  per layer the K page then the V page, in layout.format as src/model/kernels/kv.ts
//              lays a page out in GPU memory
//   trailer, written last (the commit): "WGKC", total bytes u32, CRC-32 of the chunk CRCs u32.
//      A record without it (cut short) is not a record.
// decodeRecord refuses anything that fails a check, naming the check; callers delete such records.
import { KV_FORMATS, kvPageBytes, type KvFormat } from '../model/index.js';
import { crc32 } from './crc32.js';

export const RECORD_MAGIC = 'WGKV';
export const COMMIT_MAGIC = 'WGKC';
export const RECORD_VERSION = 2;

/** What a record's KV pages are: the model's shape and the stored format. */
export interface StoredLayout {
  layers: number;
  numKvHeads: number;
  headDim: number;
  pageSize: number;
  format: KvFormat;
}

/** Whose records a store reads: records of any other identity are refused. */
export interface RecordIdentity {
  modelFingerprint: string;
  tokenizerHash: string;
  layout: StoredLayout;
}

/** One KV page as the prefix cache hands it over (and gets it back). */
export interface PageRecord {
  /** The page's chained hash (prefix cache): the record's key. */
  key: string;
  /** The previous page's hash, or null for the first page of a chain. */
  parent: string | null;
  /** The page's token ids (pageSize of them). */
  tokens: Int32Array;
  /** Per layer, the page's K and V bytes in layout.format. */
  k: Uint8Array[];
  v: Uint8Array[];
}

export type RecordProblem = 'truncated' | 'corrupt' | 'magic' | 'version' | 'model' | 'tokenizer' | 'layout' | 'key';

export class RecordError extends Error {
  constructor(readonly problem: RecordProblem, detail: string) {
    super(`context record: ${detail}`);
    this.name = 'RecordError';
  }
}

interface Meta {
  key: string;
  parent: string | null;
  /** Hex prefixes of the identity's digests (MODEL_ID_BYTES, TOKENIZER_ID_BYTES). */
  modelFingerprint: string;
  tokenizerHash: string;
  layout: StoredLayout;
  tokens: Int32Array;
}

const META_FIXED_BYTES = 38;
const MODEL_ID_BYTES = 16;
const TOKENIZER_ID_BYTES = 8;

function hexBytes(hex: string, what: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`context record: the ${what} must be a SHA-256 hex digest`);
  return Uint8Array.from({ length: 32 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

function bytesHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function hashBytes(hex: string): Uint8Array {
  if (!/^([0-9a-f]{2}){1,255}$/.test(hex)) throw new Error(`context record: page hash "${hex.slice(0, 40)}" is not an even number of hex digits`);
  return Uint8Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

function encodeMeta(m: Meta): Uint8Array {
  const key = hashBytes(m.key);
  const parent = m.parent === null ? new Uint8Array(0) : hashBytes(m.parent);
  const width = m.tokens.every((t) => t >= 0 && t <= 0xffff) ? 2 : 4;
  if (m.tokens.length > 0xffff) throw new Error(`context record: ${m.tokens.length} tokens in a page`);
  const out = new Uint8Array(META_FIXED_BYTES + key.length + parent.length + width * m.tokens.length);
  const view = new DataView(out.buffer);
  out.set(hexBytes(m.modelFingerprint, 'model fingerprint').subarray(0, MODEL_ID_BYTES), 0);
  out.set(hexBytes(m.tokenizerHash, 'tokenizer hash').subarray(0, TOKENIZER_ID_BYTES), 16);
  const { layers, numKvHeads, headDim, pageSize, format } = m.layout;
  [layers, numKvHeads, headDim, pageSize].forEach((n, i) => {
    if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw new Error(`context record: layout value ${n} out of range`);
    view.setUint16(24 + 2 * i, n, true);
  });
  out[32] = KV_FORMATS.indexOf(format);
  out[33] = width;
  out[34] = key.length;
  out[35] = parent.length;
  view.setUint16(36, m.tokens.length, true);
  out.set(key, META_FIXED_BYTES);
  out.set(parent, META_FIXED_BYTES + key.length);
  const at = META_FIXED_BYTES + key.length + parent.length;
  m.tokens.forEach((t, i) => (width === 2 ? view.setUint16(at + 2 * i, t, true) : view.setInt32(at + 4 * i, t, true)));
  return out;
}

function decodeMeta(b: Uint8Array): Meta {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < META_FIXED_BYTES) throw new RecordError('corrupt', 'META is too short');
  const [width, keyLength, parentLength] = [b[33], b[34], b[35]];
  const count = view.getUint16(36, true);
  if ((width !== 2 && width !== 4) || keyLength === 0) throw new RecordError('corrupt', `META token width ${width} or key length ${keyLength} is impossible`);
  const at = META_FIXED_BYTES + keyLength + parentLength;
  if (b.length !== at + width * count) throw new RecordError('corrupt', 'META lengths do not add up');
  const format = KV_FORMATS[b[32]];
  if (format === undefined) throw new RecordError('corrupt', `META format ${b[32]} is unknown`);
  const tokens = Int32Array.from({ length: count }, (_, i) => (width === 2 ? view.getUint16(at + 2 * i, true) : view.getInt32(at + 4 * i, true)));
  return {
    modelFingerprint: bytesHex(b.subarray(0, MODEL_ID_BYTES)),
    tokenizerHash: bytesHex(b.subarray(16, 16 + TOKENIZER_ID_BYTES)),
    layout: { layers: view.getUint16(24, true), numKvHeads: view.getUint16(26, true), headDim: view.getUint16(28, true), pageSize: view.getUint16(30, true), format },
    tokens,
    key: bytesHex(b.subarray(META_FIXED_BYTES, META_FIXED_BYTES + keyLength)),
    parent: parentLength === 0 ? null : bytesHex(b.subarray(META_FIXED_BYTES + keyLength, at)),
  };
}

const HEADER_BYTES = 8;
const CHUNK_HEADER_BYTES = 12;
const TRAILER_BYTES = 12;
const pad4 = (n: number) => Math.ceil(n / 4) * 4;

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

/** Bytes of one page of one K or V buffer in a stored layout. */
export function storedPageBytes(layout: StoredLayout): number {
  return kvPageBytes({ pageSize: layout.pageSize, numKvHeads: layout.numKvHeads, headDim: layout.headDim, format: layout.format });
}

export function encodeRecord(identity: RecordIdentity, record: PageRecord): Uint8Array {
  const { layout } = identity;
  const pageBytes = storedPageBytes(layout);
  if (record.tokens.length !== layout.pageSize) throw new Error(`context record: ${record.tokens.length} tokens for pages of ${layout.pageSize}`);
  if (record.k.length !== layout.layers || record.v.length !== layout.layers) throw new Error(`context record: pages of ${record.k.length} layers for a model of ${layout.layers}`);
  for (const page of [...record.k, ...record.v]) {
    if (page.length !== pageBytes) throw new Error(`context record: a page of ${page.length} bytes, not ${pageBytes} (${layout.format})`);
  }
  const meta: Meta = { key: record.key, parent: record.parent, modelFingerprint: identity.modelFingerprint, tokenizerHash: identity.tokenizerHash, layout, tokens: record.tokens };
  const pages = new Uint8Array(2 * layout.layers * pageBytes);
  for (let l = 0; l < layout.layers; l++) {
    pages.set(record.k[l], 2 * l * pageBytes);
    pages.set(record.v[l], (2 * l + 1) * pageBytes);
  }
  const chunks: [string, Uint8Array][] = [
    ['META', encodeMeta(meta)],
    ['PAGE', pages],
  ];
  const total = HEADER_BYTES + chunks.reduce((n, [, p]) => n + CHUNK_HEADER_BYTES + pad4(p.length), 0) + TRAILER_BYTES;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(ascii(RECORD_MAGIC), 0);
  view.setUint16(4, RECORD_VERSION, true);
  view.setUint16(6, chunks.length, true);
  let at = HEADER_BYTES;
  const crcs = new Uint8Array(chunks.length * 4);
  chunks.forEach(([tag, payload], i) => {
    const crc = crc32(payload);
    out.set(ascii(tag), at);
    view.setUint32(at + 4, payload.length, true);
    view.setUint32(at + 8, crc, true);
    out.set(payload, at + CHUNK_HEADER_BYTES);
    new DataView(crcs.buffer).setUint32(i * 4, crc, true);
    at += CHUNK_HEADER_BYTES + pad4(payload.length);
  });
  out.set(ascii(COMMIT_MAGIC), at);
  view.setUint32(at + 4, total, true);
  view.setUint32(at + 8, crc32(crcs), true);
  return out;
}

function tagAt(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + 4));
}

/** The chunks of a record, every CRC and the commit trailer checked. */
function readChunks(bytes: Uint8Array): { tag: string; payload: Uint8Array }[] {
  if (bytes.length < HEADER_BYTES + TRAILER_BYTES) throw new RecordError('truncated', `${bytes.length} bytes is shorter than any record`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (tagAt(bytes, 0) !== RECORD_MAGIC) throw new RecordError('magic', `no ${RECORD_MAGIC} magic`);
  const version = view.getUint16(4, true);
  if (version !== RECORD_VERSION) throw new RecordError('version', `version ${version}, this build reads ${RECORD_VERSION}`);
  const count = view.getUint16(6, true);
  const chunks: { tag: string; payload: Uint8Array }[] = [];
  const crcs = new Uint8Array(count * 4);
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + CHUNK_HEADER_BYTES > bytes.length) throw new RecordError('truncated', `chunk ${i} of ${count} starts past the end (${bytes.length} bytes)`);
    const length = view.getUint32(at + 4, true);
    const end = at + CHUNK_HEADER_BYTES + length;
    if (end > bytes.length) throw new RecordError('truncated', `chunk ${i} (${tagAt(bytes, at)}) ends at byte ${end} of ${bytes.length}`);
    const payload = bytes.subarray(at + CHUNK_HEADER_BYTES, end);
    const crc = view.getUint32(at + 8, true);
    if (crc32(payload) !== crc) throw new RecordError('corrupt', `chunk ${i} (${tagAt(bytes, at)}) fails its CRC-32`);
    new DataView(crcs.buffer).setUint32(i * 4, crc, true);
    chunks.push({ tag: tagAt(bytes, at), payload });
    at += CHUNK_HEADER_BYTES + pad4(length);
  }
  if (at + TRAILER_BYTES > bytes.length || tagAt(bytes, at) !== COMMIT_MAGIC) throw new RecordError('truncated', 'no commit trailer: the record was never finished');
  if (view.getUint32(at + 4, true) !== bytes.length || view.getUint32(at + 8, true) !== crc32(crcs)) {
    throw new RecordError('corrupt', 'the commit trailer does not match the chunks');
  }
  return chunks;
}

function sameLayout(a: StoredLayout, b: StoredLayout): boolean {
  return a.layers === b.layers && a.numKvHeads === b.numKvHeads && a.headDim === b.headDim && a.pageSize === b.pageSize && a.format === b.format;
}

/** The record in `bytes` if it passes every check for `identity` (and has key `key`); a RecordError if not. */
export function decodeRecord(bytes: Uint8Array, identity: RecordIdentity, key?: string): PageRecord {
  const chunks = readChunks(bytes);
  const { layout } = identity;
  if (chunks.length !== 2 || chunks.some((c, i) => c.tag !== ['META', 'PAGE'][i])) {
    throw new RecordError('corrupt', `chunks ${chunks.map((c) => c.tag).join(',')} are not META,PAGE`);
  }
  const meta = decodeMeta(chunks[0].payload);
  if (!identity.modelFingerprint.startsWith(meta.modelFingerprint)) throw new RecordError('model', `written for model ${meta.modelFingerprint.slice(0, 16)}…, not ${identity.modelFingerprint.slice(0, 16)}…`);
  if (!identity.tokenizerHash.startsWith(meta.tokenizerHash)) throw new RecordError('tokenizer', 'written with another tokenizer');
  if (!sameLayout(meta.layout, layout)) throw new RecordError('layout', `layout ${JSON.stringify(meta.layout)} is not ${JSON.stringify(layout)}`);
  if (key !== undefined && meta.key !== key) throw new RecordError('key', `holds page ${meta.key}, not ${key}`);
  const pageBytes = storedPageBytes(layout);
  if (meta.tokens.length !== layout.pageSize) throw new RecordError('corrupt', `${meta.tokens.length} token ids for pages of ${layout.pageSize}`);
  const pages = chunks[1].payload;
  if (pages.length !== 2 * layout.layers * pageBytes) throw new RecordError('corrupt', `PAGE holds ${pages.length} bytes, not ${layout.layers} layers of K and V pages of ${pageBytes}`);
  const page = (i: number) => pages.slice(i * pageBytes, (i + 1) * pageBytes);
  return {
    key: meta.key,
    parent: meta.parent,
    tokens: meta.tokens,
    k: Array.from({ length: layout.layers }, (_, l) => page(2 * l)),
    v: Array.from({ length: layout.layers }, (_, l) => page(2 * l + 1)),
  };
}

/** A store identity for a model's pages stored as `layout` (the model's shape, the stored format). */
export function recordIdentity(modelFingerprint: string, tokenizerHash: string, layout: StoredLayout): RecordIdentity {
  hexBytes(modelFingerprint, 'model fingerprint');
  hexBytes(tokenizerHash, 'tokenizer hash');
  return { modelFingerprint, tokenizerHash, layout: { ...layout } };
}
