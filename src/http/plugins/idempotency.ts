// Idempotency-Key on every POST route: the first request with a key runs and its answer is stored;
// a retry with the same key and body gets that answer again (Idempotency-Replayed: true) without
// running the handler; a retry while the first still runs waits for it. Applies to every POST
// route registered after this plugin, so new routes (batch included) get it without opting in.

import { createHash } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { Type } from 'typebox';
import { AppError } from '../../errors.ts';
import { IdempotencyStore, type IdempotencyRecord } from '../../data/idempotency.ts';
import { addRouteHook } from './route-hooks.ts';
import { PROBLEM_MEDIA_TYPE, problemType } from '../schemas/problem.ts';

export interface IdempotencyOptions {
  ttlHours: number;
  /** How long a retry waits for the first request with its key before answering 409. */
  waitMs?: number;
  pollMs?: number;
}

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const REPLAYED_HEADER = 'idempotency-replayed';
const KEY_PATTERN = '^[\\x21-\\x7E]{1,255}$';
const WELL_FORMED_KEY = new RegExp(KEY_PATTERN);
/** The headers a replay needs; the rest (request id, dates) belong to the replaying request. */
const STORED_HEADERS = ['content-type', 'location', 'etag'] as const;

export const IdempotencyKeyHeader = Type.String({
  pattern: KEY_PATTERN,
  minLength: 1,
  maxLength: 255,
  description:
    'Makes the request safe to retry: the first request with a key runs, and a retry with the same key and body gets the same ' +
    'answer again (with Idempotency-Replayed: true) without running again, for IDEMPOTENCY_TTL_HOURS. 1-255 characters of visible ASCII. ' +
    'A retry while the first still runs waits for it; the same key with another body is a 422.',
  examples: ['5f0c8a2e-2b7d-4c1e-9a57-3d4b1f6e8c90'],
});

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the route ignores Idempotency-Key (set for every POST route otherwise). */
    idempotency?: boolean;
  }
  interface FastifyRequest {
    idempotencyClaim?: { scope: string; fingerprint: string; settled: boolean };
  }
}

export const keyReused = () =>
  new AppError(422, 'idempotency-key-reused', 'Idempotency Key Reused', {
    detail: 'This Idempotency-Key was used with another request body or URL; use a new key for a new request.',
  });

export const inProgress = () =>
  new AppError(409, 'idempotency-in-progress', 'Idempotency Key In Progress', {
    detail: 'A request with this Idempotency-Key is still being handled; retry after the time given in Retry-After.',
    headers: { 'retry-after': '1' },
  });

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** JSON with object keys sorted at every level, so that key order does not change a fingerprint. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return '';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

/**
 * Answers that say something about the request are replayed; those that say the server or the
 * moment was wrong (5xx, 408, 425, 429) are not stored, so a retry runs the work again.
 */
const isReplayable = (status: number) => status >= 200 && status < 500 && ![408, 425, 429].includes(status);

const example = (error: AppError, status: number) => ({
  type: problemType(error.code),
  title: error.title,
  status,
  detail: error.message,
  requestId: 'a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
});

type ResponseDoc = { description?: string; headers?: Record<string, unknown>; content?: Record<string, { schema?: unknown; example?: unknown; examples?: Record<string, unknown> }> };

/** Adds a kind of problem to a documented status, keeping the kinds the route already lists. */
function addProblemKind(responses: Record<string, unknown>, status: number, error: AppError, when: string): void {
  const kind = { summary: error.title, value: example(error, status) };
  const line = `- \`${problemType(error.code)}\`: ${when}`;
  const existing = responses[status] as ResponseDoc | undefined;
  const media = existing?.content?.[PROBLEM_MEDIA_TYPE];
  if (existing === undefined || media === undefined) {
    responses[status] = {
      description: line.slice(2),
      headers: error.headers['retry-after'] ? { 'retry-after': { type: 'integer', description: 'Seconds to wait before retrying.' } } : undefined,
      content: { [PROBLEM_MEDIA_TYPE]: { schema: Type.Ref('Problem'), examples: { [error.code]: kind } } },
    };
    if ((responses[status] as ResponseDoc).headers === undefined) delete (responses[status] as ResponseDoc).headers;
    return;
  }
  const examples = { ...(media.examples ?? {}) };
  if (media.example !== undefined) examples[(media.example as { type?: string }).type?.split(':').pop() ?? 'example'] = { value: media.example };
  examples[error.code] = kind;
  const description = existing.description?.includes('\n- ') ? `${existing.description}\n${line}` : `${existing.description ?? ''}\n\nAlso:\n${line}`;
  responses[status] = {
    ...existing,
    description,
    ...(error.headers['retry-after'] && {
      headers: { ...existing.headers, 'retry-after': { type: 'integer', description: 'Seconds to wait before retrying (idempotency-in-progress).' } },
    }),
    content: { ...existing.content, [PROBLEM_MEDIA_TYPE]: { schema: media.schema, examples } },
  };
}

/** The route's schema, documenting the header and the answers it adds. */
function documentRoute(route: RouteOptions): void {
  const schema = (route.schema ??= {}) as Record<string, unknown>;
  const headers = schema.headers as { type?: string; properties?: Record<string, unknown> } | undefined;
  if (headers === undefined) {
    schema.headers = Type.Object({ [IDEMPOTENCY_KEY_HEADER]: Type.Optional(IdempotencyKeyHeader) });
  } else if (headers.properties !== undefined) {
    schema.headers = { ...headers, properties: { ...headers.properties, [IDEMPOTENCY_KEY_HEADER]: IdempotencyKeyHeader } };
  }
  const responses = { ...((schema.response ?? {}) as Record<string, unknown>) };
  addProblemKind(responses, 409, inProgress(), 'a request with the same Idempotency-Key is still running after a few seconds of waiting for it; retry after Retry-After.');
  addProblemKind(responses, 422, keyReused(), 'the Idempotency-Key was used before with another body or URL; nothing was done.');
  schema.response = responses;
}

function storedHeaders(reply: FastifyReply): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    const value = reply.getHeader(name);
    if (value !== undefined) headers[name] = String(value);
  }
  return headers;
}

function replay(reply: FastifyReply, record: IdempotencyRecord): FastifyReply {
  return reply
    .code(record.status!)
    .headers(record.headers ?? {})
    .header(REPLAYED_HEADER, 'true')
    .send(record.body ?? null);
}

export default fp<IdempotencyOptions>(
  async (app, options) => {
    const waitMs = options.waitMs ?? 5000;
    const pollMs = options.pollMs ?? 50;
    const store = new IdempotencyStore(app.db.connection, options.ttlHours * 3_600_000);
    app.decorateRequest('idempotencyClaim', undefined);

    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      if (!methods.includes('POST') || route.config?.idempotency === false) return;
      // Hidden routes answer before any work is done (405s): nothing to make idempotent.
      if ((route.schema as { hide?: boolean } | undefined)?.hide === true) return;
      route.config = { ...route.config, idempotency: true };
      documentRoute(route);
      // Before the route's own preValidation and its validation, so that a request refused as
      // invalid is answered the same way on retry.
      addRouteHook(route, 'preValidation', claimOrReplay, true);
      addRouteHook(route, 'onSend', settle);
      addRouteHook(route, 'onResponse', giveUp);
    });

    async function claimOrReplay(request: FastifyRequest, reply: FastifyReply) {
      const key = request.headers[IDEMPOTENCY_KEY_HEADER];
      if (key === undefined) return;
      if (typeof key !== 'string' || !WELL_FORMED_KEY.test(key)) {
        throw AppError.validation([{ in: 'headers', pointer: `/${IDEMPOTENCY_KEY_HEADER}`, message: 'must be 1-255 characters of visible ASCII' }]);
      }
      // The scope is the route, not the URL: one key names one operation. The API key joins the
      // scope, so that clients cannot see, or block, each other's answers.
      const scope = sha256(`${request.principal?.keyId ?? '-'}\n${request.method}\n${request.routeOptions.url}\n${key}`);
      const fingerprint = sha256(`${request.method}\n${request.url}\n${canonicalJson(request.body)}`);

      const deadline = Date.now() + waitMs;
      for (;;) {
        const claim = await store.claim(scope, fingerprint);
        if (claim.claimed) {
          request.idempotencyClaim = { scope, fingerprint, settled: false };
          return;
        }
        let record: IdempotencyRecord | null = claim.record;
        if (record.fingerprint !== fingerprint) throw keyReused();
        // The first request is still running: waiting for its answer is what a retrying client wants.
        while (record !== null && record.state === 'running' && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, pollMs));
          record = await store.find(scope);
        }
        if (record === null) continue; // released after a failure: this request runs the work
        if (record.fingerprint !== fingerprint) throw keyReused();
        if (record.state === 'running') throw inProgress();
        request.log.info({ status: record.status }, 'idempotent request replayed');
        return replay(reply, record);
      }
    }

    // onSend runs before the answer leaves, so a retry that arrives after it sees the record done.
    async function settle(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
      const claim = request.idempotencyClaim;
      if (claim === undefined || claim.settled) return payload;
      claim.settled = true;
      const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload == null ? undefined : null;
      try {
        if (!isReplayable(reply.statusCode) || body === null) {
          await store.release(claim.scope, claim.fingerprint);
        } else {
          await store.complete(claim.scope, claim.fingerprint, { status: reply.statusCode, headers: storedHeaders(reply), body });
        }
      } catch (error) {
        // The answer still goes out; the record is released so a retry is not held up until it expires.
        request.log.error({ err: error }, 'could not store the idempotent answer');
        await store.release(claim.scope, claim.fingerprint).catch(() => undefined);
      }
      return payload;
    }

    // A request that ended without sending (aborted, or failed past onSend) gives its claim up.
    async function giveUp(request: FastifyRequest) {
      const claim = request.idempotencyClaim;
      if (claim === undefined || claim.settled) return;
      claim.settled = true;
      await store.release(claim.scope, claim.fingerprint).catch((error: unknown) => request.log.error({ err: error }, 'could not release an idempotency key'));
    }
  },
  { name: 'idempotency', dependencies: ['database', 'problem-details'], fastify: '5.x' },
);
