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
  /** Every pair of adjacent characters inside some piece (built on first use). */
  private innerPairs: Set<string> | null = null;

  constructor(private readonly vocab: SpmVocab) {}

  /**
   * encode(), pausing (yielding) after about every `stepChars` characters. The text is cut only
   * between two characters that no piece has side by side: no merge can cross such a cut, so the
   * parts merge independently and the steps give exactly encode()'s tokens. A text without such
   * a place is encoded in one step.
   */
  *encodeInSteps(text: string, out: number[], stepChars: number): Generator<void> {
    let start = 0;
    while (text.length - start > stepChars) {
      const cut = this.cutAfter(text, start + stepChars);
      if (cut < 0) break;
      yield* this.mergeInSteps(text.slice(start, cut), out, stepChars);
      start = cut;
      yield;
    }
    yield* this.mergeInSteps(text.slice(start), out, stepChars);
  }

  /** The first place at or after `from` where the text can be cut exactly, or -1. */
  private cutAfter(text: string, from: number): number {
    const pairs = (this.innerPairs ??= pairsInPieces(this.vocab.ids.keys()));
    for (let p = Math.max(from, 1); p < text.length; p++) {
      const code = text.charCodeAt(p);
      if (code >= 0xdc00 && code <= 0xdfff) continue; // inside a surrogate pair
      const before = String.fromCodePoint(text.codePointAt(p - 1 - (isLowSurrogate(text.charCodeAt(p - 1)) ? 1 : 0))!);
      const after = String.fromCodePoint(text.codePointAt(p)!);
      if (!pairs.has(before + after)) return p;
    }
    return -1;
  }

  /** Appends the tokens of `text` (spaces already replaced by ▁) to `out`. */
  encode(text: string, out: number[]): void {
    for (const _ of this.mergeInSteps(text, out, Infinity));
  }

  /** The merges of encode(), pausing (yielding) after every `stepMerges` of them: the same tokens. */
  private *mergeInSteps(text: string, out: number[], stepMerges: number): Generator<void> {
    let merges = 0;
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
      if (++merges >= stepMerges) {
        merges = 0;
        yield;
      }
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

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function pairsInPieces(pieces: Iterable<string>): Set<string> {
  const pairs = new Set<string>();
  for (const piece of pieces) {
    const chars = Array.from(piece);
    for (let i = 1; i < chars.length; i++) pairs.add(chars[i - 1] + chars[i]);
  }
  return pairs;
}
