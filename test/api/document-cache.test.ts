// Reads by id through the document cache, over HTTP against the replica set: a read after a
// document's second miss and a 304 cost no query, and send the very bytes of the first 200; ids read
// once are not kept; Cache-Control: no-cache reads MongoDB and refreshes what is kept; every kind of
// write on this instance is read back at once (1,000 writes and reads interleaved, none older than
// the last acknowledged write); another instance's write is not served once this instance's feed
// has passed it; a feed that ends empties the cache; its size stays within CACHE_MAX_MB; and
// CACHE_MAX_MB=0 turns it off.

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import mongoose from 'mongoose';
import type { App } from '../../src/app.ts';
import type { Change } from '../../src/data/change-feed.ts';
import { Product } from '../../src/domain/entities/index.ts';
import { buildAppOn, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop } from '../helpers/shop.ts';

const { ObjectId } = mongoose.Types;
const MERGE_PATCH = { 'content-type': 'application/merge-patch+json' };

let sequence = 0;
const nextSku = () => `CACHE-${process.pid}-${String(++sequence).padStart(5, '0')}`;

/** An app whose cache follows its feed: from here on it stores. */
async function following(app: App): Promise<void> {
  await waitForDatabase(app);
  await waitFor(() => app.stores.cache?.live === true, 60_000, 'the document cache to follow the change feed');
}

/** The queries reads by id make on `collection`. */
const findsOf = (app: App, collection: string) => vi.spyOn(app.stores.repositoryOf(collection), 'findById');

describe('reads by id through the document cache', () => {
  let t: TestApp;
  const db = () => t.app.db.connection.db!;
  const createProduct = async (app = t.app, fields: Record<string, unknown> = {}) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/products',
      payload: { ...Product.example, sku: nextSku(), ...fields },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string; version: number }>();
  };
  const metric = async (app: App, line: string) => {
    const text = (await app.inject({ url: '/metrics' })).body;
    const found = text.split('\n').find((row) => row.startsWith(`${line} `));
    return found === undefined ? undefined : Number(found.slice(line.length + 1));
  };

  beforeAll(async () => {
    t = await buildTestApp('document_cache');
    await following(t.app);
  });
  afterAll(() => t.app.close());

  it('answers a repeated read and a 304 from memory, byte for byte what MongoDB gives', async () => {
    const { id } = await createProduct();
    // Its first miss: the next one stores.
    await t.app.inject({ url: `/v1/products/${id}` });
    const finds = findsOf(t.app, 'products');
    try {
      const first = await t.app.inject({ url: `/v1/products/${id}` });
      expect(first.statusCode).toBe(200);
      expect(first.headers).toMatchObject({
        etag: '"1"',
        'cache-control': 'private, no-cache',
        'content-type': 'application/json; charset=utf-8',
      });
      const again = await t.app.inject({ url: `/v1/products/${id}` });
      expect(again.body).toBe(first.body);
      expect(again.headers).toMatchObject({ etag: '"1"', 'cache-control': 'private, no-cache' });
      const unchanged = await t.app.inject({ url: `/v1/products/${id}`, headers: { 'if-none-match': '"1"' } });
      expect(unchanged.statusCode).toBe(304);
      expect(unchanged.body).toBe('');
      expect(unchanged.headers).toMatchObject({ etag: '"1"', 'cache-control': 'private, no-cache' });
      expect(finds).toHaveBeenCalledTimes(1);

      // Cache-Control: no-cache reads MongoDB, and what it read is kept for the next reads.
      const fresh = await t.app.inject({ url: `/v1/products/${id}`, headers: { 'cache-control': 'no-cache' } });
      expect(fresh.body).toBe(first.body);
      expect(finds).toHaveBeenCalledTimes(2);
      await t.app.inject({ url: `/v1/products/${id}` });
      expect(finds).toHaveBeenCalledTimes(2);
    } finally {
      finds.mockRestore();
    }
    expect(await metric(t.app, 'storekeeper_cache_hits_total')).toBeGreaterThanOrEqual(3);
    expect(await metric(t.app, 'storekeeper_cache_misses_total')).toBeGreaterThanOrEqual(2);
    // An unknown id is a 404 as before, and not remembered.
    const missing = await t.app.inject({ url: `/v1/products/${new ObjectId().toHexString()}` });
    expect(missing.statusCode).toBe(404);
  });

  it('sends from memory the very bytes of the 200 that MongoDB gave, and keeps no id read once', async () => {
    const { id } = await createProduct(t.app, { name: 'Crème brûlée 🍮', description: '€ '.repeat(200) });
    const cache = t.app.stores.cache!;
    const first = await t.app.inject({ url: `/v1/products/${id}` });
    const second = await t.app.inject({ url: `/v1/products/${id}` });
    const finds = findsOf(t.app, 'products');
    try {
      const hit = await t.app.inject({ url: `/v1/products/${id}` });
      expect(finds).not.toHaveBeenCalled();
      for (const res of [second, hit]) {
        expect(res.rawPayload.equals(first.rawPayload)).toBe(true);
        for (const header of ['content-type', 'content-length', 'etag', 'cache-control']) {
          expect(res.headers[header], header).toBe(first.headers[header]);
        }
      }
      expect(Number(hit.headers['content-length'])).toBe(first.rawPayload.byteLength);
      expect(first.rawPayload.byteLength).toBeGreaterThan(first.body.length);
    } finally {
      finds.mockRestore();
    }
    // A scan: ids read once each are not kept, and what was kept stays.
    const scanned = await Promise.all(Array.from({ length: 20 }, () => createProduct()));
    const { size } = cache;
    for (const { id: cold } of scanned) {
      expect((await t.app.inject({ url: `/v1/products/${cold}` })).statusCode).toBe(200);
    }
    expect(cache.size).toBe(size);
    expect(await metric(t.app, 'storekeeper_cache_unadmitted_misses_total')).toBeGreaterThanOrEqual(scanned.length);
    const hits = cache.stats.hits;
    await t.app.inject({ url: `/v1/products/${id}` });
    expect(cache.stats.hits).toBe(hits + 1);
  });

  it('reads back at once every kind of write made on this instance', async () => {
    const s = shop(t.app);
    const sku = nextSku();
    const product = await s.product(sku);
    const customer = await s.customer();
    const stock = await s.stock(sku, 'AMS-1', 50);
    const kept: [string, string][] = [
      ['products', product.id],
      ['customers', customer.id],
      ['stock', stock.id],
    ];
    /** Reads every document twice (so each is kept), runs the write, then each read must be what MongoDB holds. */
    const readsBack = async (write: () => Promise<unknown>) => {
      for (const [collection, id] of [...kept, ...kept]) await t.app.inject({ url: `/v1/${collection}/${id}` });
      await write();
      for (const [collection, id] of kept) {
        const stored = await db()
          .collection(collection)
          .findOne({ _id: new ObjectId(id) });
        const res = await t.app.inject({ url: `/v1/${collection}/${id}` });
        if (stored === null) {
          expect(res.statusCode, `${collection} ${id}`).toBe(404);
        } else {
          expect(res.statusCode, `${collection} ${id}: ${res.body}`).toBe(200);
          expect(res.json<{ version: number }>().version, `${collection} ${id}`).toBe(stored.version);
        }
      }
    };
    const ok =
      (status: number) =>
      <R extends { statusCode: number; body: string }>(res: R) => {
        expect(res.statusCode, res.body).toBe(status);
        return res;
      };

    let orderId = '';
    await readsBack(async () => {
      const placed = ok(201)(await s.place(customer.id, 'AMS-1', [{ sku, quantity: 2 }]));
      orderId = placed.json<{ id: string }>().id;
      kept.push(['orders', orderId]);
    });
    await readsBack(async () => ok(200)(await s.act(orderId, 'pay')));
    await readsBack(async () => ok(200)(await s.act(orderId, 'ship')));
    await readsBack(async () =>
      ok(200)(
        await t.app.inject({
          method: 'POST',
          url: '/v1/stock/restock',
          payload: { sku, warehouse: 'AMS-1', quantity: 5 },
        }),
      ),
    );
    await readsBack(async () =>
      ok(200)(
        await t.app.inject({
          method: 'POST',
          url: '/v1/batch',
          payload: {
            operations: [
              { op: 'patch', collection: 'customers', id: customer.id, patch: { name: 'Ada King' } },
              { op: 'patch', collection: 'products', id: product.id, patch: { name: 'Renamed' } },
            ],
          },
        }),
      ),
    );
    // Atomic writes (no Idempotency-Key), and the same through a transaction (with one).
    await readsBack(async () =>
      ok(200)(
        await t.app.inject({
          method: 'PATCH',
          url: `/v1/products/${product.id}`,
          headers: MERGE_PATCH,
          payload: { name: 'Patched' },
        }),
      ),
    );
    await readsBack(async () =>
      ok(200)(
        await t.app.inject({
          method: 'PATCH',
          url: `/v1/customers/${customer.id}`,
          headers: { ...MERGE_PATCH, 'idempotency-key': `cache-${process.pid}-${++sequence}` },
          payload: { name: 'Ada Keyed' },
        }),
      ),
    );
    await readsBack(async () => {
      const current = await t.app.inject({ url: `/v1/products/${product.id}` });
      const {
        id: _id,
        version: _version,
        createdAt: _c,
        updatedAt: _u,
        ...fields
      } = current.json<Record<string, unknown>>();
      ok(200)(
        await t.app.inject({ method: 'PUT', url: `/v1/products/${product.id}`, payload: { ...fields, name: 'Put' } }),
      );
    });
    const doomed = await createProduct();
    kept.push(['products', doomed.id]);
    await readsBack(async () => ok(204)(await t.app.inject({ method: 'DELETE', url: `/v1/products/${doomed.id}` })));
  });

  it('never answers a read older than the last write acknowledged before it (1,000 interleaved)', async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, async () => (await createProduct()).id));
    const acknowledged = new Map(ids.map((id) => [id, 1]));
    const older: string[] = [];
    let operations = 0;
    const worker = async (index: number) => {
      while (operations < 1000) {
        const id = ids[(index + operations) % ids.length]!;
        const write = operations++ % 2 === 0;
        if (write) {
          const res = await t.app.inject({
            method: 'PATCH',
            url: `/v1/products/${id}`,
            headers: MERGE_PATCH,
            payload: { name: `Name ${operations}` },
          });
          expect(res.statusCode, res.body).toBe(200);
          const { version } = res.json<{ version: number }>();
          acknowledged.set(id, Math.max(acknowledged.get(id)!, version));
        } else {
          const floor = acknowledged.get(id)!;
          const res = await t.app.inject({ url: `/v1/products/${id}` });
          const { version } = res.json<{ version: number }>();
          if (version < floor) older.push(`${id}: read ${version} after ${floor} was acknowledged`);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, index) => worker(index)));
    expect(older).toEqual([]);
    expect(t.app.stores.cache!.stats.hits).toBeGreaterThan(0);
  });

  describe('with another instance on the same database', () => {
    let other: TestApp;
    beforeAll(async () => {
      other = await buildAppOn(t.dbName, t.key, { CACHE_MAX_MB: '1' });
      await following(other.app);
    });
    afterAll(() => other.app.close());

    /** Resolves once `app`'s feed has passed the change of `id` to `version` (the cache hears it first). */
    const passed = async (app: App, id: string, version: number) => {
      const seen: Change[] = [];
      const subscription = await app.stores.feed!.subscribe({
        collections: ['products'],
        onChange: (change) => {
          seen.push(change);
          return true;
        },
        onEnd: () => undefined,
      });
      return {
        done: async () => {
          await waitFor(() => seen.some((c) => c.id === id && c.version === version), 10_000, `${id} v${version}`);
          subscription.close();
        },
      };
    };

    it("serves another instance's write once its feed has passed it, never the older answer", async () => {
      const { id } = await createProduct();
      const read = async (app: App) => (await app.inject({ url: `/v1/products/${id}` })).json<{ version: number }>();
      // Read twice: kept.
      await read(other.app);
      expect((await read(other.app)).version).toBe(1);
      const finds = findsOf(other.app, 'products');
      try {
        expect((await read(other.app)).version).toBe(1);
        expect(finds).not.toHaveBeenCalled();
        const change = await passed(other.app, id, 2);
        const patched = await t.app.inject({
          method: 'PATCH',
          url: `/v1/products/${id}`,
          headers: MERGE_PATCH,
          payload: { name: 'Elsewhere' },
        });
        expect(patched.json<{ version: number }>().version).toBe(2);
        await change.done();
        expect((await read(other.app)).version).toBe(2);
        expect(finds).toHaveBeenCalledTimes(1);
      } finally {
        finds.mockRestore();
      }
      expect(await metric(other.app, 'storekeeper_cache_evictions_total{cause="feed"}')).toBeGreaterThanOrEqual(1);
      const lagCount = await metric(other.app, 'storekeeper_cache_invalidation_lag_seconds_count');
      expect(lagCount).toBeGreaterThanOrEqual(1);
    });

    it('keeps within CACHE_MAX_MB, the least recently used out first', async () => {
      // Some 5 KB each as UTF-8: 24 rounds of 10 are over a megabyte.
      const description = 'long text '.repeat(490);
      const ids: string[] = [];
      for (let round = 0; round < 24; round++) {
        const created = await Promise.all(Array.from({ length: 10 }, () => createProduct(t.app, { description })));
        ids.push(...created.map((product) => product.id));
      }
      const cache = other.app.stores.cache!;
      // Each read twice: kept.
      for (const id of ids.flatMap((id) => [id, id])) {
        expect((await other.app.inject({ url: `/v1/products/${id}` })).statusCode).toBe(200);
        expect(cache.bytes).toBeLessThanOrEqual(1_048_576);
      }
      expect(cache.stats.evictions.size).toBeGreaterThan(0);
      expect(cache.bytes).toBeGreaterThan(1_048_576 / 2);
      expect(await metric(other.app, 'storekeeper_cache_bytes')).toBeLessThanOrEqual(1_048_576);
      expect(await metric(other.app, 'storekeeper_cache_evictions_total{cause="size"}')).toBeGreaterThan(0);
    });

    it('empties itself when its feed ends, and then reads every document from MongoDB', async () => {
      const { id } = await createProduct();
      await other.app.inject({ url: `/v1/products/${id}` });
      await other.app.inject({ url: `/v1/products/${id}` });
      const cache = other.app.stores.cache!;
      expect(cache.size).toBeGreaterThan(0);
      await other.app.stores.feed!.stop();
      expect(cache.live).toBe(false);
      expect(cache.size).toBe(0);
      const finds = findsOf(other.app, 'products');
      try {
        for (let read = 0; read < 3; read++) {
          const res = await other.app.inject({ url: `/v1/products/${id}` });
          expect(res.statusCode).toBe(200);
        }
        expect(finds).toHaveBeenCalledTimes(3);
        expect(cache.size).toBe(0);
      } finally {
        finds.mockRestore();
      }
      expect(await metric(other.app, 'storekeeper_cache_resets_total{reason="feed-stopped"}')).toBe(1);
    });
  });

  it('is off with CACHE_MAX_MB=0: every read queries MongoDB, answers as before', async () => {
    const off = await buildAppOn(t.dbName, t.key, { CACHE_MAX_MB: '0' });
    try {
      await waitForDatabase(off.app);
      expect(off.app.stores.cache).toBeUndefined();
      const { id } = await createProduct();
      const finds = findsOf(off.app, 'products');
      try {
        const first = await off.app.inject({ url: `/v1/products/${id}` });
        const second = await off.app.inject({ url: `/v1/products/${id}` });
        expect(second.body).toBe(first.body);
        expect(first.headers).toMatchObject({ etag: '"1"', 'cache-control': 'private, no-cache' });
        const unchanged = await off.app.inject({ url: `/v1/products/${id}`, headers: { 'if-none-match': '"1"' } });
        expect(unchanged.statusCode).toBe(304);
        expect(finds).toHaveBeenCalledTimes(3);
      } finally {
        finds.mockRestore();
      }
      expect(await metric(off.app, 'storekeeper_cache_hits_total')).toBeUndefined();
    } finally {
      await off.app.close();
    }
  });
});
