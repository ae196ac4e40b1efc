// Incremental detokenization for streamed generation. A token may end in the middle of a
// UTF-8 character (byte-fallback tokens, byte-level BPE pieces); such a partial character is
// held back until the bytes that complete it arrive, so emitted text never contains half of one.

export interface PieceSource {
  /** The bytes a token stands for, as llama.cpp's token_to_piece (no leading-space strip). */
  tokenToBytes(id: number, special?: boolean): Uint8Array;
}

export interface StreamingDecoderOptions {
  /** Render control tokens (e.g. `<|eot_id|>`) as their text; default false: they add nothing. */
  special?: boolean;
}

export class StreamingDecoder {
  // ignoreBOM: a U+FEFF the model generates is text, not a byte-order mark to drop.
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private readonly special: boolean;
  private emitted = '';

  constructor(private readonly source: PieceSource, options: StreamingDecoderOptions = {}) {
    this.special = options.special ?? false;
  }

  /** Adds one token; returns the text completed by it (possibly empty). */
  push(id: number): string {
    return this.pushBytes(this.source.tokenToBytes(id, this.special));
  }

  /** Adds raw bytes; returns the complete characters they finish. */
  pushBytes(bytes: Uint8Array): string {
    const text = this.decoder.decode(bytes, { stream: true });
    this.emitted += text;
    return text;
  }

  /** Ends the stream: bytes of a character that never completed come out as U+FFFD. */
  flush(): string {
    const text = this.decoder.decode();
    this.emitted += text;
    return text;
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.emitted;
  }
}
