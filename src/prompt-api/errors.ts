// The exceptions the Prompt API throws: DOMExceptions by name, and QuotaExceededError with
// `requested` and `quota` (whatwg/webidl#1465): the browser's own class where it has one, else a
// DOMException subclass of that name.

export function domError(name: 'AbortError' | 'InvalidStateError' | 'NotSupportedError' | 'NetworkError' | 'OperationError' | 'SyntaxError' | 'UnknownError' | 'NotAllowedError', message: string): DOMException {
  return new DOMException(message, name);
}

/** The spec's "TypeError DOMException" steps throw an ECMAScript TypeError (what browsers do). */
export function typeError(message: string): TypeError {
  return new TypeError(message);
}

export interface QuotaExceededInfo {
  requested: number;
  quota: number;
}

class PolyfilledQuotaExceededError extends DOMException {
  readonly requested: number;
  readonly quota: number;
  constructor(message: string, info: QuotaExceededInfo) {
    super(message, 'QuotaExceededError');
    this.requested = info.requested;
    this.quota = info.quota;
  }
}

type QuotaExceededErrorClass = new (message: string, info: QuotaExceededInfo) => DOMException & QuotaExceededInfo;

export function quotaExceeded(message: string, info: QuotaExceededInfo): DOMException & QuotaExceededInfo {
  const native = (globalThis as { QuotaExceededError?: QuotaExceededErrorClass }).QuotaExceededError;
  if (typeof native === 'function') {
    try {
      const e = new native(message, info);
      if (e.requested === info.requested) return e;
    } catch {
      // An older browser's QuotaExceededError takes no options: use ours.
    }
  }
  return new PolyfilledQuotaExceededError(message, info);
}
