// SentencePiece-style tokenization as llama.cpp's llm_tokenizer_spm does it: split the
// (already ▁-escaped) text into characters, then repeatedly merge the adjacent pair whose
// concatenation is the vocabulary piece with the highest score; characters left over that are
// not pieces become byte tokens (<0xXX>).

/** A binary heap; `before(a, b)` is true when a must come out first. */
export class PriorityQueue<T> {
  private readonly items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    // Move the hole up until the parent may come first, then drop the item in.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(item, items[parent])) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) this.siftDown(last);
    return top;
  }

  private siftDown(item: T): void {
    const items = this.items;
    const n = items.length;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(items[child + 1], items[child])) child++;
      if (!this.before(items[child], item)) break;
      items[i] = items[child];
      i = child;
    }
    items[i] = item;
  }
}

export interface SpmVocab {
  /** Piece text → token id. */
  readonly ids: ReadonlyMap<string, number>;
  /** Score of each token id (higher merges first). */
  readonly scores: ArrayLike<number>;
  /** Token for one byte of a character that no piece covers. */
  byteToken(byte: number): number;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  /** Length of left + right when the bigram was queued; a different sum means it is stale. */
  length: number;
}

const bigramBefore = (a: Bigram, b: Bigram): boolean =>
  a.score > b.score || (a.score === b.score && a.left < b.left);

const utf8 = new TextEncoder();

export class SpmEncoder {
  constructor(private readonly vocab: SpmVocab) {}

  /** Appends the tokens of `text` (spaces already replaced by ▁) to `out`. */
  encode(text: string, out: number[]): void {
    const symbols = Array.from(text);
    const next = symbols.map((_, i) => (i + 1 < symbols.length ? i + 1 : -1));
    const prev = symbols.map((_, i) => i - 1);
    const queue = new PriorityQueue<Bigram>(bigramBefore);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const merged = symbols[left] + symbols[right];
      const id = this.vocab.ids.get(merged);
      if (id === undefined) return;
      queue.push({ left, right, score: this.vocab.scores[id], length: merged.length });
    };
    for (let i = 1; i < symbols.length; i++) tryAdd(i - 1, i);

    for (let bigram = queue.pop(); bigram; bigram = queue.pop()) {
      const { left, right } = bigram;
      const leftText = symbols[left];
      const rightText = symbols[right];
      if (!leftText || !rightText || leftText.length + rightText.length !== bigram.length) continue;
      symbols[left] = leftText + rightText;
      symbols[right] = '';
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }

    for (let i = symbols.length > 0 ? 0 : -1; i !== -1; i = next[i]) this.emit(symbols[i], out);
  }

  private emit(symbol: string, out: number[]): void {
    const id = this.vocab.ids.get(symbol);
    if (id !== undefined) {
      out.push(id);
      return;
    }
    for (const byte of utf8.encode(symbol)) out.push(this.vocab.byteToken(byte));
  }
}
