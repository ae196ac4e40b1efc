// Errors shaped like the OpenAI API's: { error: { message, type, param, code } } with an HTTP
// status, so the server, the Service Worker and in-page callers report a bad request the same way.

export type ApiErrorType = 'invalid_request_error' | 'not_found_error' | 'server_error' | 'engine_unavailable' | 'rate_limit_error';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: ApiErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Seconds a client should wait before trying again (the Retry-After header), for 429 and 503. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  /** A request field that is missing, of the wrong type or out of range (HTTP 400). */
  static invalid(param: string | null, message: string, code: string | null = null): ApiError {
    return new ApiError(message, 400, 'invalid_request_error', param, code);
  }

  static modelNotFound(model: string, loaded: string | null): ApiError {
    const have = loaded ? `; this engine serves "${loaded}"` : '; no model is loaded';
    return new ApiError(`The model "${model}" does not exist${have}`, 404, 'not_found_error', 'model', 'model_not_found');
  }

  static notLoaded(): ApiError {
    return new ApiError('No model is loaded: call reload(model) first', 503, 'engine_unavailable', null, 'model_not_loaded');
  }

  /** The engine has as many sequences as it queues (HTTP 429); running requests are unaffected. */
  static queueFull(queued: number, asked: number, limit: number): ApiError {
    return new ApiError(`The engine is busy: ${queued} sequences are queued or running and this request adds ${asked}; at most ${limit} are allowed. Try again shortly.`,
      429, 'rate_limit_error', null, 'queue_full', 1);
  }

  /** A session id the engine does not know (never created, destroyed, or lost with an unload): HTTP 404. */
  static sessionNotFound(id: string): ApiError {
    return new ApiError(`No session "${id}": it was never created, was destroyed, or went with the model`, 404, 'not_found_error', 'session_id', 'session_not_found');
  }

  /** As many sessions are open as the engine allows (maxSessions): HTTP 429. */
  static tooManySessions(limit: number): ApiError {
    return new ApiError(`${limit} sessions are open, the most this engine allows (maxSessions): destroy one first`, 429, 'rate_limit_error', null, 'too_many_sessions');
  }

  /** The engine cannot serve (its GPU failed and could not be recovered): HTTP 503. */
  static unavailable(reason: string): ApiError {
    return new ApiError(`The engine cannot serve: ${reason}`, 503, 'engine_unavailable', null, 'engine_failed');
  }

  /** Generation failed on the engine's side (a GPU error): HTTP 500, not the request's fault. */
  static generationFailed(reason: string): ApiError {
    return new ApiError(`Generation failed on the server: ${reason}`, 500, 'server_error', null, 'generation_failed');
  }

  /** Anything else becomes a server error that keeps the original message. */
  static from(e: unknown): ApiError {
    if (e instanceof ApiError) return e;
    const message = e instanceof Error ? e.message : String(e);
    return new ApiError(message, 500, 'server_error');
  }
}
