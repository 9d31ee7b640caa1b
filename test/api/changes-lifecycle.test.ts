// The change feed's streams over their lifetime, against listening apps: the caps per key (429)
// and per instance (503), a revoked key's stream closing (key-revoked) and counted as a request but
// not timed as one, a client that stops
// reading closed (slow-consumer, with its last position) once the changes it has not read are more
// than the instance keeps, while another keeps receiving, a stream
// outliving the time limits of ordinary requests, and the app's close (what SIGTERM does) ending
// every stream at once (shutdown), after which a new instance continues each stream from its last
// position without a gap or a repeat.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import { Product } from '../../src/domain/entities/index.ts';
import { buildAppOn, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { storedProduct } from '../helpers/documents.ts';
import { SseStream, collectChanges, waitForFeed } from '../helpers/sse.ts';

let sequence = 0;
const productInput = () => ({ ...Product.example, sku: `LIFE-${process.pid}-${String(++sequence).padStart(5, '0')}` });

/** An app listening on a port of its own, its feed running, and the streams its tests open. */
async function listening(t: TestApp) {
  await waitForDatabase(t.app);
  const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
  await waitForFeed(t.app);
  const streams: SseStream[] = [];
  return {
    streams,
    open: async (path: string, key = t.key, options: { headers?: Record<string, string>; paused?: boolean } = {}) => {
      const stream = await SseStream.open(`${base}${path}`, {
        ...options,
        headers: { authorization: `Bearer ${key}`, ...options.headers },
      });
      streams.push(stream);
      return stream;
    },
    create: async () => {
      const res = await t.app.inject({ method: 'POST', url: '/v1/products', payload: productInput() });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>().id;
    },
    /** The value of a metric sample, 0 when absent. */
    metric: async (sample: string) => {
      const text = (await t.app.inject({ url: '/metrics' })).body;
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
      return line === undefined ? 0 : Number(line.slice(sample.length + 1));
    },
  };
}

const firstEvent = (stream: SseStream) => stream.until((s) => s.events.length > 0, 'the first event');

describe('caps and revocation', () => {
  let t: TestApp;
  let app: Awaited<ReturnType<typeof listening>>;

  beforeAll(async () => {
    t = await buildTestApp('changes_caps', {
      FEED_MAX_STREAMS: '3',
      FEED_MAX_STREAMS_PER_KEY: '2',
      AUTH_CACHE_TTL_MS: '500',
    });
    app = await listening(t);
  });
  afterAll(async () => {
    for (const stream of app.streams) stream.close();
    await t.app.close();
  });

  it('closes the stream of a revoked key (key-revoked) within about AUTH_CACHE_TTL_MS', async () => {
    const reader = await t.createKey(['products:read'], { name: 'revoked-reader' });
    const stream = await app.open('/v1/products/changes', reader.key);
    await firstEvent(stream);
    const revokedAt = performance.now();
    const revoke = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${reader.id}` });
    expect(revoke.statusCode, revoke.body).toBe(200);
    await stream.untilEnded(15_000);
    const tookMs = performance.now() - revokedAt;
    expect(stream.closeData()).toEqual({ reason: 'key-revoked', lastEventId: expect.any(String) });
    // The cache may serve the key for AUTH_CACHE_TTL_MS, and the stream checks four times per TTL.
    expect(tookMs).toBeLessThan(5_000);
    expect(await app.metric('storekeeper_feed_closed_total{reason="key-revoked"}')).toBe(1);
    // Counted as a request once it ended, and not timed as one: a stream's lifetime is no latency.
    const route = 'method="GET",route="/v1/products/changes"';
    await waitFor(
      async () => (await app.metric(`storekeeper_http_requests_total{${route},status="200"}`)) === 1,
      10_000,
      'the stream to be counted',
    );
    expect(await app.metric(`storekeeper_http_request_duration_seconds_count{${route}}`)).toBe(0);
  });

  it('answers 429 past FEED_MAX_STREAMS_PER_KEY and 503 past FEED_MAX_STREAMS, and frees places as streams end', async () => {
    const [a, b, c] = await Promise.all(
      ['a', 'b', 'c'].map((name) => t.createKey(['products:read'], { name: `cap-${name}` })),
    );
    const a1 = await app.open('/v1/products/changes', a!.key);
    const a2 = await app.open('/v1/products/changes', a!.key);
    expect([a1.status, a2.status]).toEqual([200, 200]);
    const a3 = await app.open('/v1/products/changes', a!.key);
    expect(a3.status).toBe(429);
    expect(a3.response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await a3.problem()).toMatchObject({ type: 'urn:storekeeper:problem:too-many-streams', status: 429 });

    const b1 = await app.open('/v1/products/changes', b!.key);
    expect(b1.status).toBe(200);
    const c1 = await app.open('/v1/products/changes', c!.key);
    expect(c1.status).toBe(503);
    expect(c1.response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await c1.problem()).toMatchObject({ type: 'urn:storekeeper:problem:overloaded', status: 503 });
    expect(await app.metric('storekeeper_feed_streams')).toBe(3);

    // A client that leaves gives its place back.
    a1.close();
    await waitFor(async () => (await app.metric('storekeeper_feed_streams')) === 2, 10_000, 'the stream to end');
    const c2 = await app.open('/v1/products/changes', c!.key);
    expect(c2.status).toBe(200);
    expect(await app.metric('storekeeper_feed_closed_total{reason="disconnected"}')).toBeGreaterThanOrEqual(1);
  });
});

describe('a client that stops reading', () => {
  let t: TestApp;
  let app: Awaited<ReturnType<typeof listening>>;

  beforeAll(async () => {
    // A client is closed once it is further behind than the ring holds: a small ring, reached soon.
    t = await buildTestApp('changes_slow', { FEED_CLIENT_BUFFER_BYTES: String(64 * 1024), FEED_REPLAY_EVENTS: '20' });
    app = await listening(t);
  });
  afterAll(async () => {
    for (const stream of app.streams) stream.close();
    await t.app.close();
  });

  it('is closed (slow-consumer) with its last position, while another client receives everything', async () => {
    const reading = await app.open('/v1/products/changes');
    const slow = await app.open('/v1/products/changes', t.key, { paused: true });
    expect(slow.status).toBe(200);
    await firstEvent(reading);
    // Big documents (about 200 kB each), a few at a time, each few read by the reading client before
    // the next, until the slow client is closed: its socket and kernel buffers fill, then its buffer in
    // the service, then its stream pauses, and the ring turns over past it.
    const long = 'x'.repeat(200);
    const attributes = Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [`a${i}`, Array.from({ length: 20 }, () => long)]),
    );
    const documents = Array.from({ length: 400 }, (_, i) =>
      storedProduct(i, { sku: `SLOW-${process.pid}-${i}`, attributes, description: long }),
    );
    const slowClosed = async () => (await app.metric('storekeeper_feed_closed_total{reason="slow-consumer"}')) > 0;
    let written = 0;
    while (written < documents.length && !(await slowClosed())) {
      await t.app.db.connection.db!.collection('products').insertMany(documents.slice(written, written + 5));
      written += 5;
      await reading.untilChanges(written);
    }
    const ids = documents.slice(0, written).map((document) => (document._id as mongoose.Types.ObjectId).toHexString());
    expect(reading.changes().map((change) => change.id)).toEqual(ids);
    await waitFor(
      async () => (await app.metric('storekeeper_feed_closed_total{reason="slow-consumer"}')) === 1,
      30_000,
      'the slow client to be closed',
    );

    // What it had not read is still on its way, then the close with the position to resume from.
    slow.resume();
    await slow.untilEnded(30_000);
    const received = slow.changes();
    expect(received.length).toBeLessThan(ids.length);
    expect(received.map((change) => change.id)).toEqual(ids.slice(0, received.length));
    expect(slow.closeData()).toEqual({ reason: 'slow-consumer', lastEventId: received.at(-1)?.position });

    // Resumed from there as EventSource would, reconnecting whenever it is closed again: the rest, once each.
    const rest = await collectChanges(
      (lastEventId) =>
        app.open('/v1/products/changes', t.key, {
          ...(lastEventId !== undefined && { headers: { 'last-event-id': lastEventId } }),
        }),
      ids.length - received.length,
      slow.closeData()!.lastEventId,
    );
    expect(rest.changes.map((change) => change.id)).toEqual(ids.slice(received.length));
  });
});

describe('shutdown and restart', () => {
  it('ends every stream at once on close (shutdown), and a new instance resumes each without a gap or a repeat', async () => {
    // The limits of ordinary requests do not cut a stream: it outlives REQUEST_TIMEOUT_MS (Node's) and the deadline.
    const first = await buildTestApp('changes_restart', { REQUEST_TIMEOUT_MS: '1000', REQUEST_DEADLINE_MS: '1000' });
    const before = await listening(first);
    const products = await before.open('/v1/products/changes');
    const both = await before.open('/v1/changes?collections=products,customers');
    await Promise.all([firstEvent(products), firstEvent(both)]);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect([products.ended, both.ended]).toEqual([false, false]);
    const early = [await before.create(), await before.create()];
    await Promise.all([products.untilChanges(2), both.untilChanges(2)]);

    const closing = performance.now();
    await first.app.close();
    const closeMs = performance.now() - closing;
    await Promise.all([products.untilEnded(5_000), both.untilEnded(5_000)]);
    // Not SHUTDOWN_GRACE_MS (10 s): the streams end as the app closes.
    expect(closeMs).toBeLessThan(5_000);
    for (const stream of [products, both]) {
      expect(stream.changes().map((change) => change.id)).toEqual(early);
      expect(stream.closeData()).toEqual({ reason: 'shutdown', lastEventId: stream.lastEventId() });
    }

    // Written while no instance runs, straight to MongoDB.
    const missed = Array.from({ length: 20 }, (_, i) => storedProduct(i, { sku: `DOWN-${process.pid}-${i}` }));
    const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
    try {
      await client.db(first.dbName).collection('products').insertMany(missed);
    } finally {
      await client.close();
    }
    const second = await buildAppOn(first.dbName, first.key);
    try {
      const after = await listening(second);
      const resumedProducts = await after.open('/v1/products/changes', first.key, {
        headers: { 'last-event-id': products.closeData()!.lastEventId },
      });
      const resumedBoth = await after.open('/v1/changes?collections=products,customers', first.key, {
        headers: { 'last-event-id': both.closeData()!.lastEventId },
      });
      const next = await after.create();
      const expected = [...missed.map((document) => (document._id as mongoose.Types.ObjectId).toHexString()), next];
      for (const stream of [resumedProducts, resumedBoth]) {
        await stream.untilChanges(expected.length, 60_000);
        expect(stream.changes().map((change) => change.id)).toEqual(expected);
      }
    } finally {
      for (const stream of [...before.streams]) stream.close();
      await second.app.close();
    }
  });
});
