// storekeeper/client: a typed client of the HTTP API. The types are generated from the contract
// (./openapi.ts, `npm run client`) and openapi-fetch does the HTTP; this module adds what every
// caller would otherwise write around it: the API key, problem documents as typed errors
// (./problems.ts), the retry contract with one Idempotency-Key per POST (./retry.ts), the
// merge-patch media type on PATCH, cursor pages followed to their end, and reads by id that keep
// the last ETag and body so that an unchanged document costs a 304.

import createFetchClient, { type Client } from 'openapi-fetch';
import { LRUCache } from 'lru-cache';
import type { components, operations, paths } from './openapi.ts';
import { ProblemError } from './problems.ts';
import { retrying, type Fetch, type RetryOptions } from './retry.ts';

export type { components, operations, paths };
export {
  isProblem,
  ProblemError,
  type FailedOperation,
  type FieldError,
  type Problem,
  type ProblemCode,
  type ProblemErrorOf,
  type ProblemOf,
  type StorekeeperProblem,
} from './problems.ts';
export type { RetryOptions } from './retry.ts';

type Schemas = components['schemas'];
export type Product = Schemas['Product'];
export type ProductInput = Schemas['ProductInput'];
export type ProductPatch = Schemas['ProductPatch'];
export type Customer = Schemas['Customer'];
export type CustomerInput = Schemas['CustomerInput'];
export type CustomerPatch = Schemas['CustomerPatch'];
export type StockItem = Schemas['StockItem'];
export type StockItemInput = Schemas['StockItemInput'];
export type StockItemPatch = Schemas['StockItemPatch'];
export type Order = Schemas['Order'];
export type OrderPlacement = Schemas['OrderPlacement'];
export type AuditEvent = Schemas['AuditEvent'];
export type ApiKey = Schemas['ApiKey'];
export type BatchRequest = Schemas['BatchRequest'];
export type BatchResponse = Schemas['BatchResponse'];

export interface ClientOptions {
  /** Where the service listens, e.g. http://127.0.0.1:3000 (the paths of the contract are appended). */
  baseUrl: string;
  /** An API key (sk_...), sent as a bearer token on every request. */
  apiKey: string;
  /** The fetch that sends each attempt (default: globalThis.fetch). */
  fetch?: Fetch;
  /** Retries of 429 and 503 answers (and of 409 idempotency-in-progress); see RetryOptions. */
  retry?: RetryOptions;
  /** Sent as User-Agent, so that the service's logs name the caller. */
  userAgent?: string;
  /** How many documents getDocument keeps with their ETag, least recently used out first. Default 500. */
  documentCacheSize?: number;
}

/** The collections read by id with ETags (`GET /v1/{collection}/{id}` answering 304). */
export type DocumentCollection = {
  [P in keyof paths]: P extends `/v1/${infer C}/{id}`
    ? paths[P]['get'] extends { responses: { 304: unknown } }
      ? C
      : never
    : never;
}[keyof paths];

type DocumentPath<C extends string> = `/v1/${C}/{id}`;
type JsonOf<R> = R extends { content: { 'application/json': infer Body } } ? Body : never;

/** A document of a collection, as `GET /v1/{collection}/{id}` answers it. */
export type DocumentOf<C extends DocumentCollection> = JsonOf<paths[DocumentPath<C>]['get']['responses'][200]>;

/** What PUT takes for a collection (never for one that cannot be replaced: orders). */
export type ReplacementOf<C extends DocumentCollection> = paths[DocumentPath<C>]['put'] extends {
  requestBody: { content: { 'application/json': infer Body } };
}
  ? Body
  : never;

/** What PATCH takes for a collection: a JSON merge patch (never for orders). */
export type PatchOf<C extends DocumentCollection> = paths[DocumentPath<C>]['patch'] extends {
  requestBody: { content: { 'application/merge-patch+json': infer Body } };
}
  ? Body
  : never;

type PageAt<P extends keyof paths> = paths[P] extends { get: { responses: { 200: infer Ok } } } ? JsonOf<Ok> : never;

/** The paths whose GET answers a cursor page: `{ items, next }`. */
export type ListPath = {
  [P in keyof paths]: PageAt<P> extends { items: unknown[]; next: string | null } ? P : never;
}[keyof paths];

/** A page of a list. */
export type PageOf<P extends ListPath> = PageAt<P>;

/** An item of a list's pages. */
export type ItemOf<P extends ListPath> = PageAt<P>['items'][number];

/** The query of a list (filters, sort, fields, limit, count), the cursor aside: pages() follows it. */
export type ListQuery<P extends ListPath> = Omit<
  NonNullable<paths[P] extends { get: { parameters: { query?: infer Query } } } ? Query : never>,
  'cursor'
>;

export interface WriteOptions {
  /**
   * Write only if the document is still at this version (else a 412 precondition-failed): an
   * ETag ('"3"') or the document as read (its version). A write under If-Match is also one
   * the client may retry when its outcome is unknown.
   */
  ifMatch?: string | { version: number };
}

/** The names of the headers the contract declares, and what they hold. */
export type DeclaredHeaders = components['headers'];

/** The typed methods of openapi-fetch over every path of the contract, and the layer above them. */
export interface StorekeeperClient extends Pick<Client<paths>, 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'> {
  /** A document by id, revalidated with the ETag of the last read when there was one (a 304 costs no body). */
  getDocument<C extends DocumentCollection>(collection: C, id: string): Promise<DocumentOf<C>>;
  /** PUT: replaces a document (its answer: the document written). */
  replaceDocument<C extends DocumentCollection>(
    collection: C,
    id: string,
    document: ReplacementOf<C>,
    options?: WriteOptions,
  ): Promise<DocumentOf<C>>;
  /** PATCH with a JSON merge patch (its answer: the document written). */
  patchDocument<C extends DocumentCollection>(
    collection: C,
    id: string,
    patch: PatchOf<C>,
    options?: WriteOptions,
  ): Promise<DocumentOf<C>>;
  /** DELETE: undefined when deleted, the document when the service archived it instead (a product orders or stock items refer to). */
  deleteDocument<C extends DocumentCollection>(
    collection: C,
    id: string,
    options?: WriteOptions,
  ): Promise<DocumentOf<C> | undefined>;
  /** Every page of a list, following `next` until the last one. */
  pages<P extends ListPath>(path: P, query?: ListQuery<P>): AsyncGenerator<PageOf<P>, void, undefined>;
  /** Every item of a list, page after page. */
  all<P extends ListPath>(path: P, query?: ListQuery<P>): AsyncGenerator<ItemOf<P>, void, undefined>;
}

/** Any result of the raw methods: the data of a success, or the error of a failure, with the response. */
type RawResult =
  { data?: unknown; error?: undefined; response: Response } | { data?: undefined; error: unknown; response: Response };

/** The data of a result's success branch. */
type DataOf<Result> = Result extends { data?: infer Data; error?: undefined } ? Data : never;

/**
 * The data of a raw call, or its problem thrown as a ProblemError:
 * `const order = await unwrap(client.POST('/v1/orders', { body }))`.
 */
export async function unwrap<Result extends RawResult>(call: Promise<Result> | Result): Promise<DataOf<Result>> {
  const result = await call;
  if (result.error !== undefined || !result.response.ok) throw ProblemError.of(result.error, result.response);
  return result.data as DataOf<Result>;
}

/** A declared header of an answer, typed as the contract types it (numbers as numbers). */
export function header<Name extends keyof DeclaredHeaders>(
  response: Response,
  name: Name,
): DeclaredHeaders[Name] | undefined {
  const value = response.headers.get(name);
  if (value === null) return undefined;
  return (name in NUMERIC_HEADERS ? Number(value) : value) as DeclaredHeaders[Name];
}

/** The declared headers whose values are numbers: the compiler holds this list to the contract. */
const NUMERIC_HEADERS: {
  [Name in keyof DeclaredHeaders as DeclaredHeaders[Name] extends number ? Name : never]: true;
} = { 'RateLimit-Limit': true, 'RateLimit-Remaining': true, 'RateLimit-Reset': true, 'Retry-After': true };

const etagOf = (ifMatch: string | { version: number }) =>
  typeof ifMatch === 'string' ? ifMatch : `"${ifMatch.version}"`;

/**
 * A raw method whose error is a ProblemError, which carries the members the contract types the
 * error with. A 304 (a GET with the caller's own If-None-Match) is no problem: it stays as
 * openapi-fetch gives it; getDocument is the read that answers a 304 with the body.
 */
function withProblemErrors<Call extends (...args: never[]) => Promise<RawResult>>(call: Call): Call {
  return (async (...args: Parameters<Call>) => {
    const result = await call(...args);
    if (result.response.status < 400) return result;
    return { ...result, error: ProblemError.of(result.error, result.response) };
  }) as Call;
}

export function createClient(options: ClientOptions): StorekeeperClient {
  const send = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const sendWithRetries = retrying(send, options.retry);
  const raw = createFetchClient<paths>({
    baseUrl: options.baseUrl,
    fetch: (request) => {
      request.headers.set('authorization', `Bearer ${options.apiKey}`);
      if (options.userAgent !== undefined) request.headers.set('user-agent', options.userAgent);
      // openapi-fetch labels every body JSON; PATCH takes a merge patch (RFC 7396) and nothing else.
      if (request.method === 'PATCH' && request.headers.get('content-type') === 'application/json')
        request.headers.set('content-type', 'application/merge-patch+json');
      return sendWithRetries(request);
    },
  });
  // The helpers below build their paths from a collection name: openapi-fetch's types want a
  // literal path, so they call it through this untyped view and type their answers themselves.
  const call = raw.request as unknown as (
    method: string,
    path: string,
    init?: {
      params?: { path?: Record<string, string>; query?: object; header?: Record<string, string> };
      body?: unknown;
      querySerializer?: () => string;
    },
  ) => Promise<RawResult>;

  const documents = new LRUCache<string, { etag: string; body: unknown }>({ max: options.documentCacheSize ?? 500 });
  const base = new URL(options.baseUrl);

  const getDocument = async (collection: string, id: string) => {
    const key = `${collection}/${id}`;
    const cached = documents.get(key);
    const result = await call('GET', `/v1/${collection}/{id}`, {
      params: { path: { id }, ...(cached && { header: { 'if-none-match': cached.etag } }) },
    });
    if (result.response.status === 304 && cached) return cached.body;
    if (result.response.status === 404) documents.delete(key);
    const body = await unwrap(result);
    const etag = result.response.headers.get('etag');
    if (etag !== null) documents.set(key, { etag, body });
    return body;
  };

  const write = async (method: string, collection: string, id: string, body: unknown, writeOptions: WriteOptions) => {
    // Whatever the answer, what was kept may be stale now: the next read revalidates from scratch.
    documents.delete(`${collection}/${id}`);
    return unwrap(
      call(method, `/v1/${collection}/{id}`, {
        params: {
          path: { id },
          ...(writeOptions.ifMatch !== undefined && { header: { 'if-match': etagOf(writeOptions.ifMatch) } }),
        },
        ...(body !== undefined && { body }),
      }),
    );
  };

  /** The query of a `next` link, refused unless it is the same list on the same service. */
  const nextQuery = (path: string, next: string) => {
    const url = new URL(next, base);
    if (url.origin !== base.origin || url.pathname !== path)
      throw new Error(`storekeeper/client: refusing to follow a next link off ${path} on ${base.origin}: ${next}`);
    return url.search.slice(1);
  };

  async function* pages(path: string, query: object = {}): AsyncGenerator<unknown, void, undefined> {
    let page = (await unwrap(call('GET', path, { params: { query } }))) as { next: string | null };
    yield page;
    while (page.next !== null) {
      const search = nextQuery(path, page.next);
      page = (await unwrap(call('GET', path, { querySerializer: () => search }))) as { next: string | null };
      yield page;
    }
  }

  async function* all(path: string, query: object = {}): AsyncGenerator<unknown, void, undefined> {
    for await (const page of pages(path, query)) yield* (page as { items: unknown[] }).items;
  }

  return {
    GET: withProblemErrors(raw.GET),
    POST: withProblemErrors(raw.POST),
    PUT: withProblemErrors(raw.PUT),
    PATCH: withProblemErrors(raw.PATCH),
    DELETE: withProblemErrors(raw.DELETE),
    getDocument,
    replaceDocument: (collection, id, document, writeOptions = {}) =>
      write('PUT', collection, id, document, writeOptions),
    patchDocument: (collection, id, patch, writeOptions = {}) => write('PATCH', collection, id, patch, writeOptions),
    deleteDocument: (collection, id, writeOptions = {}) => write('DELETE', collection, id, undefined, writeOptions),
    pages,
    all,
  } as StorekeeperClient;
}
