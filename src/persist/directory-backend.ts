// The context store in a directory (Node; `wgserve serve --context-store DIR`): one file per
// record, <key>.wgkv, written to a temporary name and renamed into place (the rename is the
// commit: a reader sees a whole record or none). The file's mtime is the record's last use.
// Node-only: not exported from src/persist/index.ts, so browser bundles never see node:fs.
import { mkdir, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkRecordKey, type RecordMeta, type StoreBackend } from './backend.js';

const SUFFIX = '.wgkv';

export class DirectoryBackend implements StoreBackend {
  readonly kind = 'directory';
  private tmpCounter = 0;

  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<DirectoryBackend> {
    await mkdir(dir, { recursive: true });
    return new DirectoryBackend(dir);
  }

  private path(key: string): string {
    checkRecordKey(key);
    return join(this.dir, key + SUFFIX);
  }

  async commit(puts: { key: string; bytes: Uint8Array; lastUsed: number }[], deletes: string[]): Promise<void> {
    for (const p of puts) {
      const final = this.path(p.key);
      const tmp = `${final}.${process.pid}.${this.tmpCounter++}.tmp`;
      try {
        await writeFile(tmp, p.bytes);
        await rename(tmp, final);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw e;
      }
      const t = new Date(p.lastUsed);
      await utimes(final, t, t);
    }
    for (const key of deletes) await unlink(this.path(key)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }

  async read(key: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async touch(keys: string[], time: number): Promise<void> {
    const t = new Date(time);
    for (const key of keys) await utimes(this.path(key), t, t).catch(() => {});
  }

  async list(): Promise<RecordMeta[]> {
    const out: RecordMeta[] = [];
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(SUFFIX)) continue;
      const key = name.slice(0, -SUFFIX.length);
      if (!/^[0-9a-f]{8,128}$/.test(key)) continue;
      const s = await stat(join(this.dir, name)).catch(() => null);
      if (s) out.push({ key, bytes: s.size, lastUsed: s.mtimeMs });
    }
    return out;
  }

  close(): void {}
}
