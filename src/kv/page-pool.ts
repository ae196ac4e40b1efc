// Page ids with reference counts. A page is free when its count is zero; pages shared by
// several sequences (a common prefix) have a count above one.

export class PagePool {
  private readonly refs: Int32Array;
  private readonly free: number[];

  constructor(readonly totalPages: number) {
    this.refs = new Int32Array(totalPages);
    // Pop from the end: low ids first, which keeps tests readable.
    this.free = Array.from({ length: totalPages }, (_, i) => totalPages - 1 - i);
  }

  get freePages(): number {
    return this.free.length;
  }

  get usedPages(): number {
    return this.totalPages - this.free.length;
  }

  /** Takes n free pages (reference count 1 each), or returns null if there are not enough. */
  allocate(n: number): number[] | null {
    if (n > this.free.length) return null;
    const pages = this.free.splice(this.free.length - n, n).reverse();
    for (const p of pages) this.refs[p] = 1;
    return pages;
  }

  retain(page: number): void {
    if (this.refs[page] <= 0) throw new Error(`page ${page} is free; cannot retain it`);
    this.refs[page]++;
  }

  /** Drops one reference to each page; pages that reach zero go back to the free list. */
  release(pages: Iterable<number>): void {
    for (const p of pages) {
      if (this.refs[p] <= 0) throw new Error(`page ${p} released more often than allocated`);
      if (--this.refs[p] === 0) this.free.push(p);
    }
  }

  refCount(page: number): number {
    return this.refs[page];
  }

  /** Pages in use + free = total, no page free twice, and counts match the owners' tables. */
  checkInvariants(owners: Iterable<readonly number[]> = []): void {
    const seenFree = new Set<number>();
    for (const p of this.free) {
      if (seenFree.has(p)) throw new Error(`page ${p} is on the free list twice`);
      if (this.refs[p] !== 0) throw new Error(`free page ${p} has reference count ${this.refs[p]}`);
      seenFree.add(p);
    }
    const counted = new Int32Array(this.totalPages);
    for (const table of owners) for (const p of table) counted[p]++;
    let inUse = 0;
    for (let p = 0; p < this.totalPages; p++) {
      if (this.refs[p] > 0) inUse++;
      if (counted[p] > this.refs[p]) throw new Error(`page ${p} is owned ${counted[p]} times but has reference count ${this.refs[p]}`);
    }
    if (inUse + this.free.length !== this.totalPages) {
      throw new Error(`pages in use (${inUse}) + free (${this.free.length}) != total (${this.totalPages})`);
    }
  }
}
