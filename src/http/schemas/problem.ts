// The RFC 9457 problem document: the one error body of every route, and the helpers that
// document a route's error responses with it: one example per status, or one per kind of problem.
// Kinds with extension members have schemas of their own (problem-types.ts), named where they
// are documented; src/http/plugins/openapi.ts makes each route's examples its own.

import { Type, type Static } from 'typebox';
import { AppError } from '../../errors.ts';
import { problemSchemaOf } from './problem-types.ts';

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/** Problem types are URNs: stable identifiers that clients can switch on, never dereferenced. */
export const problemType = (code: string): string => `urn:storekeeper:problem:${code}`;

export const FieldErrorSchema = Type.Object(
  {
    in: Type.String({ description: 'Part of the request: body, query, params or headers.', examples: ['body'] }),
    pointer: Type.String({ description: 'JSON Pointer to the value inside that part.', examples: ['/price/amount'] }),
    message: Type.String({ examples: ['must be >= 0'] }),
  },
  { $id: 'FieldError', additionalProperties: false },
);

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URN identifying the kind of problem.', examples: [problemType('not-found')] }),
    title: Type.String({ description: 'Short summary of the kind of problem.' }),
    status: Type.Integer({ description: 'HTTP status code.', minimum: 400, maximum: 599 }),
    detail: Type.Optional(Type.String({ description: 'What went wrong in this occurrence.' })),
    instance: Type.Optional(Type.String({ description: 'Path of the request that failed.' })),
    requestId: Type.String({ description: 'Also in the X-Request-Id header and on every log line of the request.' }),
    errors: Type.Optional(Type.Array(Type.Ref('FieldError'), { description: 'Per-field errors of a 400.' })),
  },
  {
    $id: 'Problem',
    description: 'An RFC 9457 problem document (media type application/problem+json).',
    // Problems of some kinds carry extension members: see their schemas (InsufficientStockProblem...).
    additionalProperties: true,
  },
);

export type Problem = Static<typeof ProblemSchema>;

/**
 * A problem document as JSON text, from plain members only: for the answers written where no
 * serializer runs (the error path's last resort, refusals below the app).
 */
export function problemJson(problem: {
  code: string;
  title: string;
  status: number;
  detail: string;
  requestId: string;
  instance?: string;
  extensions?: Record<string, unknown>;
}): string {
  const { code, title, status, detail, requestId, instance, extensions } = problem;
  return JSON.stringify({
    type: problemType(code),
    title,
    status,
    detail,
    ...(instance !== undefined && { instance }),
    requestId,
    ...extensions,
  });
}

const statusText: Record<number, { code: string; title: string; description: string; detail: string }> = {
  400: {
    code: 'validation-failed',
    title: 'Validation Failed',
    description: 'The request is malformed or has invalid values.',
    detail: 'The request has 1 invalid value.',
  },
  401: {
    code: 'unauthenticated',
    title: 'Unauthorized',
    description: 'No API key, or one that is unknown, revoked or expired; see WWW-Authenticate.',
    detail: 'This route needs an API key: send Authorization: Bearer <key>.',
  },
  403: {
    code: 'insufficient-scope',
    title: 'Forbidden',
    description: 'The API key lacks a scope this request needs; `missingScopes` names them (InsufficientScopeProblem).',
    detail: 'This API key lacks the scope products:read.',
  },
  404: { code: 'not-found', title: 'Not Found', description: 'No such resource.', detail: 'No document with this id.' },
  412: {
    code: 'precondition-failed',
    title: 'Precondition Failed',
    description: 'If-Match did not match the current version.',
    detail: 'The document changed since it was read.',
  },
  413: {
    code: 'payload-too-large',
    title: 'Payload Too Large',
    description: 'The request body is larger than allowed.',
    detail: 'Request body is too large.',
  },
  415: {
    code: 'unsupported-media-type',
    title: 'Unsupported Media Type',
    description: 'The body is not in a media type this route accepts.',
    detail: 'Unsupported Media Type: text/plain',
  },
  429: {
    code: 'rate-limited',
    title: 'Too Many Requests',
    description:
      'The rate limit of the API key (or of the client IP) is used up; retry after Retry-After. ' +
      'Limits hold across instances, which share their counts every 250 ms: past the limit by at most one ' +
      "request per instance per exchange, and once by at most the limit again when a key's burst reaches " +
      'instances that had not served it in the last minute; while MongoDB does not answer, each instance limits ' +
      'alone.',
    detail: 'Rate limit of 1200 requests per minute exceeded; retry in 1 s.',
  },
  500: {
    code: 'internal-error',
    title: 'Internal Server Error',
    description: 'An unexpected failure; the log line with the request id has the details.',
    detail: 'An unexpected error occurred.',
  },
  503: {
    code: 'service-unavailable',
    title: 'Service Unavailable',
    description:
      'MongoDB is unreachable or did not answer within REQUEST_DEADLINE_MS; nothing was written. ' +
      'Retry after the time given in Retry-After.',
    detail: 'The database is unavailable. Retry later.',
  },
};

/**
 * Documents error responses of a route: each given status as a problem document, with an
 * example, and Retry-After on 503. Fastify serializes errors of these statuses with the schema.
 */
export function problemResponses(...statuses: (keyof typeof statusText)[]) {
  const responses: Record<number, unknown> = {};
  for (const status of statuses) {
    const text = statusText[status];
    if (text === undefined)
      throw new Error(`no generic problem for ${status}: document the route's own kinds with problemKinds`);
    responses[status] = {
      description: text.description,
      ...((status === 503 || status === 429) && {
        headers: { 'retry-after': { type: 'integer', description: 'Seconds to wait before retrying.' } },
      }),
      ...(status === 401 && {
        headers: {
          'www-authenticate': {
            type: 'string',
            description: 'The authentication scheme (Bearer) and, for a key that was refused, why.',
          },
        },
      }),
      content: {
        [PROBLEM_MEDIA_TYPE]: {
          schema: Type.Ref('Problem'),
          example: {
            type: problemType(text.code),
            title: text.title,
            status,
            detail: text.detail,
            requestId: 'a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
            // Stand-ins: each route's own are set from its schema and scopes (see plugins/openapi.ts).
            ...(status === 400 && {
              errors: [{ in: 'query', pointer: '/x', message: 'is not a parameter of this route' }],
            }),
            ...(status === 403 && { missingScopes: ['products:read'] }),
          },
        },
      },
    };
  }
  return responses;
}

/** One kind of problem a route may answer with a status, for its documentation. */
export interface ProblemKind {
  code: string;
  title: string;
  /** When it happens, and what its extension members say. */
  when: string;
  /** The example's detail and extension members. */
  detail: string;
  extensions?: Record<string, unknown>;
}

/**
 * The validation failure of a route, as a kind among others (its example's error is the route's
 * own: plugins/openapi.ts).
 */
export const validationKind = (when: string): ProblemKind => ({
  code: 'validation-failed',
  title: 'Validation Failed',
  when,
  detail: 'The request has 1 invalid value.',
  extensions: { errors: [{ in: 'query', pointer: '/x', message: 'is not a parameter of this route' }] },
});

/** A list cursor this service did not give out for the query (src/data/query.ts builds it). */
export const invalidCursorKind: ProblemKind = {
  code: 'invalid-cursor',
  title: 'Invalid Cursor',
  when:
    'the cursor is not one the list gave out for this query (malformed, altered, ' +
    'or from other filters or another sort); `errors` points at it.',
  detail: 'The cursor is malformed; use the `next` link of the previous page.',
  extensions: {
    errors: [
      {
        in: 'query',
        pointer: '/cursor',
        message: 'The cursor is malformed; use the `next` link of the previous page.',
      },
    ],
  },
};

/** A kind of problem documented by an error the code itself builds, so the example cannot drift. */
export function kindOf(error: AppError, when: string): ProblemKind {
  return { code: error.code, title: error.title, when, detail: error.message, extensions: error.extensions };
}

/** The AppError a function throws (for documentation examples built from the domain's rules). */
export function thrownBy(refuse: () => unknown): AppError {
  try {
    refuse();
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected the example to be refused');
}

/**
 * Documents a status whose problems come in several kinds (a route's 409s): each kind in the
 * description and as a named example, so clients see the type URNs to switch on.
 */
export function problemKinds(status: number, description: string, kinds: ProblemKind[]) {
  return {
    [status]: {
      description: [description, ...kinds.map((kind) => kindLine(kind.code, kind.when))].join('\n'),
      content: {
        [PROBLEM_MEDIA_TYPE]: {
          schema: Type.Ref('Problem'),
          examples: Object.fromEntries(
            kinds.map((kind) => [
              kind.code,
              {
                summary: kind.title,
                value: {
                  type: problemType(kind.code),
                  title: kind.title,
                  status,
                  detail: kind.detail,
                  requestId: 'a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
                  ...kind.extensions,
                },
              },
            ]),
          ),
        },
      },
    },
  };
}

/** One line of a response description: the kind's URN, its schema when it has one, and when it happens. */
function kindLine(code: string, when: string): string {
  const schema = problemSchemaOf(code);
  return `- \`${problemType(code)}\`${schema ? ` (${schema})` : ''}: ${when}`;
}

const example = (error: AppError, status: number) => ({
  type: problemType(error.code),
  title: error.title,
  status,
  detail: error.message,
  requestId: 'a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
});

type ResponseDoc = {
  description?: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema?: unknown; example?: unknown; examples?: Record<string, unknown> }>;
};

/** Adds a kind of problem to a documented status, keeping the kinds the route already lists. */
export function addProblemKind(
  responses: Record<string, unknown>,
  status: number,
  error: AppError,
  when: string,
): void {
  const kind = { summary: error.title, value: example(error, status) };
  const line = kindLine(error.code, when);
  const existing = responses[status] as ResponseDoc | undefined;
  const media = existing?.content?.[PROBLEM_MEDIA_TYPE];
  if (existing === undefined || media === undefined) {
    responses[status] = {
      description: line.slice(2),
      headers: error.headers['retry-after']
        ? { 'retry-after': { type: 'integer', description: 'Seconds to wait before retrying.' } }
        : undefined,
      content: { [PROBLEM_MEDIA_TYPE]: { schema: Type.Ref('Problem'), examples: { [error.code]: kind } } },
    };
    if ((responses[status] as ResponseDoc).headers === undefined) delete (responses[status] as ResponseDoc).headers;
    return;
  }
  const examples = { ...(media.examples ?? {}) };
  if (media.example !== undefined)
    examples[(media.example as { type?: string }).type?.split(':').pop() ?? 'example'] = { value: media.example };
  examples[error.code] = kind;
  const description = existing.description?.includes('\n- ')
    ? `${existing.description}\n${line}`
    : `${existing.description ?? ''}\n\nAlso:\n${line}`;
  responses[status] = {
    ...existing,
    description,
    ...(error.headers['retry-after'] && {
      headers: {
        ...existing.headers,
        'retry-after': { type: 'integer', description: 'Seconds to wait before retrying.' },
      },
    }),
    content: { ...existing.content, [PROBLEM_MEDIA_TYPE]: { schema: media.schema, examples } },
  };
}
