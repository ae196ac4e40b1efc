// XGrammar decodes UTF-8 by the lead byte's bit pattern only, so byte tokens can spell what is not
// UTF-8 (overlong forms such as C0 A2 for '"', surrogates, code points above U+10FFFF), which
// would decode to U+FFFD and slip past the grammar's character classes and lengths. This guard
// masks, on top of the grammar's mask, every token whose bytes would make the output's UTF-8
// invalid (Unicode's table 3-7 of well-formed byte sequences). Only tokens whose bytes are not
// whole well-formed UTF-8 on their own can do that, so only those are checked each step.
import type { Tokenizer } from '../../model/index.js';

/** Where the output is inside a character: bytes still to come, and the range of the next one. */
interface Utf8State {
  pending: number;
  low: number;
  high: number;
}

const BETWEEN: Utf8State = { pending: 0, low: 0, high: 0 };

/** The state after `byte`, or null if the byte makes the sequence ill-formed. */
function step(s: Utf8State, byte: number): Utf8State | null {
  if (s.pending > 0) {
    if (byte < s.low || byte > s.high) return null;
    return s.pending === 1 ? BETWEEN : { pending: s.pending - 1, low: 0x80, high: 0xbf };
  }
  if (byte < 0x80) return BETWEEN;
  if (byte >= 0xc2 && byte <= 0xdf) return { pending: 1, low: 0x80, high: 0xbf };
  if (byte === 0xe0) return { pending: 2, low: 0xa0, high: 0xbf };
  if (byte === 0xed) return { pending: 2, low: 0x80, high: 0x9f };
  if (byte >= 0xe1 && byte <= 0xef) return { pending: 2, low: 0x80, high: 0xbf };
  if (byte === 0xf0) return { pending: 3, low: 0x90, high: 0xbf };
  if (byte === 0xf4) return { pending: 3, low: 0x80, high: 0x8f };
  if (byte >= 0xf1 && byte <= 0xf3) return { pending: 3, low: 0x80, high: 0xbf };
  return null;
}

function run(s: Utf8State, bytes: Uint8Array): Utf8State | null {
  let state: Utf8State | null = s;
  for (let i = 0; i < bytes.length && state; i++) state = step(state, bytes[i]);
  return state;
}

export interface PartialTokens {
  ids: number[];
  bytes: Uint8Array[];
  /** Per state (see stateKey), the partial tokens it rules out: worked out once, shared by every sequence. */
  banned: Map<string, Int32Array>;
}

const stateKey = (s: Utf8State) => `${s.pending}:${s.low}:${s.high}`;

export class Utf8Guard {
  private state: Utf8State = BETWEEN;

  constructor(private readonly partial: PartialTokens, private readonly bytesOf: (id: number) => Uint8Array) {}

  /** Tokens whose bytes are not whole well-formed UTF-8 (byte pieces, split characters). */
  static partialTokens(tokenizer: Tokenizer): PartialTokens {
    const out: PartialTokens = { ids: [], bytes: [], banned: new Map() };
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      const bytes = tokenizer.tokenToBytes(id, false);
      if (run(BETWEEN, bytes) === BETWEEN) continue;
      out.ids.push(id);
      out.bytes.push(bytes);
    }
    return out;
  }

  /** Clears the bits of tokens that would make the output ill-formed UTF-8. */
  restrict(mask: Uint32Array): void {
    for (const id of this.bannedNow()) mask[id >>> 5] &= ~(1 << (id & 31));
  }

  /** The partial tokens the current state rules out (there are a dozen states at most). */
  private bannedNow(): Int32Array {
    const key = stateKey(this.state);
    let banned = this.partial.banned.get(key);
    if (!banned) {
      const { ids, bytes } = this.partial;
      banned = Int32Array.from(ids.filter((_, i) => !run(this.state, bytes[i])));
      this.partial.banned.set(key, banned);
    }
    return banned;
  }

  accept(tokenId: number): void {
    this.state = run(this.state, this.bytesOf(tokenId)) ?? BETWEEN;
  }
}
