// Prometheus metrics at GET /metrics: requests by route pattern and status, error answers by
// problem type, their latency (a change-feed stream's lifetime is none: it is left out, and told
// by the feed's own metrics), transaction outcomes and retries, Idempotency-Key events, MongoDB's
// connection state, migrations pending, and what its driver reports (command durations by command
// and collection, failures by class, slow operations, each client's pool, server-selection
// failures, topology and primary changes: src/data/monitoring.ts), expensive requests running,
// queued and shed, requests refused by rate limits (by scope: key or anonymous), the change
// feed's streams (open, events written, lag, closes by reason; reported by its routes through
// app.feedMetrics), the document cache (read from its counters; its invalidation lag told as it
// happens), and the process's own CPU, memory and event loop. One registry per app, so
// several apps in one process (the tests) never collide. ops/ holds a dashboard and alert rules
// over these names; `npm run ops:check` fails when one of them is not here.

import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { Type } from 'typebox';
import { transactionOutcomes, transactionRetries } from '../../data/transactions.ts';
import { auditStreamEvents, auditStreamLag } from '../../data/audit-stream.ts';
import { idempotencyEvents } from '../../data/idempotency.ts';
import { PROBLEM_MEDIA_TYPE, problemResponses } from '../schemas/problem.ts';
import { FAILURE_CLASSES, type Distribution, type PoolStats } from '../../data/monitoring.ts';
import { Deadline } from '../../data/deadline.ts';

const PREFIX = 'storekeeper_';
/** How long a scrape waits for the migrations' changelog. */
const PENDING_MIGRATIONS_TIMEOUT_MS = 1000;

/** The code of a problem document's type, its first member (sendProblem writes it first). */
const PROBLEM_TYPE = /^\{"type":"urn:storekeeper:problem:([a-z0-9-]{1,64})"/;

/**
 * A histogram the data layer keeps as counts (monitoring.ts's Distribution), exposed as
 * prom-client exposes its own: cumulative buckets, sum and count per label set.
 */
function distributionMetric(
  name: string,
  help: string,
  read: () => Iterable<[Record<string, string>, Distribution]>,
): Metric {
  const values = () => {
    const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const [labels, distribution] of read()) {
      let cumulative = 0;
      distribution.counts.forEach((count, i) => {
        cumulative += count;
        const le = distribution.bounds[i] ?? '+Inf';
        out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
      });
      out.push({ metricName: `${name}_sum`, labels, value: distribution.sum });
      out.push({ metricName: `${name}_count`, labels, value: distribution.count });
    }
    return out;
  };
  return {
    name,
    help,
    type: 'histogram',
    get: () => ({ name, help, type: 'histogram', values: values(), aggregator: 'sum' }),
  } as unknown as Metric;
}

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

    new Gauge({
      name: `${PREFIX}migrations_pending`,
      help:
        'Migrations of migrations/ not applied to the database, read at each scrape (unchanged while MongoDB does ' +
        'not answer); /health/ready names them.',
      registers: [registry],
      async collect() {
        try {
          this.set((await app.db.pendingMigrations(Deadline.after(PENDING_MIGRATIONS_TIMEOUT_MS))).length);
        } catch {
          // MongoDB did not answer: mongodb_up says so; the last count stands.
        }
      },
    });

    const { monitor } = app.db;
    registry.registerMetric(
      distributionMetric(
        `${PREFIX}mongodb_command_duration_seconds`,
        "MongoDB commands of the app's connection, from sending to the reply, by command and collection " +
          '(commands and collections outside fixed lists: other; none: a command on no collection).',
        function* () {
          for (const [command, byCollection] of monitor.commands)
            for (const [collection, distribution] of byCollection) yield [{ command, collection }, distribution];
        },
      ),
    );
    new Counter({
      name: `${PREFIX}mongodb_command_failures_total`,
      help:
        "MongoDB commands of the app's connection that failed, by command and class: " +
        `${FAILURE_CLASSES.join(', ')}.`,
      labelNames: ['command', 'class'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [command, byClass] of monitor.failures)
          for (const [failure, count] of byClass) this.inc({ command, class: failure }, count);
      },
    });
    new Counter({
      name: `${PREFIX}mongodb_slow_operations_total`,
      help: 'MongoDB commands that took SLOW_OPERATION_MS or more (each logged at warn), by command.',
      labelNames: ['command'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [command, count] of monitor.slow) this.inc({ command }, count);
      },
    });
    const poolGauge = (name: string, help: string, value: (pool: PoolStats) => number) =>
      new Gauge({
        name: `${PREFIX}mongodb_pool_${name}`,
        help: `${help} By client: main (requests), audit, feed and keys (the streams').`,
        labelNames: ['pool'] as const,
        registers: [registry],
        collect() {
          for (const [pool, stats] of monitor.pools) this.set({ pool }, value(stats));
        },
      });
    poolGauge('connections', 'Connections open, idle or in use, over every server.', (pool) => pool.size);
    poolGauge('checked_out', 'Connections an operation holds.', (pool) => pool.inUse);
    poolGauge('wait_queue', 'Operations waiting for a connection.', (pool) => pool.waiting);
    registry.registerMetric(
      distributionMetric(
        `${PREFIX}mongodb_pool_wait_seconds`,
        'Time an operation waited for a pooled connection (checkouts that failed included), by client.',
        function* () {
          for (const [pool, stats] of monitor.pools) yield [{ pool }, stats.wait];
        },
      ),
    );
    new Counter({
      name: `${PREFIX}mongodb_pool_checkout_failures_total`,
      help:
        'Checkouts of a pooled connection that failed, by client and reason: timeout (MONGODB_WAIT_QUEUE_TIMEOUT_MS ' +
        'passed), connectionError, poolClosed.',
      labelNames: ['pool', 'reason'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, stats] of monitor.pools)
          for (const [reason, count] of Object.entries(stats.checkOutFailures)) this.inc({ pool, reason }, count);
      },
    });
    new Counter({
      name: `${PREFIX}mongodb_pool_cleared_total`,
      help: "Times a client's pool was cleared (its server was found unreachable or stepped down), by client.",
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, stats] of monitor.pools) this.inc({ pool }, stats.cleared);
      },
    });
    const counted = (name: string, help: string, value: () => number) =>
      new Counter({
        name: `${PREFIX}${name}`,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(value());
        },
      });
    counted(
      'mongodb_server_selection_failures_total',
      'Requests and connection attempts that found no MongoDB server to run on within ' +
        'MONGODB_SERVER_SELECTION_TIMEOUT_MS (MongoDB down or unreachable, or no primary for a write).',
      () => monitor.serverSelectionFailures,
    );
    counted(
      'mongodb_topology_changes_total',
      "Changes of the deployment as the app's connection sees it: a member's state, a member found or lost.",
      () => monitor.topologyChanges,
    );
    counted(
      'mongodb_primary_changes_total',
      'Times the primary became another member, or none (an election, a failover, a primary lost).',
      () => monitor.primaryChanges,
    );
    new Gauge({
      name: `${PREFIX}mongodb_primary`,
      help: "1 while the app's connection knows a primary (a server that takes writes), 0 otherwise.",
      registers: [registry],
      collect() {
        this.set(monitor.primary === undefined ? 0 : 1);
      },
    });
    // What reaches the error path found no server: counted there, since the driver tells no event of it.
    app.addHook('onError', (_request, _reply, error, done) => {
      monitor.failed(error);
      done();
    });

    const { shedding } = app;
    new Gauge({
      name: `${PREFIX}expensive_requests_running`,
      help: 'Expensive requests (lists, batches) running, at most MAX_CONCURRENT_QUERIES.',
      registers: [registry],
      collect() {
        this.set(shedding.running);
      },
    });
    new Gauge({
      name: `${PREFIX}expensive_requests_queued`,
      help: 'Expensive requests waiting for one of the MAX_CONCURRENT_QUERIES slots.',
      registers: [registry],
      collect() {
        this.set(shedding.queued);
      },
    });
    counted(
      'load_shed_total',
      'Expensive requests refused with 503 overloaded since start: no slot freed within their wait.',
      () => shedding.rejected,
    );

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
      read(
        'unadmitted_misses_total',
        'Misses of a document the document cache had not missed recently: their answer is not stored for that miss.',
        () => cache.stats.unadmitted,
      );
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

    const problems = new Counter({
      name: `${PREFIX}http_problems_total`,
      help:
        'Error answers (problem documents) by method, route pattern, status and problem type (the last part of ' +
        'its urn:storekeeper:problem: type, e.g. not-found, service-unavailable, outcome-unknown).',
      labelNames: ['method', 'route', 'status', 'problem'] as const,
      registers: [registry],
    });
    /** The problem type of each error answer, read from its document as it leaves. */
    const problemOf = new WeakMap<FastifyRequest, string>();
    app.addHook('onSend', (request, reply, payload, done) => {
      if (reply.statusCode >= 400 && typeof payload === 'string') {
        const type = String(reply.getHeader('content-type') ?? '').startsWith(PROBLEM_MEDIA_TYPE)
          ? PROBLEM_TYPE.exec(payload)?.[1]
          : undefined;
        problemOf.set(request, type ?? 'none');
      }
      done(null, payload);
    });

    app.addHook('onResponse', (request, reply, done) => {
      // The route pattern, not the URL, keeps the label set bounded.
      const route = request.routeOptions.url ?? 'unmatched';
      const status = String(reply.statusCode);
      requests.inc({ method: request.method, route, status });
      const problem = problemOf.get(request);
      if (problem !== undefined) problems.inc({ method: request.method, route, status, problem });
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
  { name: 'metrics', dependencies: ['database', 'authentication', 'load-shedding'], fastify: '5.x' },
);
