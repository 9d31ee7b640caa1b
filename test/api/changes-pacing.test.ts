// The change feed's pacing over real connections: with a connection buffer of 16 KiB
// (FEED_CLIENT_BUFFER_BYTES), a client that reads gets a replay of 5,000 changes from the ring, and
// a catch-up of 5,000 from MongoDB on an instance started after them, at its own speed: never
// closed, each change once and in order, the stream paused and resumed many times on the way.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { Product } from '../../src/domain/entities/index.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { storedProduct } from '../helpers/documents.ts';
import { SseStream, waitForFeed } from '../helpers/sse.ts';

const CHANGES = 5_000;
const SETTINGS = { FEED_CLIENT_BUFFER_BYTES: '16384', FEED_REPLAY_EVENTS: '6000' };

let sequence = 0;

describe('a client that reads', () => {
  let t: TestApp;
  let base: string;
  const streams: SseStream[] = [];

  const open = async (url: string, lastEventId?: string) => {
    const stream = await SseStream.open(url, {
      headers: { authorization: `Bearer ${t.key}`, ...(lastEventId !== undefined && { 'last-event-id': lastEventId }) },
    });
    streams.push(stream);
    expect(stream.status).toBe(200);
    return stream;
  };
  /** A stream that has received its first event: it follows from before the next write. Answers it and its start. */
  const following = async () => {
    const stream = await open(`${base}/v1/products/changes`);
    await stream.until((s) => s.events.length > 0, 'the first event');
    return { stream, start: stream.events[0]!.id! };
  };
  /** CHANGES products written straight to MongoDB, about 1 kB of event each; answers their ids in order. */
  const writeMany = async () => {
    const description = 'd'.repeat(500);
    const documents = Array.from({ length: CHANGES }, () =>
      storedProduct(++sequence, { sku: `PACE-${process.pid}-${sequence}`, description }),
    );
    const products = t.app.db.connection.db!.collection('products');
    for (let i = 0; i < documents.length; i += 500) await products.insertMany(documents.slice(i, i + 500));
    return documents.map((document) => (document._id as mongoose.Types.ObjectId).toHexString());
  };
  const create = async (on = t) => {
    const res = await on.app.inject({
      method: 'POST',
      url: '/v1/products',
      payload: { ...Product.example, sku: `PACE-${process.pid}-${++sequence}` },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string }>().id;
  };
  const metric = async (on: TestApp, sample: string) => {
    const text = (await on.app.inject({ url: '/metrics' })).body;
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
    return line === undefined ? 0 : Number(line.slice(sample.length + 1));
  };
  /** Reads `CHANGES` changes and the write after them; answers the ids, in the order they came. */
  const readAll = async (stream: SseStream, on: TestApp) => {
    await stream.untilChanges(CHANGES, 120_000);
    const next = await create(on);
    await stream.until((s) => s.changes().at(-1)?.id === next, 'the write after');
    return { ids: stream.changes().map((change) => change.id), next };
  };

  beforeAll(async () => {
    t = await buildTestApp('changes_pacing', SETTINGS);
    await waitForDatabase(t.app);
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    await waitForFeed(t.app);
  });
  afterAll(async () => {
    // Ended by the app's close (shutdown) rather than by the client: a fetch that aborts a stream
    // leaves the server a spare connection of undici's, which its close would wait for.
    await t.app.close();
    for (const stream of streams) stream.close();
  });

  it('gets a replay of 5,000 changes from memory through a small buffer: never closed, each once, in order', async () => {
    const { stream: live, start } = await following();
    const ids = await writeMany();
    await live.untilChanges(CHANGES, 120_000);
    const feed = t.app.stores.feed!;
    const pausedBefore = feed.stats.pauses;

    const replayed = await open(`${base}/v1/products/changes`, start);
    const { ids: received, next } = await readAll(replayed, t);
    expect(received).toEqual([...ids, next]);
    expect(replayed.closeData()).toBeUndefined();
    expect(replayed.ended).toBe(false);
    // Paced, not cut off: paused on a full buffer and resumed, many times; all from the ring.
    expect(feed.stats.pauses - pausedBefore).toBeGreaterThan(10);
    expect(feed.stats.catchUps).toBe(0);
    expect(feed.stats.behind).toBe(0);
    // The client that followed live got them all too, paced the same way.
    expect(live.changes().map((change) => change.id)).toEqual([...ids, next]);
    expect(await metric(t, 'storekeeper_feed_closed_total{reason="slow-consumer"}')).toBe(0);
  });

  it('gets a catch-up of 5,000 changes from MongoDB on a new instance the same way', async () => {
    const { stream: before, start } = await following();
    const ids = await writeMany();
    await before.untilChanges(CHANGES, 120_000);

    // Started after the writes, the instance holds none of them: MongoDB's history serves them.
    const restarted = await buildAppOn(t.dbName, t.key, SETTINGS);
    try {
      await waitForDatabase(restarted.app);
      const restartedBase = await restarted.app.listen({ port: 0, host: '127.0.0.1' });
      await waitForFeed(restarted.app);
      const resumed = await open(`${restartedBase}/v1/products/changes`, start);
      const { ids: received, next } = await readAll(resumed, restarted);
      expect(received).toEqual([...ids, next]);
      expect(resumed.closeData()).toBeUndefined();
      expect(resumed.ended).toBe(false);
      const feed = restarted.app.stores.feed!;
      expect(feed.stats.catchUps).toBe(1);
      expect(feed.stats.pauses).toBeGreaterThan(10);
      expect(feed.stats.behind).toBe(0);
      expect(await metric(restarted, 'storekeeper_feed_closed_total{reason="slow-consumer"}')).toBe(0);
    } finally {
      await restarted.app.close();
    }
  });
});
