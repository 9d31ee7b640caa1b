// The same order flow under jest, from plain JavaScript: storekeeper is ESM only, and jest's own
// ESM support (node --experimental-vm-modules) loads it without a transform. The JSDoc types are
// checked by `npm run typecheck` against the package's declarations, as the TypeScript files are.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createClient, isProblem, unwrap } from 'storekeeper/client';
import { startShop } from 'storekeeper/testing';

const MUG = /** @type {const} */ ({
  sku: 'MUG-ENAMEL',
  name: 'Enamel mug',
  price: { amount: 1200, currency: 'EUR' },
  category: 'kitchen',
  status: 'active',
});

describe('the order flow', () => {
  /** @type {import('storekeeper/testing').Shop} */
  let shop;

  beforeAll(async () => {
    shop = await startShop({
      seed: { products: 30, customers: 5 },
      fixtures: {
        products: [MUG],
        customers: [{ email: 'ada@example.com', name: 'Ada Lovelace' }],
        stock: [{ sku: MUG.sku, warehouse: 'AMS-1', available: 5 }],
      },
      // Swagger UI requires an ESM-only package from CommonJS, which jest's module loader refuses
      // before Node 24.9 (Node itself allows it since 20.19); these tests never read /docs.
      env: { DOCS_ENABLED: 'false' },
    });
  }, 120_000);
  afterAll(async () => {
    await shop.stop();
  });
  beforeEach(async () => {
    await shop.reset();
  });

  it('lists the catalog a page at a time', async () => {
    /** @type {string[]} */
    const skus = [];
    for await (const page of shop.client.pages('/v1/products', { limit: 10, sort: 'name' })) {
      expect(page.items.length).toBeLessThanOrEqual(10);
      skus.push(...page.items.flatMap((product) => product.sku ?? []));
    }
    expect(skus).toHaveLength(31);
    expect(new Set(skus).size).toBe(31);
    expect(skus).toContain(MUG.sku);
  });

  it('a new customer orders (the answer lost once, the retry placing nothing twice), pays and is shipped', async () => {
    const grace = await unwrap(
      shop.client.POST('/v1/customers', { body: { email: 'grace@example.com', name: 'Grace Hopper' } }),
    );

    // The first answer of the order is lost on its way back: the client sends the request again
    // with the same Idempotency-Key, and the service answers with the order it placed the first time.
    let lost = 0;
    const flaky = createClient({
      baseUrl: shop.url,
      apiKey: shop.apiKey,
      fetch: async (request) => {
        const response = await fetch(request);
        if (request.method !== 'POST' || lost++ > 0) return response;
        await response.body?.cancel();
        throw new TypeError('fetch failed: connection reset');
      },
    });
    const placed = await flaky.POST('/v1/orders', {
      body: { customerId: grace.id, warehouse: 'AMS-1', lines: [{ sku: MUG.sku, quantity: 2 }] },
    });
    expect(placed.response.status).toBe(201);
    expect(placed.response.headers.get('idempotency-replayed')).toBe('true');
    const order = await unwrap(placed);
    expect(order).toMatchObject({ status: 'placed', totals: { itemCount: 2, subtotal: { amount: 2400 } } });
    expect(await shop.db.collection('orders').countDocuments()).toBe(1);

    const paid = await unwrap(shop.client.POST('/v1/orders/{id}/pay', { params: { path: { id: order.id } } }));
    const shipped = await unwrap(
      shop.client.POST('/v1/orders/{id}/ship', {
        params: { path: { id: order.id }, header: { 'if-match': `"${paid.version}"` } },
      }),
    );
    expect(shipped.status).toBe('shipped');

    // An unchanged order read again with its ETag: 304, no body.
    const read = await shop.client.GET('/v1/orders/{id}', { params: { path: { id: order.id } } });
    const again = await shop.client.GET('/v1/orders/{id}', {
      params: { path: { id: order.id }, header: { 'if-none-match': read.response.headers.get('etag') ?? '' } },
    });
    expect(again.response.status).toBe(304);

    // Acting on the version read before it was shipped: 412, nothing changes.
    const stale = await shop.client.POST('/v1/orders/{id}/deliver', {
      params: { path: { id: order.id }, header: { 'if-match': `"${paid.version}"` } },
    });
    expect(stale.response.status).toBe(412);
    expect(isProblem(stale.error, 'precondition-failed')).toBe(true);
  });

  it('an order larger than the shelf is a 409 whose shortages are typed', async () => {
    const ada = await shop.db.collection('customers').findOne({ email: 'ada@example.com' });
    if (ada === null) throw new Error('the fixture customer is missing');
    const refused = await shop.client.POST('/v1/orders', {
      body: { customerId: ada._id.toHexString(), warehouse: 'AMS-1', lines: [{ sku: MUG.sku, quantity: 8 }] },
      params: { header: { 'idempotency-key': randomUUID() } },
    });
    expect(refused.response.status).toBe(409);
    if (!isProblem(refused.error, 'insufficient-stock')) throw new Error('not a shortage', { cause: refused.error });
    expect(refused.error.shortages).toEqual([{ sku: MUG.sku, warehouse: 'AMS-1', requested: 8, available: 5 }]);
    expect(await shop.db.collection('orders').countDocuments()).toBe(0);
  });
});
