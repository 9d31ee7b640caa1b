// The one error type for expected failures. Each carries a stable code, the HTTP status it
// maps to and a message safe to show a client; the HTTP layer turns it into a problem document.

export interface FieldError {
  /** Where the value was: body, query, params or headers. */
  in: string;
  /** JSON Pointer to the offending value inside that part, '' for the whole part. */
  pointer: string;
  message: string;
}

export interface AppErrorOptions {
  detail?: string;
  /** Extra members of the problem document (RFC 9457 extension members). */
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    options: AppErrorOptions = {},
  ) {
    super(options.detail ?? title, { cause: options.cause });
    this.name = 'AppError';
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }

  static badRequest(detail: string, errors?: FieldError[]): AppError {
    return new AppError(400, 'bad-request', 'Bad Request', { detail, extensions: errors ? { errors } : {} });
  }

  static validation(errors: FieldError[]): AppError {
    return new AppError(400, 'validation-failed', 'Validation Failed', {
      detail: `The request has ${errors.length} invalid value${errors.length === 1 ? '' : 's'}.`,
      extensions: { errors },
    });
  }

  static notFound(detail: string): AppError {
    return new AppError(404, 'not-found', 'Not Found', { detail });
  }

  /** A conditional request whose condition does not hold (If-Match), or cannot be read. */
  static preconditionFailed(detail: string): AppError {
    return new AppError(412, 'precondition-failed', 'Precondition Failed', { detail });
  }

  /** A body in a media type (or charset) the route does not take, or a body where none is taken. */
  static unsupportedMediaType(detail: string): AppError {
    return new AppError(415, 'unsupported-media-type', 'Unsupported Media Type', { detail });
  }

  static unavailable(
    retryAfterSeconds: number,
    detail = 'The database is unavailable. Retry later.',
    cause?: unknown,
  ): AppError {
    return new AppError(503, 'service-unavailable', 'Service Unavailable', {
      detail,
      headers: { 'retry-after': String(retryAfterSeconds) },
      cause,
    });
  }
}

/** The message of anything thrown (JavaScript can throw any value). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
