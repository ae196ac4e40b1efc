// A model's identity: SHA-256 of its metadata and tensor layout (not of the weights, which
// would mean hashing the whole file). Keys prefix caches and persisted contexts.
import type { GgufHeader, GgufValue } from './gguf.js';

function canonical(value: GgufValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'bigint') return `${value}n`;
  return JSON.stringify(value);
}

export async function modelFingerprint(header: GgufHeader): Promise<string> {
  const parts: string[] = [`gguf v${header.version}`];
  for (const key of [...header.metadata.keys()].sort()) parts.push(`${key}=${canonical(header.metadata.get(key)!)}`);
  for (const t of header.tensors) parts.push(`${t.name}:${t.type}:${t.dims.join('x')}@${t.offset}`);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(parts.join('\n')));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
