// Prometheus metrics at GET /metrics: requests by route pattern and status, their latency (a
// change-feed stream's lifetime is none: it is left out, and told by the feed's own metrics),
// transaction outcomes and retries, Idempotency-Key events, MongoDB's connection state, requests
// refused by rate limits (by scope: key or anonymous), the change
// feed's streams (open, events written, lag, closes by reason; reported by its routes through
// app.feedMetrics), the document cache (read from its counters; its invalidation lag told as it
// happens), and the process's own CPU, memory and event loop. One registry per app, so
// several apps in one process (the tests) never collide.

import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Type } from 'typebox';
import { transactionOutcomes, transactionRetries } from '../../data/transactions.ts';
import { auditStreamEvents, auditStreamLag } from '../../data/audit-stream.ts';
import { idempotencyEvents } from '../../data/idempotency.ts';
import { problemResponses } from '../schemas/problem.ts';

const PREFIX = 'storekeeper_';

/** What the change-feed routes report of their streams. */
export interface FeedMetrics {
  /** A stream began answering `request`: its end is no request latency. */
  opened(request: FastifyRequest): void;
  /** A stream ended: a close reason of the feed, or disconnected (the client went away). */
  closed(reason: string): void;
  /** An event written to a client, `lagSeconds` after the change it reports. */
  written(collection: string, type: string, lagSeconds: number): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    feedMetrics: FeedMetrics;
  }
}

export default fp(
  async (app) => {
    const registry = new Registry();
    const [mediaType = registry.contentType] = registry.contentType.split(';');
    collectDefaultMetrics({ register: registry, prefix: PREFIX });

    const requests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    });
    const duration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help:
        'Time to answer HTTP requests, by method and route pattern. Change-feed streams are left out (they last ' +
        'as long as their clients follow): they are counted in storekeeper_feed_streams and storekeeper_feed_*.',
      labelNames: ['method', 'route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    // The data layer keeps plain counters (it knows nothing of Prometheus); they are read when Prometheus scrapes.
    const fromCounters = (
      name: string,
      help: string,
      label: string,
      counters: Record<string, number>,
      labelOf = (key: string) => key,
    ) =>
      new Counter({
        name: `${PREFIX}${name}`,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          this.reset();
          for (const [key, count] of Object.entries(counters)) this.inc({ [label]: labelOf(key) }, count);
        },
      });
    const kebab = (key: string) => key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
    fromCounters(
      'transactions_total',
      'Writes since start (transactions and atomic writes of one document), by outcome: committed; ' +
        'refused (the request was wrong: nothing written); ' +
        'not-written (MongoDB unavailable or too much contention: 503 service-unavailable); ' +
        'unknown (the commit was sent and not confirmed in time: 503 outcome-unknown).',
      'outcome',
      transactionOutcomes,
      kebab,
    );
    fromCounters(
      'transaction_retries_total',
      'Transaction retries since start, by cause: transient (write conflict, failover), ' +
        'unavailable (MongoDB did not answer; nothing committed), unknown-commit (a commit asked again).',
      'kind',
      transactionRetries,
      kebab,
    );
    fromCounters(
      'idempotency_total',
      'Idempotency-Key events since start: claimed, replayed (stored answer), ' +
        "rebuilt (answer rebuilt from a committed result), taken-over (the holder's lease had ended), " +
        'expired, in-progress (409), reused (422).',
      'event',
      idempotencyEvents,
      kebab,
    );
    fromCounters(
      'audit_stream_total',
      'The audit stream since start: entries stored, duplicates (an entry already stored, after a replay), ' +
        'restarts (the change stream was interrupted and resumed), history-lost (its position had left the oplog).',
      'event',
      auditStreamEvents,
      kebab,
    );
    new Gauge({
      name: `${PREFIX}audit_stream_lag_seconds`,
      help: 'From the write of the newest audit entry the stream stored last to its storing.',
      registers: [registry],
      collect() {
        this.set(auditStreamLag.seconds);
      },
    });
    fromCounters(
      'rate_limited_total',
      'Requests refused with 429 since start, by whose limit: key (an API key) or anonymous (a client IP, without ' +
        'a valid key).',
      'scope',
      app.rateLimited,
    );
    new Gauge({
      name: `${PREFIX}mongodb_up`,
      help: '1 while the MongoDB connection is established, 0 otherwise.',
      registers: [registry],
      collect() {
        this.set(app.db.state === 'connected' ? 1 : 0);
      },
    });

    const feedStreams = new Gauge({
      name: `${PREFIX}feed_streams`,
      help: 'Change-feed streams open on this instance.',
      registers: [registry],
    });
    const feedEvents = new Counter({
      name: `${PREFIX}feed_events_total`,
      help: 'Change-feed events written to clients, by collection and type (insert, update, replace, delete).',
      labelNames: ['collection', 'type'] as const,
      registers: [registry],
    });
    const feedLag = new Histogram({
      name: `${PREFIX}feed_lag_seconds`,
      help: "From a change (its operationTime) to its event's writing to a client; a resumed client's catch-up counts.",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    });
    const feedClosed = new Counter({
      name: `${PREFIX}feed_closed_total`,
      help:
        'Change-feed streams ended, by reason: shutdown, slow-consumer, key-revoked, feed-failed, ' +
        'or disconnected (the client went away).',
      labelNames: ['reason'] as const,
      registers: [registry],
    });
    /** The requests a stream answers: counted as requests, not timed as them. */
    const streaming = new WeakSet<FastifyRequest>();
    app.decorate('feedMetrics', {
      opened: (request) => {
        streaming.add(request);
        feedStreams.inc();
      },
      closed: (reason) => {
        feedStreams.dec();
        feedClosed.inc({ reason });
      },
      written: (collection, type, lagSeconds) => {
        feedEvents.inc({ collection, type });
        feedLag.observe(Math.max(0, lagSeconds));
      },
    } satisfies FeedMetrics);

    const { cache } = app.stores;
    if (cache !== undefined) {
      const read = (name: string, help: string, value: () => number) =>
        new Counter({
          name: `${PREFIX}cache_${name}`,
          help,
          registers: [registry],
          collect() {
            this.reset();
            this.inc(value());
          },
        });
      read('hits_total', 'Reads by id answered from the document cache.', () => cache.stats.hits);
      read('misses_total', 'Reads by id the document cache sent to MongoDB.', () => cache.stats.misses);
      fromCounters(
        'cache_evictions_total',
        "Entries that left the document cache, by cause: size (room for others), write (this instance's " +
          'write), feed (a change the change feed reported).',
        'cause',
        cache.stats.evictions,
      );
      fromCounters(
        'cache_resets_total',
        'Times the document cache emptied itself, by reason: feed-stopped, feed-failed, feed-behind (its ' +
          'change-feed subscription ended; it stores nothing until it follows again), feed-silent (the ' +
          "feed's stream stopped answering; it stores nothing until it answers again).",
        'reason',
        cache.stats.resets,
      );
      new Gauge({
        name: `${PREFIX}cache_bytes`,
        help: 'Bytes the document cache holds, as it counts them (at most CACHE_MAX_MB).',
        registers: [registry],
        collect() {
          this.set(cache.bytes);
        },
      });
      const invalidationLag = new Histogram({
        name: `${PREFIX}cache_invalidation_lag_seconds`,
        help: "From a change the change feed reports (its operationTime) to the document cache's eviction of it.",
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      });
      cache.onInvalidationLag = (seconds) => invalidationLag.observe(seconds);
    }

    app.addHook('onResponse', (request, reply, done) => {
      // The route pattern, not the URL, keeps the label set bounded.
      const route = request.routeOptions.url ?? 'unmatched';
      requests.inc({ method: request.method, route, status: String(reply.statusCode) });
      if (!streaming.has(request)) duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
      done();
    });

    app.get(
      '/metrics',
      {
        // Operational detail (routes, volumes, internals) is for operators, not for anyone who asks.
        config: { scopes: ['operations:read'] },
        schema: {
          tags: ['health'],
          summary: 'Prometheus metrics',
          operationId: 'getMetrics',
          response: {
            200: {
              description: 'Metrics in the Prometheus text exposition format.',
              content: {
                [mediaType]: {
                  schema: Type.String(),
                  example:
                    '# TYPE storekeeper_http_requests_total counter\n' +
                    'storekeeper_http_requests_total{method="GET",route="/v1/products",status="200"} 42\n',
                },
              },
            },
            ...problemResponses(500),
          },
        },
      },
      async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
    );
  },
  // GET /metrics is behind a key.
  { name: 'metrics', dependencies: ['database', 'authentication'], fastify: '5.x' },
);
