// The same order flow under node:test (run through tsx): storekeeper/testing needs no test runner
// of its own, only a before and an after.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createClient, isProblem, unwrap } from 'storekeeper/client';
import { startShop, type Shop } from 'storekeeper/testing';

const MUG = {
  sku: 'MUG-ENAMEL',
  name: 'Enamel mug',
  price: { amount: 1200, currency: 'EUR' },
  category: 'kitchen',
  status: 'active',
} as const;

void describe('the order flow', () => {
  let shop: Shop;

  before(async () => {
    shop = await startShop({
      seed: { products: 30, customers: 5 },
      fixtures: {
        products: [MUG],
        customers: [{ email: 'ada@example.com', name: 'Ada Lovelace' }],
        stock: [{ sku: MUG.sku, warehouse: 'AMS-1', available: 5 }],
      },
    });
  });
  after(async () => {
    await shop.stop();
  });
  beforeEach(async () => {
    await shop.reset();
  });

  void it('lists the catalog a page at a time', async () => {
    const skus: string[] = [];
    for await (const page of shop.client.pages('/v1/products', { limit: 10, sort: 'name' })) {
      assert.ok(page.items.length <= 10);
      skus.push(...page.items.flatMap((product) => product.sku ?? []));
    }
    assert.equal(skus.length, 31);
    assert.equal(new Set(skus).size, 31);
  });

  void it('a new customer orders (the answer lost once, the retry placing nothing twice), pays and is shipped', async () => {
    const grace = await unwrap(
      shop.client.POST('/v1/customers', { body: { email: 'grace@example.com', name: 'Grace Hopper' } }),
    );
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
    assert.equal(placed.response.status, 201);
    assert.equal(placed.response.headers.get('idempotency-replayed'), 'true');
    const order = await unwrap(placed);
    assert.equal(await shop.db.collection('orders').countDocuments(), 1);

    const paid = await unwrap(shop.client.POST('/v1/orders/{id}/pay', { params: { path: { id: order.id } } }));
    const shipped = await unwrap(
      shop.client.POST('/v1/orders/{id}/ship', {
        params: { path: { id: order.id }, header: { 'if-match': `"${paid.version}"` } },
      }),
    );
    assert.equal(shipped.status, 'shipped');

    const read = await shop.client.GET('/v1/orders/{id}', { params: { path: { id: order.id } } });
    const again = await shop.client.GET('/v1/orders/{id}', {
      params: { path: { id: order.id }, header: { 'if-none-match': read.response.headers.get('etag') ?? '' } },
    });
    assert.equal(again.response.status, 304);

    const stale = await shop.client.POST('/v1/orders/{id}/deliver', {
      params: { path: { id: order.id }, header: { 'if-match': `"${paid.version}"` } },
    });
    assert.equal(stale.response.status, 412);
    assert.ok(isProblem(stale.error, 'precondition-failed'));
  });

  void it('an order larger than the shelf is a 409 whose shortages are typed', async () => {
    const ada = await shop.db.collection('customers').findOne({ email: 'ada@example.com' });
    if (ada === null) throw new Error('the fixture customer is missing');
    const refused = await shop.client.POST('/v1/orders', {
      body: { customerId: ada._id.toHexString(), warehouse: 'AMS-1', lines: [{ sku: MUG.sku, quantity: 8 }] },
    });
    assert.equal(refused.response.status, 409);
    assert.ok(isProblem(refused.error, 'insufficient-stock'));
    assert.deepEqual(refused.error.shortages, [{ sku: MUG.sku, warehouse: 'AMS-1', requested: 8, available: 5 }]);
  });
});
