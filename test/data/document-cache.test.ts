// The document cache against a real change feed on the replica set: it stores only while its
// subscription is live, and empties itself when that ends; concurrent misses share one load; a
// load that an invalidation (a write here, a change from the feed) or a reset overtook never
// stores its older answer; it stores an answer at its second miss only (a scan of cold ids stores
// nothing and evicts nothing), as its UTF-8 bytes, which its calculated size counts and which stay
// within its bound. (Over HTTP, with the unit of work and two instances:
// test/api/document-cache.test.ts.)

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import pino from 'pino';
import { ChangeFeed } from '../../src/data/change-feed.ts';
import {
  DocumentCache,
  ENTRY_OVERHEAD_BYTES,
  type CachedAnswer,
  type LoadedAnswer,
} from '../../src/data/document-cache.ts';
import type { Change } from '../../src/data/unit-of-work.ts';
import { useMigratedDatabase, waitFor } from '../helpers/app.ts';

const COLLECTIONS = ['products', 'customers', 'stock', 'orders'];
const silent = pino({ level: 'silent' });

/** A load the test settles when it wants, counting how often it ran. */
function controlledLoad() {
  const pending: ((answer: LoadedAnswer | null) => void)[] = [];
  const load = {
    calls: 0,
    run: () => {
      load.calls++;
      return new Promise<LoadedAnswer | null>((resolve) => pending.push(resolve));
    },
    settle: (answer: LoadedAnswer | null) => {
      for (const resolve of pending.splice(0)) resolve(answer);
    },
  };
  return load;
}

const answer = (version: number, body = `{"version":${version}}`): LoadedAnswer => ({ body, version });
const fixed = (value: LoadedAnswer | null) => () => Promise.resolve(value);

/** A read's answer with its body as text, whether the load's text or the stored bytes. */
const asText = (answer: CachedAnswer | null) => answer && { ...answer, body: answer.body.toString() };
const readText = async (cache: DocumentCache, ...read: Parameters<DocumentCache['read']>) =>
  asText(await cache.read(...read));
const written = (collection: string, documentId: string, version: number): Change => ({
  collection,
  documentId,
  version,
  action: 'patch',
  requestId: 'test',
  actor: { keyId: 'k', keyName: 'test' },
  at: new Date(),
});

/**
 * A TCP proxy to the test's mongod that can stop passing bytes, as a frozen server or a cut
 * network would look to a client: its commands neither answer nor fail.
 */
async function freezableProxy(
  target: URL,
): Promise<{ uri: string; freeze(): void; thaw(): void; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  let frozen = false;
  const server: Server = createServer((incoming) => {
    const outgoing = createConnection({ host: target.hostname, port: Number(target.port) });
    for (const [from, to] of [
      [incoming, outgoing],
      [outgoing, incoming],
    ] as const) {
      from.pipe(to);
      from.on('error', () => to.destroy());
      sockets.push(from);
      if (frozen) from.pause();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    uri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    freeze: () => {
      frozen = true;
      for (const socket of sockets) socket.pause();
    },
    thaw: () => {
      frozen = false;
      for (const socket of sockets) socket.resume();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('the document cache', () => {
  const database = useMigratedDatabase('document_cache');
  const clients: mongoose.mongo.MongoClient[] = [];
  const feeds: ChangeFeed[] = [];
  const caches: DocumentCache[] = [];

  const startFeed = async () => {
    const client = new mongoose.mongo.MongoClient(inject('mongoUri'), { appName: 'cache-test', maxPoolSize: 3 });
    clients.push(client);
    const feed = new ChangeFeed(client, database.name, { collections: COLLECTIONS, maxAwaitMs: 100 }, silent);
    await feed.start();
    feeds.push(feed);
    return feed;
  };
  /** A cache following a feed of its own, live. */
  const liveCache = async (maxBytes = 1_048_576) => {
    const feed = await startFeed();
    const cache = new DocumentCache({ maxBytes, collections: COLLECTIONS }, silent);
    caches.push(cache);
    cache.follow(feed);
    await waitFor(() => cache.live, 10_000, 'the cache to follow the feed');
    return { cache, feed };
  };
  afterEach(async () => {
    for (const cache of caches.splice(0)) cache.stop();
    for (const feed of feeds.splice(0)) await feed.stop();
    for (const client of clients.splice(0)) await client.close();
  });

  it('stores nothing before it follows a feed, and serves every read from its load', async () => {
    const cache = new DocumentCache({ maxBytes: 1_048_576, collections: COLLECTIONS }, silent);
    let loads = 0;
    const load = () => Promise.resolve(answer(++loads));
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(1));
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(2));
    expect(cache.size).toBe(0);
    expect(cache.stats).toMatchObject({ hits: 0, misses: 2 });
  });

  it('answers a second read from memory once live, and a refresh loads and replaces it', async () => {
    const { cache } = await liveCache();
    // Missed once before (no such document then): the next miss stores.
    await readText(cache, 'products', 'a', fixed(null));
    const { misses } = cache.stats;
    let loads = 0;
    const load = () => Promise.resolve(answer(++loads));
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(1));
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(1));
    expect(await readText(cache, 'products', 'a', load, { refresh: true })).toEqual(answer(2));
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(2));
    expect(loads).toBe(2);
    expect(cache.stats).toMatchObject({ hits: 2, misses: misses + 2 });
    // No such document: not remembered.
    expect(await readText(cache, 'products', 'b', fixed(null))).toBeNull();
    expect(cache.size).toBe(1);
  });

  it('stores an answer at its second miss, not its first', async () => {
    const { cache } = await liveCache();
    let loads = 0;
    const load = () => Promise.resolve(answer(++loads));
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(1));
    expect(cache.size).toBe(0);
    expect(cache.stats.unadmitted).toBe(1);
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(2));
    expect(cache.size).toBe(1);
    expect(await readText(cache, 'products', 'a', load)).toEqual(answer(2));
    expect(loads).toBe(2);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 2, unadmitted: 1 });
    // Two readers of one load: the second is the document's second miss, and the answer is stored.
    const shared = controlledLoad();
    const reads = [readText(cache, 'products', 'b', shared.run), readText(cache, 'products', 'b', shared.run)];
    shared.settle(answer(7));
    expect(await Promise.all(reads)).toEqual([answer(7), answer(7)]);
    expect(shared.calls).toBe(1);
    expect(await readText(cache, 'products', 'b', fixed(null))).toEqual(answer(7));
    // A refresh of a document not stored is a miss like another: the first stores nothing.
    expect(await readText(cache, 'products', 'c', fixed(answer(1)), { refresh: true })).toEqual(answer(1));
    expect(await readText(cache, 'products', 'c', fixed(null))).toBeNull();
  });

  it('stores none of a scan of cold ids, and keeps the documents read again', async () => {
    const maxBytes = 64 * 1024;
    const { cache } = await liveCache(maxBytes);
    const body = JSON.stringify({ text: 'x'.repeat(4000) });
    const hot = ['h0', 'h1', 'h2', 'h3', 'h4'];
    for (const id of [...hot, ...hot]) await readText(cache, 'products', id, fixed(answer(1, body)));
    expect(cache.size).toBe(hot.length);
    // 2,000 ids read once, 125 times what the cache holds: stored, they would have evicted the hot ones.
    for (let index = 0; index < 2_000; index++) {
      await readText(cache, 'products', `cold${index}`, fixed(answer(1, body)));
    }
    expect(cache.size).toBe(hot.length);
    expect(cache.stats.evictions.size).toBe(0);
    expect(cache.stats.unadmitted).toBe(hot.length + 2_000);
    const { hits } = cache.stats;
    for (const id of hot) expect(await readText(cache, 'products', id, fixed(null))).toEqual(answer(1, body));
    expect(cache.stats.hits).toBe(hits + hot.length);
  });

  it('keeps each answer as its UTF-8 bytes in a buffer of its own, and counts those bytes', async () => {
    const { cache } = await liveCache();
    const bodies = {
      ascii: JSON.stringify({ name: 'Plain' }),
      accented: JSON.stringify({ name: 'Crème brûlée, 2 × 150 g' }),
      astral: JSON.stringify({ name: '🍮 flan', note: '€'.repeat(100) }),
    };
    let expected = 0;
    for (const [id, body] of Object.entries(bodies)) {
      await readText(cache, 'products', id, fixed(answer(1, body)));
      await readText(cache, 'products', id, fixed(answer(1, body)));
      expected += Buffer.byteLength(body) + `products/${id}`.length + ENTRY_OVERHEAD_BYTES;
      const stored = await cache.read('products', id, fixed(null));
      expect(Buffer.isBuffer(stored?.body)).toBe(true);
      const bytes = stored!.body as Buffer;
      expect(bytes.equals(Buffer.from(body))).toBe(true);
      // Not a slice of the shared pool: its memory is its own.
      expect(bytes.buffer.byteLength).toBe(bytes.byteLength);
    }
    expect(cache.bytes).toBe(expected);
    expect(Buffer.byteLength(bodies.astral)).toBeGreaterThan(bodies.astral.length);
  });

  it('makes one load of concurrent misses of one document', async () => {
    const { cache } = await liveCache();
    const load = controlledLoad();
    const reads = Array.from({ length: 20 }, () => readText(cache, 'products', 'a', load.run));
    load.settle(answer(3));
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 20 }, () => answer(3)));
    expect(load.calls).toBe(1);
  });

  it('clear() forgets every entry at once, and a load that began before it stores nothing', async () => {
    const { cache } = await liveCache();
    await readText(cache, 'products', 'a', fixed(null));
    await readText(cache, 'products', 'a', fixed(answer(1)));
    expect(cache.size).toBe(1);
    // Missed before: this load would store, but it began before the data changed.
    await readText(cache, 'products', 'b', fixed(null));
    const before = controlledLoad();
    const early = readText(cache, 'products', 'b', before.run);
    cache.clear();
    expect(cache.size).toBe(0);
    before.settle(answer(7));
    expect(await early).toEqual(answer(7));
    expect(cache.size).toBe(0);
    expect(cache.live).toBe(true);
    expect(await readText(cache, 'products', 'a', fixed(answer(2)))).toEqual(answer(2));
    expect(cache.stats.resets).toMatchObject({ cleared: 1 });
  });

  it("never stores a load's answer that a write on this instance overtook; later reads load anew", async () => {
    const { cache } = await liveCache();
    const before = controlledLoad();
    const early = readText(cache, 'products', 'a', before.run);
    cache.written([written('products', 'a', 4)]);
    const after = controlledLoad();
    const late = readText(cache, 'products', 'a', after.run);
    expect(after.calls).toBe(1);
    after.settle(answer(4));
    before.settle(answer(3));
    expect(await early).toEqual(answer(3));
    expect(await late).toEqual(answer(4));
    expect(await readText(cache, 'products', 'a', fixed(answer(99)))).toEqual(answer(4));
    // A write evicts what is stored.
    cache.written([written('products', 'a', 5)]);
    expect(await readText(cache, 'products', 'a', fixed(answer(5)))).toEqual(answer(5));
    expect(cache.stats.evictions.write).toBe(1);
  });

  it("evicts a document when the feed reports another writer's change, and a load it overtook stores nothing", async () => {
    const { cache } = await liveCache();
    const lags: number[] = [];
    cache.onInvalidationLag = (seconds) => lags.push(seconds);
    const products = database.db.collection('products');
    const _id = new mongoose.Types.ObjectId();
    const id = _id.toHexString();
    const unvalidated = { bypassDocumentValidation: true };
    await products.insertOne({ _id, version: 1 }, unvalidated);
    await waitFor(() => lags.length === 1, 10_000, 'the insert from the feed');
    // Read twice: stored.
    await readText(cache, 'products', id, fixed(answer(1)));
    expect(await readText(cache, 'products', id, fixed(answer(1)))).toEqual(answer(1));

    await products.updateOne({ _id }, { $set: { version: 2 } }, unvalidated);
    await waitFor(() => lags.length === 2, 10_000, 'the update from the feed');
    expect(cache.stats.evictions.feed).toBe(1);
    expect(cache.size).toBe(0);

    // A load in flight (it read version 2) when the feed reports version 3: its reader gets it, the cache does not.
    const overtaken = controlledLoad();
    const read = readText(cache, 'products', id, overtaken.run);
    await products.updateOne({ _id }, { $set: { version: 3 } }, unvalidated);
    await waitFor(() => lags.length === 3, 10_000, 'the second update from the feed');
    overtaken.settle(answer(2));
    expect(await read).toEqual(answer(2));
    expect(cache.size).toBe(0);
    expect(await readText(cache, 'products', id, fixed(answer(3)))).toEqual(answer(3));
    expect(await readText(cache, 'products', id, fixed(answer(99)))).toEqual(answer(3));

    // A load the feed overtook (version 4) and then a write here (version 5): it read 4, and stores nothing.
    const twice = controlledLoad();
    const reading = readText(cache, 'products', id, twice.run, { refresh: true });
    await products.updateOne({ _id }, { $set: { version: 4 } }, unvalidated);
    await waitFor(() => lags.length === 4, 10_000, 'the third update from the feed');
    cache.written([written('products', id, 5)]);
    twice.settle(answer(4));
    expect(await reading).toEqual(answer(4));
    expect(cache.size).toBe(0);
    expect(lags.every((seconds) => seconds >= 0 && seconds < 10)).toBe(true);
  });

  it('empties itself when its subscription ends, and stores nothing until the feed runs again', async () => {
    const { cache, feed } = await liveCache();
    await readText(cache, 'products', 'a', fixed(answer(1)));
    await readText(cache, 'products', 'a', fixed(answer(1)));
    const overtaken = controlledLoad();
    const read = readText(cache, 'products', 'b', overtaken.run);
    expect(cache.size).toBe(1);
    await feed.stop();
    expect(cache.live).toBe(false);
    expect(cache.size).toBe(0);
    expect(cache.stats.resets).toEqual({ 'feed-stopped': 1 });
    overtaken.settle(answer(1));
    await read;
    await readText(cache, 'products', 'a', fixed(answer(2)));
    expect(cache.size).toBe(0);
    // A feed started again: it follows it and stores again.
    const next = await startFeed();
    cache.follow(next);
    await waitFor(() => cache.live, 10_000, 'the cache to follow the new feed');
    await readText(cache, 'products', 'a', fixed(answer(3)));
    expect(await readText(cache, 'products', 'a', fixed(answer(4)))).toEqual(answer(3));
  });

  it("empties itself when the feed's stream goes silent, and stores nothing until it answers again", async () => {
    // The feed reaches mongod through a proxy the test freezes: its getMores stop answering.
    const proxy = await freezableProxy(new URL(inject('mongoUri').replace(/^mongodb:/, 'http:')));
    try {
      const client = new mongoose.mongo.MongoClient(proxy.uri, { appName: 'cache-silence-test', maxPoolSize: 2 });
      clients.push(client);
      const feed = new ChangeFeed(client, database.name, { collections: COLLECTIONS, maxAwaitMs: 100 }, silent);
      await feed.start();
      feeds.push(feed);
      const cache = new DocumentCache({ maxBytes: 1_048_576, collections: COLLECTIONS }, silent);
      caches.push(cache);
      cache.follow(feed);
      await waitFor(() => cache.live, 10_000, 'the cache to follow the feed');
      await readText(cache, 'products', 'a', fixed(answer(1)));
      await readText(cache, 'products', 'a', fixed(answer(1)));
      expect(await readText(cache, 'products', 'a', fixed(answer(2)))).toEqual(answer(1));

      proxy.freeze();
      // The stream answers every 100 ms while it runs; past that and the cache's margin, it is silent.
      await waitFor(() => !feed.answeredWithin(feed.awaitMs + 1_500), 15_000, 'the feed to go silent');
      expect(await readText(cache, 'products', 'a', fixed(answer(3)))).toEqual(answer(3));
      expect(cache.size).toBe(0);
      expect(cache.stats.resets).toEqual({ 'feed-silent': 1 });
      // Silent, it serves from its load and keeps nothing.
      expect(await readText(cache, 'products', 'a', fixed(answer(4)))).toEqual(answer(4));
      expect(cache.size).toBe(0);

      proxy.thaw();
      await waitFor(() => cache.live, 30_000, 'the feed to answer again');
      await readText(cache, 'products', 'a', fixed(answer(5)));
      expect(await readText(cache, 'products', 'a', fixed(answer(6)))).toEqual(answer(5));
      expect(cache.stats.resets).toEqual({ 'feed-silent': 1 });
    } finally {
      proxy.thaw();
      for (const cache of caches.splice(0)) cache.stop();
      for (const feed of feeds.splice(0)) await feed.stop();
      for (const client of clients.splice(0)) await client.close();
      await proxy.close();
    }
  });

  it('keeps its calculated size within its bound, the least recently used out first', async () => {
    const maxBytes = 64 * 1024;
    const { cache } = await liveCache(maxBytes);
    const body = JSON.stringify({ text: 'x'.repeat(4000) });
    // Each read twice: stored.
    await readText(cache, 'products', 'first', fixed(answer(1, body)));
    await readText(cache, 'products', 'first', fixed(answer(1, body)));
    for (let index = 0; index < 100; index++) {
      await readText(cache, 'products', `d${index}`, fixed(answer(1, body)));
      await readText(cache, 'products', `d${index}`, fixed(answer(1, body)));
      // The first is read over and over: it stays.
      expect(await readText(cache, 'products', 'first', fixed(null))).not.toBeNull();
      expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
    }
    expect(cache.bytes).toBeGreaterThan(maxBytes / 2);
    expect(cache.stats.evictions.size).toBeGreaterThan(80);
    expect(await readText(cache, 'products', 'd0', fixed(null))).toBeNull();
  });
});
