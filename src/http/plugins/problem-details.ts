// The one error handler: every failure leaves as an RFC 9457 problem document. Expected
// failures (AppError, validation, body parsing) say what is wrong; anything else is a 500
// whose body reveals nothing, while the log line carries the error and the request id. The
// handler cannot fail in turn: whatever was thrown, and whatever breaks while it is handled (the
// log, the problem's members), a problem document still goes out.

import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import fp from 'fastify-plugin';
import type { FastifyError, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify';
import { AppError, type FieldError } from '../../errors.ts';
import { toFieldErrors } from '../../domain/validation.ts';
import { failureKind } from '../../data/failures.ts';
import { limitExceededFrom } from '../../data/validation-failures.ts';
import { DeadlineExceeded } from '../../data/deadline.ts';
import {
  FieldErrorSchema,
  PROBLEM_MEDIA_TYPE,
  ProblemSchema,
  addProblemKind,
  problemJson,
  problemType,
  type Problem,
} from '../schemas/problem.ts';
import { outcomeUnknown } from '../../data/transactions.ts';
import { serializeThrown } from '../../logger.ts';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface ProblemDetailsOptions {
  retryAfterSeconds: number;
}

const PARTS: Record<string, string> = { body: 'body', querystring: 'query', params: 'params', headers: 'headers' };

/** Fastify's validation errors as field errors. */
export function fieldErrors(validation: FastifySchemaValidationError[], context: string | undefined): FieldError[] {
  return toFieldErrors(validation, PARTS[context ?? 'body'] ?? 'body');
}

/** Fastify's own 4xx errors, by code, as problem kinds. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad-request',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload-too-large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed-body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed-body',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported-media-type',
};

const internalError = (cause: unknown) =>
  new AppError(500, 'internal-error', 'Internal Server Error', { detail: 'An unexpected error occurred.', cause });

function toAppError(thrown: unknown, retryAfterSeconds: number): AppError {
  if (thrown instanceof AppError) return thrown;
  // JavaScript can throw anything: what is not an object carries nothing to translate.
  if (thrown === null || typeof thrown !== 'object') return internalError(thrown);
  // Any other object is read as Fastify's errors are, each member possibly missing.
  const error: Partial<FastifyError> = thrown;
  if (error.validation) return AppError.validation(fieldErrors(error.validation, error.validationContext));
  // A write MongoDB's validator refused for passing a declared maximum: the limit, not a bug. The
  // write paths check the limits they can reach first; this is the net behind them.
  const limit = limitExceededFrom(error);
  if (limit !== undefined) return limit;
  // Errors that reach here from MongoDB come from reads, or from writes that never began a
  // commit (the write path answers for those that did): nothing was written.
  if (error instanceof DeadlineExceeded) {
    return AppError.unavailable(
      retryAfterSeconds,
      'MongoDB did not answer within the time this service allows (REQUEST_DEADLINE_MS); ' +
        'nothing was written. Retry later.',
      error,
    );
  }
  const kind = failureKind(error);
  if (kind === 'unavailable' || kind === 'transient') return AppError.unavailable(retryAfterSeconds, undefined, error);
  if (kind === 'query-timeout') {
    return new AppError(503, 'query-timeout', 'Service Unavailable', {
      detail:
        'The query took longer than this service allows (QUERY_TIMEOUT_MS) and was stopped; ' +
        'narrow the filters or retry later.',
      headers: { 'retry-after': String(retryAfterSeconds) },
      cause: error,
    });
  }

  const status = error.statusCode ?? 500;
  if (Number.isInteger(status) && status >= 400 && status < 500) {
    // Fastify's client errors have safe messages; a JSON syntax error is one of them.
    const code = FASTIFY_CODES[error.code ?? ''] ?? (error instanceof SyntaxError ? 'malformed-body' : slug(status));
    const detail = code === 'malformed-body' ? `The body is not valid JSON: ${String(error.message)}` : error.message;
    return new AppError(status, code, STATUS_CODES[status] ?? 'Client Error', { detail });
  }
  return internalError(error);
}

const slug = (status: number) => (STATUS_CODES[status] ?? 'error').toLowerCase().replace(/[^a-z0-9]+/g, '-');

/** The members every problem has, for an answer that must go out whatever the error holds. */
function minimalProblem(request: FastifyRequest, status: number, code: string, title: string, detail: string): string {
  let instance: string | undefined;
  let requestId: string;
  try {
    instance = request.url.split('?')[0];
    requestId = request.id;
  } catch {
    requestId = randomUUID();
  }
  return problemJson({ code, title, status, detail, requestId, ...(instance !== undefined && { instance }) });
}

/**
 * Sends the problem as JSON text, not through the route's serializer: a serializer that fails
 * here would hand the error to Fastify's own handler, whose body is no problem document.
 */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: AppError): FastifyReply {
  const problem: Problem = {
    type: problemType(error.code),
    title: error.title,
    status: error.status,
    detail: error.message,
    instance: request.url.split('?')[0],
    requestId: request.id,
    ...error.extensions,
  };
  let body: string;
  try {
    body = JSON.stringify(problem);
  } catch {
    // An extension member JSON cannot write (a BigInt, a cycle): the problem without its extensions.
    body = minimalProblem(request, error.status, error.code, error.title, error.message);
  }
  return reply.code(error.status).headers(error.headers).type(PROBLEM_MEDIA_TYPE).send(body);
}

/** Logging from the error path: a logger that throws loses the line, never the answer. */
function logSafely(
  request: FastifyRequest,
  level: 'info' | 'warn' | 'error',
  fields: Record<string, unknown>,
  message: string,
): void {
  try {
    request.log[level](fields, message);
  } catch {
    // Nothing left to report it to.
  }
}

/**
 * The answer when handling an error failed itself: a 500 problem document built from nothing
 * that can fail, written by Fastify when it still can and straight to the socket otherwise.
 */
function lastResort(request: FastifyRequest, reply: FastifyReply, failure: unknown, original: unknown): void {
  logSafely(
    request,
    'error',
    { err: failure, original: serializeThrown(original) },
    'the error handler failed; answered 500',
  );
  const body = minimalProblem(request, 500, 'internal-error', 'Internal Server Error', 'An unexpected error occurred.');
  try {
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    reply.code(500).type(PROBLEM_MEDIA_TYPE).send(body);
  } catch {
    try {
      reply.raw.writeHead(500, {
        'content-type': `${PROBLEM_MEDIA_TYPE}; charset=utf-8`,
        'content-length': Buffer.byteLength(body),
      });
      reply.raw.end(body);
    } catch {
      reply.raw.destroy();
    }
  }
}

export default fp<ProblemDetailsOptions>(
  async (app, options) => {
    app.addSchema(FieldErrorSchema);
    app.addSchema(ProblemSchema);

    // Every write can end with its outcome unknown (src/data/transactions.ts): its 503 says so.
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const schema = route.schema as { response?: Record<string, unknown> } | undefined;
      if (schema?.response?.[503] === undefined || !methods.some((method) => WRITE_METHODS.has(method))) return;
      const responses = { ...schema.response };
      addProblemKind(
        responses,
        503,
        outcomeUnknown(options.retryAfterSeconds),
        'the write reached MongoDB but whether it was applied could not be confirmed within REQUEST_DEADLINE_MS ' +
          '(a failover, a frozen server). ' +
          'Retry with the same Idempotency-Key to get its one answer; without a key, read before writing again.',
      );
      schema.response = responses;
    });

    app.setErrorHandler((error: FastifyError, request, reply) => {
      try {
        const appError = toAppError(error, options.retryAfterSeconds);
        if (appError.status >= 500) {
          // The original error goes to the log, never to the client. A 503 is an expected state
          // (MongoDB away, contention): a warning, so an outage does not read as a flood of bugs.
          const level = appError.status === 503 ? 'warn' : 'error';
          logSafely(request, level, { err: appError.cause ?? error, code: appError.code }, 'request failed');
        } else {
          logSafely(request, 'info', { code: appError.code, detail: appError.message }, 'request refused');
        }
        return sendProblem(request, reply, appError);
      } catch (failure) {
        lastResort(request, reply, failure, error);
        return reply;
      }
    });

    app.setNotFoundHandler((request, reply) => {
      try {
        return sendProblem(
          request,
          reply,
          AppError.notFound(`Route ${request.method} ${request.url.split('?')[0]} not found.`),
        );
      } catch (failure) {
        lastResort(request, reply, failure, undefined);
        return reply;
      }
    });
  },
  { name: 'problem-details', fastify: '5.x' },
);
