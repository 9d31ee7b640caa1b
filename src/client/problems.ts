// Problem documents (RFC 9457, application/problem+json) as errors a caller can switch on: every
// kind the contract names has a code (the end of its type URN), and the kinds with members of
// their own (shortages, currentStatus, missingScopes...) are typed by their contract schemas, so
// `isProblem(error, 'insufficient-stock')` narrows to an error whose `shortages` is typed and
// whose misspelt members do not compile.

import type { components, ProblemCode } from './openapi.ts';

export type { ProblemCode };

type Schemas = components['schemas'];

const URN_PREFIX = 'urn:storekeeper:problem:';

/**
 * T without its index signature. Problem documents are open (additionalProperties) and the
 * generated types say so with `[key: string]: unknown`, which would let any misspelt member
 * compile; a caller reads only the members the contract names.
 */
type Declared<T> = { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };

/** One invalid value of a 400 or 409: where (`in`, a JSON `pointer`) and what is wrong with it. */
export type FieldError = Schemas['FieldError'];

/** The batch operation that failed, on any problem a batch answers. */
export type FailedOperation = Schemas['FailedOperation'];

/** The members every problem document has (type, title, status, detail, requestId...). */
export type Problem = Declared<Schemas['Problem']> & { failedOperation?: FailedOperation };

type CodeOf<S> = S extends { type: `${typeof URN_PREFIX}${infer Code}` } ? Code : never;

/** The kinds of problem with a schema of their own in the contract, by code. */
type ProblemsWithMembers = { [K in keyof Schemas as CodeOf<Schemas[K]>]: Declared<Schemas[K]> };

/** The document of one kind of problem: its schema when it has members of its own, else the base. */
export type ProblemOf<Code extends ProblemCode> = (Code extends keyof ProblemsWithMembers
  ? ProblemsWithMembers[Code]
  : Declared<Schemas['Problem']> & { type: `${typeof URN_PREFIX}${Code}` }) & { failedOperation?: FailedOperation };

/** Every problem document the contract names, discriminated by `type`. */
export type StorekeeperProblem = { [Code in ProblemCode]: ProblemOf<Code> }[ProblemCode];

/** A ProblemError known to be of one kind: its members are those of the kind's schema. */
export type ProblemErrorOf<Code extends ProblemCode> = ProblemError & ProblemOf<Code>;

/** Members of the error itself, which a problem document's members of the same name must not hide. */
const ERROR_MEMBERS = new Set(['name', 'message', 'stack', 'cause', 'problem', 'headers', 'code']);

/**
 * A problem document as an Error. It carries every member of the document itself (so it is what
 * the contract types a raw call's `error` as), the answer's headers (Retry-After, X-Request-Id),
 * and narrows by kind with isProblem.
 */
export class ProblemError extends Error {
  declare readonly status: number;
  /** The kind's URN, urn:storekeeper:problem:<code>; about:blank for an answer that was no problem document. */
  declare readonly type: string;
  declare readonly title: string;
  declare readonly detail?: string;
  declare readonly instance?: string;
  declare readonly requestId: string;
  /** The document as the service sent it. */
  readonly problem: Problem;
  readonly headers: Headers;

  constructor(problem: Problem, headers: Headers = new Headers()) {
    super(problem.detail ?? problem.title);
    this.name = 'ProblemError';
    this.problem = problem;
    this.headers = headers;
    for (const [member, value] of Object.entries(problem))
      if (!ERROR_MEMBERS.has(member)) Object.defineProperty(this, member, { value, enumerable: true });
  }

  /** The problem code, the end of the type URN (undefined for a type that is not storekeeper's). */
  get code(): string | undefined {
    return this.type.startsWith(URN_PREFIX) ? this.type.slice(URN_PREFIX.length) : undefined;
  }

  /**
   * The error of an answer that is not a success: its problem document, or, for an answer that
   * carries none (a proxy's 502 page), one made of its status (`about:blank`, as RFC 9457 says).
   */
  static of(body: unknown, response: Response): ProblemError {
    if (isProblemDocument(body)) return new ProblemError(body, response.headers);
    return new ProblemError(
      {
        type: 'about:blank',
        title: response.statusText || `HTTP ${response.status}`,
        status: response.status,
        requestId: response.headers.get('x-request-id') ?? '',
        ...(typeof body === 'string' && body !== '' && { detail: body.slice(0, 1000) }),
      },
      response.headers,
    );
  }
}

function isProblemDocument(body: unknown): body is Problem {
  return (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as Partial<Problem>).type === 'string' &&
    typeof (body as Partial<Problem>).status === 'number' &&
    typeof (body as Partial<Problem>).title === 'string'
  );
}

/** Whether `error` is a problem (of kind `code`, when given), narrowing it to that kind's members. */
export function isProblem<Code extends ProblemCode>(error: unknown, code: Code): error is ProblemErrorOf<Code>;
export function isProblem(error: unknown): error is ProblemError;
export function isProblem(error: unknown, code?: ProblemCode): boolean {
  return error instanceof ProblemError && (code === undefined || error.type === `${URN_PREFIX}${code}`);
}

/** The problem code of an answer's body, if it is a problem document of this service. */
export function problemCodeOf(body: unknown): string | undefined {
  return isProblemDocument(body) && body.type.startsWith(URN_PREFIX) ? body.type.slice(URN_PREFIX.length) : undefined;
}
