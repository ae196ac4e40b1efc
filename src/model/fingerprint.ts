// A model's identity: SHA-256 of its metadata and tensor layout (not of the weights, which
// would mean hashing the whole file). Keys prefix caches and persisted contexts.
import type { GgufHeader, GgufValue } from './gguf.js';

function canonical(value: GgufValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'bigint') return `${value}n`;
  return JSON.stringify(value);
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function modelFingerprint(header: GgufHeader): Promise<string> {
  const parts: string[] = [`gguf v${header.version}`];
  for (const key of [...header.metadata.keys()].sort()) parts.push(`${key}=${canonical(header.metadata.get(key)!)}`);
  for (const t of header.tensors) parts.push(`${t.name}:${t.type}:${t.dims.join('x')}@${t.offset}`);
  return sha256Hex(parts.join('\n'));
}

/**
 * The tokenizer's identity: SHA-256 of the GGUF's tokenizer.* metadata (vocabulary, merges,
 * scores, token types, special ids, template). Persisted contexts carry it beside the model's.
 */
export async function tokenizerFingerprint(header: GgufHeader): Promise<string> {
  const keys = [...header.metadata.keys()].filter((k) => k.startsWith('tokenizer.')).sort();
  return sha256Hex(keys.map((key) => `${key}=${canonical(header.metadata.get(key)!)}`).join('\n'));
}
