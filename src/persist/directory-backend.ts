// The context store in a directory (Node; `wgserve serve --context-store DIR`): one file per
// record, <key>.wgkv, written to a temporary name and renamed into place (the rename is the
// commit: a reader sees a whole record or none). The file's mtime is the record's last use.
// Node-only at run time: node:fs is imported when a store is opened (as src/model/source.ts
// does), so browser bundles that include the engine never load it.
import { checkKept, checkRecordKey, type KeptContext, type RecordMeta, type StoreBackend } from './backend.js';

const SUFFIX = '.wgkv';
/** A kept context: <id>.kept, JSON (KeptContext). */
const KEPT = '.kept';

type Fs = typeof import('node:fs/promises');

const join = (dir: string, name: string) => `${dir.replace(/\/+$/, '')}/${name}`;

export class DirectoryBackend implements StoreBackend {
  readonly kind = 'directory';
  private tmpCounter = 0;

  private constructor(readonly dir: string, private readonly fs: Fs) {}

  static async open(dir: string): Promise<DirectoryBackend> {
    const fsModule = 'node:fs/promises';
    const fs = (await import(/* @vite-ignore */ fsModule)) as Fs;
    await fs.mkdir(dir, { recursive: true });
    return new DirectoryBackend(dir, fs);
  }

  private path(key: string): string {
    checkRecordKey(key);
    return join(this.dir, key + SUFFIX);
  }

  private async writeAtomically(final: string, bytes: Uint8Array | string): Promise<void> {
    const tmp = `${final}.${process.pid}.${this.tmpCounter++}.tmp`;
    try {
      await this.fs.writeFile(tmp, bytes);
      await this.fs.rename(tmp, final);
    } catch (e) {
      await this.fs.unlink(tmp).catch(() => {});
      throw e;
    }
  }

  async commit(puts: { key: string; bytes: Uint8Array; lastUsed: number }[], deletes: string[]): Promise<void> {
    for (const p of puts) {
      const final = this.path(p.key);
      await this.writeAtomically(final, p.bytes);
      const t = new Date(p.lastUsed);
      await this.fs.utimes(final, t, t);
    }
    for (const key of deletes) await this.fs.unlink(this.path(key)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }

  async read(key: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await this.fs.readFile(this.path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async touch(keys: string[], time: number): Promise<void> {
    const t = new Date(time);
    for (const key of keys) await this.fs.utimes(this.path(key), t, t).catch(() => {});
  }

  async list(): Promise<RecordMeta[]> {
    const out: RecordMeta[] = [];
    for (const name of await this.fs.readdir(this.dir)) {
      if (!name.endsWith(SUFFIX)) continue;
      const key = name.slice(0, -SUFFIX.length);
      if (!/^[0-9a-f]{8,128}$/.test(key)) continue;
      const s = await this.fs.stat(join(this.dir, name)).catch(() => null);
      if (s) out.push({ key, bytes: s.size, lastUsed: s.mtimeMs });
    }
    return out;
  }

  async listKept(): Promise<KeptContext[]> {
    const out: KeptContext[] = [];
    for (const name of await this.fs.readdir(this.dir)) {
      if (!name.endsWith(KEPT)) continue;
      const text = await this.fs.readFile(join(this.dir, name), 'utf8').catch(() => null);
      let value: unknown = null;
      try {
        value = text === null ? null : JSON.parse(text);
      } catch {
        // A file that is not JSON is not a kept context.
      }
      const kept = checkKept(value);
      if (kept && name === kept.id + KEPT) out.push(kept);
    }
    return out;
  }

  async putKept(kept: KeptContext): Promise<void> {
    checkRecordKey(kept.id);
    await this.writeAtomically(join(this.dir, kept.id + KEPT), JSON.stringify(kept));
  }

  async deleteKept(ids: string[]): Promise<void> {
    for (const id of ids) {
      checkRecordKey(id);
      await this.fs.unlink(join(this.dir, id + KEPT)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
    }
  }

  close(): void {}
}
