// Idempotency-Key on every POST route: the first request with a key runs; a retry with the same key
// and body gets its answer again (Idempotency-Replayed: true) without running it again; a retry
// while the first still runs waits for it, within its own deadline. A key is held under a lease that
// ends shortly after the holding request's deadline, so a request that crashed, timed out or lost
// MongoDB never blocks its key for longer than that: a retry then takes the key over. A write records
// that it committed, with its result, in its own transaction (the guard it gets through writeContextOf), so
// a retry after a committed write always replays it, even when the answer itself was never stored.
// Applies to every POST route registered after this plugin, so new routes get it without opting in.

import { createHash, randomUUID } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { Type } from 'typebox';
import { AppError } from '../../errors.ts';
import { idempotencyEvents, leaseEnd, type IdempotencyRecord } from '../../data/idempotency.ts';
import type { WriteGuard } from '../../data/unit-of-work.ts';
import { Deadline, DeadlineExceeded } from '../../data/deadline.ts';
import { addRouteHook } from './route-hooks.ts';
import { addProblemKind } from '../schemas/problem.ts';

/** How often a retry looks again at the record of the request holding its key. */
const POLL_MS = 50;
/** Bound on the store operations a request leaves behind (releases): they never delay an answer. */
const BACKGROUND_TIMEOUT_MS = 5_000;

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
    'Makes the request safe to retry: the first request with a key runs, ' +
    'and a retry with the same key and body gets the same answer again (with Idempotency-Replayed: true) ' +
    'without running again, for IDEMPOTENCY_TTL_HOURS. 1-255 characters of visible ASCII. ' +
    'A retry while the first still runs waits for it (409 with Retry-After if it is still running); ' +
    'a key whose first request failed, crashed or timed out is free again at most REQUEST_DEADLINE_MS + 2 s ' +
    'after that request began. ' +
    'The same key with another body is a 422.',
  examples: ['5f0c8a2e-2b7d-4c1e-9a57-3d4b1f6e8c90'],
});

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the route ignores Idempotency-Key (set for every POST route otherwise). */
    idempotency?: boolean;
  }
  interface FastifyRequest {
    idempotencyClaim?: { scope: string; fingerprint: string; owner: string; settled: boolean };
    /** Given to the write path by writeContextOf: makes the request's write happen at most once for its key. */
    writeGuard?: WriteGuard;
  }
}

export const keyReused = () =>
  new AppError(422, 'idempotency-key-reused', 'Idempotency Key Reused', {
    detail: 'This Idempotency-Key was used with another request body or URL; use a new key for a new request.',
  });

export const inProgress = (retryAfterSeconds = 1) =>
  new AppError(409, 'idempotency-in-progress', 'Idempotency Key In Progress', {
    detail: 'A request with this Idempotency-Key is still being handled; retry after the time given in Retry-After.',
    headers: { 'retry-after': String(retryAfterSeconds) },
  });

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** JSON with object keys sorted at every level, so that key order does not change a fingerprint. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return '';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
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

/** The route's schema, documenting the header and the answers it adds. */
function documentRoute(route: RouteOptions): void {
  const schema = (route.schema ??= {}) as Record<string, unknown>;
  const headers = schema.headers as { type?: string; properties?: Record<string, unknown> } | undefined;
  if (headers === undefined) {
    schema.headers = Type.Object({ [IDEMPOTENCY_KEY_HEADER]: Type.Optional(IdempotencyKeyHeader) });
  } else if (headers.properties !== undefined) {
    schema.headers = {
      ...headers,
      properties: { ...headers.properties, [IDEMPOTENCY_KEY_HEADER]: IdempotencyKeyHeader },
    };
  }
  const responses = { ...((schema.response ?? {}) as Record<string, unknown>) };
  addProblemKind(
    responses,
    409,
    inProgress(),
    'a request with the same Idempotency-Key is still running after a few seconds of waiting for it; ' +
      'retry after Retry-After.',
  );
  addProblemKind(
    responses,
    422,
    keyReused(),
    'the Idempotency-Key was used before with another body or URL; nothing was done.',
  );
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
  if (record.status === undefined) throw new Error('an idempotency record is done but holds no status');
  return reply
    .code(record.status)
    .headers(record.headers ?? {})
    .header(REPLAYED_HEADER, 'true')
    .send(record.body ?? null);
}

export default fp(
  async (app) => {
    const store = app.stores.idempotency;
    app.decorateRequest('idempotencyClaim', undefined);
    app.decorateRequest('writeGuard', undefined);

    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      if (!methods.includes('POST') || route.config?.idempotency === false) return;
      route.config = { ...route.config, idempotency: true };
      documentRoute(route);
      // Before the route's own preValidation and its validation, so that a request refused as
      // invalid is answered the same way on retry.
      addRouteHook(route, 'preValidation', claimOrReplay, true);
      addRouteHook(route, 'onSend', settle);
      addRouteHook(route, 'onResponse', giveUp);
    });

    /** Gives a claim up without making anyone wait: if it does not reach MongoDB, the lease ends anyway. */
    function release(request: FastifyRequest, scope: string, owner: string): void {
      store
        .release(scope, owner, Deadline.after(BACKGROUND_TIMEOUT_MS))
        .catch((error: unknown) =>
          request.log.warn({ err: error }, 'could not release an idempotency key; its lease ends it'),
        );
    }

    async function claimOrReplay(request: FastifyRequest, reply: FastifyReply) {
      const key = request.headers[IDEMPOTENCY_KEY_HEADER];
      if (key === undefined) return;
      if (typeof key !== 'string' || !WELL_FORMED_KEY.test(key)) {
        throw AppError.validation([
          {
            in: 'headers',
            pointer: `/${IDEMPOTENCY_KEY_HEADER}`,
            message: 'must be 1-255 characters of visible ASCII',
          },
        ]);
      }
      // The scope is the route, not the URL: one key names one operation. The API key joins the
      // scope, so that clients cannot see, or block, each other's answers.
      const scope = sha256(
        `${request.principal?.keyId ?? '-'}\n${request.method}\n${request.routeOptions.url}\n${key}`,
      );
      const fingerprint = sha256(`${request.method}\n${request.url}\n${canonicalJson(request.body)}`);
      const owner = randomUUID();
      const { deadline } = request;
      // Waiting for another request with the key may use half of this one's time; the rest is for the work.
      const waitUntil = deadline.within(deadline.remaining() / 2);

      try {
        for (;;) {
          const claim = await deadline.race(store.claim(scope, fingerprint, owner, deadline));
          if (claim.claimed) {
            if (claim.tookOver) request.log.info('idempotency key taken over: the request holding it ran out of time');
            hold(request, scope, fingerprint, owner);
            return;
          }
          let record: IdempotencyRecord | null = claim.record;
          if (record.fingerprint !== fingerprint) {
            idempotencyEvents.reused++;
            throw keyReused();
          }
          if (record.state === 'committed') {
            // The write committed and its answer was not stored (or not yet): the route rebuilds
            // it from the committed result, writing nothing.
            idempotencyEvents.rebuilt++;
            request.log.info('idempotent request replayed from its committed result');
            hold(request, scope, fingerprint, owner, { result: record.result });
            reply.header(REPLAYED_HEADER, 'true');
            return;
          }
          if (record.state === 'done') {
            idempotencyEvents.replayed++;
            request.log.info({ status: record.status }, 'idempotent request replayed');
            // A reply is thenable, and awaiting it would wait until the answer is sent.
            // eslint-disable-next-line @typescript-eslint/return-await -- returning it ends the hook
            return replay(reply, record);
          }
          // The first request is still running: waiting for its answer is what a retrying client wants.
          while (
            record !== null &&
            record.state === 'running' &&
            leaseEnd(record).getTime() > Date.now() &&
            !waitUntil.expired()
          ) {
            await waitUntil.sleep(POLL_MS);
            record = await deadline.race(store.find(scope, deadline));
          }
          // Released, settled, or its lease ended: claim, replay or take over on the next round.
          if (record === null || record.state !== 'running' || leaseEnd(record).getTime() <= Date.now()) continue;
          idempotencyEvents.inProgress++;
          throw inProgress(Math.max(1, Math.ceil((leaseEnd(record).getTime() - Date.now()) / 1000)));
        }
      } catch (error) {
        // Out of time before the work began: nothing was written. A claim that reaches MongoDB
        // after this answer is released here, or its lease ends it.
        if (error instanceof DeadlineExceeded) release(request, scope, owner);
        throw error;
      }
    }

    function hold(
      request: FastifyRequest,
      scope: string,
      fingerprint: string,
      owner: string,
      committed?: { result: unknown },
    ): void {
      request.idempotencyClaim = { scope, fingerprint, owner, settled: false };
      request.writeGuard = {
        ...(committed !== undefined && { committed }),
        commitIn: (session, result) => store.commitIn(session, scope, owner, result),
      };
    }

    // onSend runs before the answer leaves, so a retry that arrives after it sees the answer stored.
    async function settle(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
      const claim = request.idempotencyClaim;
      if (claim === undefined || claim.settled) return payload;
      claim.settled = true;
      const body =
        typeof payload === 'string'
          ? payload
          : Buffer.isBuffer(payload)
            ? payload.toString('utf8')
            : payload == null
              ? undefined
              : null;
      if (!isReplayable(reply.statusCode) || body === null) {
        // Not an answer to keep: the key is given up (a committed record stays, release never touches it).
        release(request, claim.scope, claim.owner);
        return payload;
      }
      try {
        const answer = { status: reply.statusCode, headers: storedHeaders(reply), body };
        await request.deadline.race(
          store.complete(claim.scope, claim.fingerprint, claim.owner, answer, request.deadline),
        );
      } catch (error) {
        // The answer still goes out. A committed write stays replayable from its result; any other
        // answer is given up, so a retry runs the request again instead of waiting for the lease.
        request.log.warn({ err: error }, 'could not store the idempotent answer');
        release(request, claim.scope, claim.owner);
      }
      return payload;
    }

    // A request that ended without sending (aborted, or failed past onSend) gives its claim up.
    async function giveUp(request: FastifyRequest) {
      const claim = request.idempotencyClaim;
      if (claim === undefined || claim.settled) return;
      claim.settled = true;
      release(request, claim.scope, claim.owner);
    }
  },
  {
    name: 'idempotency',
    dependencies: ['stores', 'problem-details', 'request-context', 'input-guard', 'authentication', 'load-shedding'],
    fastify: '5.x',
  },
);
