// Server-sent events as the OpenAI streaming endpoints send them: one `data: {json}\n\n` event per
// chunk, then `data: [DONE]\n\n`. An error raised once the stream has begun (the status line is
// gone by then) becomes a last `data: {"error": ...}` event, which OpenAI's clients throw.
import { ApiError } from './errors.js';

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
};

export interface EventStreamOptions {
  /** Called once if the reader cancels the stream (the client went away) before it ended. */
  onCancel?: () => void;
  /** Called with an error raised while streaming, before it is sent as the last event. */
  onError?: (error: ApiError) => void;
}

/** The chunks of `events` as a byte stream of SSE events, read one chunk per pull. */
export function sseStream(events: AsyncIterable<unknown>, options: EventStreamOptions = {}): ReadableStream<Uint8Array> {
  const iterator = events[Symbol.asyncIterator]();
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<unknown>;
      try {
        next = await iterator.next();
      } catch (e) {
        if (cancelled) return;
        const error = ApiError.from(e);
        options.onError?.(error);
        controller.enqueue(sseEvent(error.toJSON()));
        controller.close();
        return;
      }
      // A cancel while the chunk was awaited already closed the stream.
      if (cancelled) return;
      if (next.done) {
        controller.enqueue(sseData('[DONE]'));
        controller.close();
      } else {
        controller.enqueue(sseEvent(next.value));
      }
    },
    cancel() {
      cancelled = true;
      options.onCancel?.();
      // Not awaited: a generator busy awaiting its next chunk returns only after that chunk.
      iterator.return?.().catch(() => {});
    },
  });
}

/** One SSE event carrying `value` as JSON. */
export function sseEvent(value: unknown): Uint8Array {
  return sseData(JSON.stringify(value));
}

const encoder = new TextEncoder();

function sseData(data: string): Uint8Array {
  return encoder.encode(`data: ${data}\n\n`);
}
