// A single-consumer queue that is an async iterable: the engine pushes events as steps finish,
// the caller reads them with for await. Leaving the loop early (break, throw) cancels.

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  private closed = false;
  private failure: { error: unknown } | null = null;

  /** @param onCancel called once if the consumer stops reading before the queue closes. */
  constructor(private readonly onCancel: () => void = () => {}) {}

  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  /** No more items: the consumer finishes after reading what is queued. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiter && !this.items.length) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: undefined, done: true });
    }
  }

  /** Ends the stream with an error, thrown to the consumer after what is queued. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(error);
    } else {
      this.failure = { error };
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length) return Promise.resolve({ value: this.items.shift() as T, done: false });
        if (this.failure) {
          const { error } = this.failure;
          this.failure = null;
          return Promise.reject(error);
        }
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
      return: () => {
        if (!this.closed) {
          this.closed = true;
          this.items.length = 0;
          this.onCancel();
        }
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
