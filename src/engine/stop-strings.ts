// Stop strings over streamed text. Text that could be the start of a stop string is held back
// until the next tokens show whether it is (then generation stops before it) or is not (then it
// is released), so a stop string split across tokens is never emitted, even in part.

export interface StopCheck {
  /** Text safe to emit now. */
  text: string;
  /** Whether a stop string was found (`text` ends just before it). */
  stopped: boolean;
}

export class StopStringMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds newly decoded text. */
  push(piece: string): StopCheck {
    const text = this.held + piece;
    let cut = -1;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.held = '';
      return { text: text.slice(0, cut), stopped: true };
    }
    const keep = this.longestStopPrefixSuffix(text);
    this.held = text.slice(text.length - keep);
    return { text: text.slice(0, text.length - keep), stopped: false };
  }

  /** Ends the stream: what was held back is not a stop string after all. */
  flush(): string {
    const text = this.held;
    this.held = '';
    return text;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private longestStopPrefixSuffix(text: string): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > best; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
