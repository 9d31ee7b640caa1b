// storekeeper/testing's startShop as another project's tests use it: fixtures checked against the
// declarations, reset back to the seed and fixtures with the schema kept, and several shops in
// one process, each stopped for good. Most shops here use the run's replica set (mongodbUri); the
// last test starts mongods of their own, as startShop does by default.

import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import mongoose from 'mongoose';
import { FixtureError, startShop, type Fixtures, type Shop } from '../../src/testing/index.ts';

const PRODUCT = {
  sku: 'KIT-MUG-1',
  name: 'Enamel mug',
  price: { amount: 1200, currency: 'EUR' },
  category: 'kitchen',
  status: 'active' as const,
};
const FIXTURES: Fixtures = {
  products: [PRODUCT],
  customers: [{ email: 'grace@example.com', name: 'Grace Hopper' }],
  stock: [{ sku: PRODUCT.sku, warehouse: 'AMS-1', available: 10 }],
  orders: [
    { customer: 'GRACE@example.com', warehouse: 'AMS-1', lines: [{ sku: PRODUCT.sku, quantity: 3 }], status: 'paid' },
  ],
};

describe('startShop', () => {
  const shops: Shop[] = [];
  afterAll(async () => {
    await Promise.all(shops.map((shop) => shop.stop()));
  });
  const start = async (options: Parameters<typeof startShop>[0] = {}) => {
    const shop = await startShop({ mongodbUri: inject('mongoUri'), ...options });
    shops.push(shop);
    return shop;
  };

  it('refuses fixtures the declarations refuse, naming each field and why, before starting anything', async () => {
    const fixtures = {
      products: [PRODUCT, { ...PRODUCT, sku: 'bad sku', price: { amount: 12.5, currency: 'EUR' } }],
      customers: [{ email: 'not an e-mail', name: 'X', shoeSize: 42 }],
      orders: [{ customer: 'grace@example.com', warehouse: 'AMS-1', lines: [] }],
    } as unknown as Fixtures;
    const started = Date.now();
    const error = await startShop({ fixtures }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(FixtureError);
    expect((error as FixtureError).problems).toEqual(
      expect.arrayContaining([
        { pointer: '/products/1/sku', message: expect.stringContaining('pattern') },
        { pointer: '/products/1/price/amount', message: 'must be integer' },
        { pointer: '/customers/0/email', message: 'must match format "email"' },
        { pointer: '/customers/0/shoeSize', message: 'is not an allowed property' },
        { pointer: '/orders/0/lines', message: expect.stringContaining('fewer than 1') },
      ]),
    );
    expect((error as Error).message).toContain('/products/1/price/amount must be integer');
    // No mongod was started for fixtures that could never be written (one takes seconds here).
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('refuses fixtures the shop refuses (an order short of stock) with the problem it answered', async () => {
    const error = await start({
      fixtures: {
        ...FIXTURES,
        orders: [{ customer: 'grace@example.com', warehouse: 'AMS-1', lines: [{ sku: PRODUCT.sku, quantity: 11 }] }],
      },
    }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(FixtureError);
    expect((error as FixtureError).problems).toEqual([
      { pointer: '/orders/0', message: expect.stringMatching(/^refused by the shop \(409 insufficient-stock\)/) },
    ]);
  });

  it('writes the seed and the fixtures through the shop, and serves them to its key and typed client', async () => {
    const shop = await start({ seed: { products: 20, customers: 5 }, fixtures: FIXTURES });
    expect(shop.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const products = await shop.client.GET('/v1/products', { params: { query: { limit: 100 } } });
    expect(products.response.status).toBe(200);
    expect(products.data?.items.map((item) => item.sku)).toContain(PRODUCT.sku);
    expect(products.data?.items).toHaveLength(21);

    // Placed by the workflow, then paid: stock reserved, prices from the catalog, stats counted.
    const [order] = await shop.db.collection('orders').find().toArray();
    expect(order).toMatchObject({
      status: 'paid',
      totals: { itemCount: 3, subtotal: { amount: 3600, currency: 'EUR' } },
    });
    expect(await shop.db.collection('stock').findOne({ sku: PRODUCT.sku })).toMatchObject({
      available: 7,
      reserved: 3,
    });
    expect(await shop.db.collection('customers').findOne({ email: 'grace@example.com' })).toMatchObject({
      stats: { orderCount: 1 },
    });

    const raw = await fetch(`${shop.url}/v1/customers?limit=1`, {
      headers: { authorization: `Bearer ${shop.apiKey}` },
    });
    expect(raw.status).toBe(200);
  });

  it('gives its key the scopes asked for', async () => {
    const shop = await start({ scopes: ['products:read'] });
    expect((await shop.client.GET('/v1/products')).response.status).toBe(200);
    const refused = await shop.client.POST('/v1/products', { body: PRODUCT });
    expect(refused.response.status).toBe(403);
  });

  it('reset puts back the seed and fixtures as first written and empties the bookkeeping, keeping collections, validators, indexes and the key', async () => {
    const shop = await start({ seed: { products: 20, customers: 5 }, fixtures: FIXTURES });
    const schema = async () => {
      const collections = (await shop.db.listCollections().toArray()) as { name: string; options?: unknown }[];
      const indexes = await Promise.all(
        collections.map(async (c) => [c.name, await shop.db.collection(c.name).indexes()] as const),
      );
      return { collections: collections.map((c) => [c.name, c.options]), indexes };
    };
    const counts = async () =>
      Object.fromEntries(
        await Promise.all(
          ['products', 'customers', 'stock', 'orders'].map(
            async (name) => [name, await shop.db.collection(name).countDocuments()] as const,
          ),
        ),
      );
    const before = await schema();
    const initial = await counts();
    const documents = async () =>
      Promise.all(
        ['products', 'customers', 'stock', 'orders'].map((name) => shop.db.collection(name).find().toArray()),
      );
    const original = await documents();

    const created = await shop.client.POST('/v1/products', {
      body: { ...PRODUCT, sku: 'TEMP-1' },
      headers: { 'Idempotency-Key': 'create-temp-1' },
    });
    expect(created.response.status).toBe(201);
    expect((await counts()).products).toBe(initial.products! + 1);

    const [mug] = (await shop.client.GET('/v1/products', { params: { query: { sku: PRODUCT.sku } } })).data!.items;
    await shop.client.PATCH('/v1/products/{id}', { params: { path: { id: mug!.id } }, body: { name: 'Changed' } });
    await shop.db.collection('customers').deleteOne({ email: 'grace@example.com' });

    await shop.reset();

    expect(await counts()).toEqual(initial);
    // The seed and fixtures as first written: same ids, same versions, same contents.
    expect(await documents()).toEqual(original);
    expect(await schema()).toEqual(before);
    expect(await shop.db.collection('idempotency_records').countDocuments()).toBe(0);
    // What the audit trail holds is what the fixtures wrote again, nothing from before.
    const audited = await shop.db.collection('audit_events').find().toArray();
    expect(audited.map((entry) => entry.requestId)).toEqual(audited.map(() => 'startShop-fixtures'));
    // The key still works; the key's retry of the create is a new create, not a replay of the removed one.
    const again = await shop.client.POST('/v1/products', {
      body: { ...PRODUCT, sku: 'TEMP-1' },
      headers: { 'Idempotency-Key': 'create-temp-1' },
    });
    expect(again.response.status).toBe(201);
    expect(again.data?.id).not.toBe(created.data?.id);
  });

  it('after a reset, a document read (and cached) before it is never served: removed or as the seed wrote it', async () => {
    const appName = `reset-cache-${Date.now()}`;
    const shop = await start({ seed: { products: 5, customers: 1 }, env: { MONGODB_APP_NAME: appName } });
    const [seeded] = (await shop.client.GET('/v1/products', { params: { query: { limit: 1 } } })).data!.items;
    const id = (await shop.client.POST('/v1/products', { body: { ...PRODUCT, sku: 'GONE-1' } })).data!.id;
    const read = (documentId: string) => shop.client.GET('/v1/products/{id}', { params: { path: { id: documentId } } });
    expect(
      (
        await shop.client.PATCH('/v1/products/{id}', {
          params: { path: { id: seeded!.id } },
          body: { name: 'Renamed in a test' },
          headers: { 'content-type': 'application/merge-patch+json' },
        })
      ).response.status,
    ).toBe(200);

    // The change feed, which tells the document cache of writes made behind the service, is held
    // for 1.5 s (less than the silence after which the cache stops trusting it): the reset's
    // deletions reach the cache only after the reads below.
    const admin = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
    try {
      await admin.db('admin').command({
        configureFailPoint: 'failCommand',
        mode: { times: 1 },
        data: { failCommands: ['getMore'], appName: `${appName}-feed`, blockConnection: true, blockTimeMS: 1_500 },
      });
      // A write ends the feed's waiting getMore, so the held one is the next.
      await shop.client.POST('/v1/products', { body: { ...PRODUCT, sku: 'WAKE-1' } });
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Read twice: the second answer comes from the document cache.
      for (let again = 0; again < 2; again++) {
        expect((await read(id)).response.status).toBe(200);
        expect((await read(seeded!.id)).data?.name).toBe('Renamed in a test');
      }

      await shop.reset();

      expect((await read(id)).response.status).toBe(404);
      expect((await read(seeded!.id)).data).toMatchObject({ name: seeded!.name, version: seeded!.version });
    } finally {
      await admin.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
      await admin.close();
    }
  });
});

describe('startShop with mongods of its own', () => {
  it('runs two shops at once without collisions, stops each for good (twice is fine), and starts again after', async () => {
    const starts = await Promise.allSettled([startShop({ seed: { products: 3, customers: 1 } }), startShop()]);
    const started = starts.flatMap((start) => (start.status === 'fulfilled' ? [start.value] : []));
    const [one, two] = started;
    try {
      if (one === undefined || two === undefined)
        throw starts.find((start) => start.status === 'rejected')?.reason ?? new Error('no shop');
      expect(one.url).not.toBe(two.url);
      expect(one.apiKey).not.toBe(two.apiKey);
      expect((await one.client.POST('/v1/products', { body: PRODUCT })).response.status).toBe(201);
      expect(await one.db.collection('products').countDocuments()).toBe(4);
      expect(await two.db.collection('products').countDocuments()).toBe(0);
      // Each key belongs to its own shop.
      const foreign = await fetch(`${two.url}/v1/products`, { headers: { authorization: `Bearer ${one.apiKey}` } });
      expect(foreign.status).toBe(401);
    } finally {
      await Promise.all(started.map((shop) => shop.stop()));
    }
    await one.stop();
    await expect(fetch(`${one.url}/health/live`)).rejects.toThrow();

    const three = await startShop();
    try {
      expect((await three.client.GET('/health/ready')).response.status).toBe(200);
    } finally {
      await three.stop();
    }
    // Three mongods under Wine, two at once, on cores the rest of the suite shares.
  }, 240_000);
});
