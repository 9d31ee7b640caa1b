// Limits MongoDB's validators enforce are the API's too: a stock counter at or near its declared
// maximum (1,000,000,000 units) that a restock, a move, a placement or an order action would
// push past it is a 409 limit-exceeded problem naming the field, the limit and the value it would
// reach, and nothing changes. The guard is in each update's filter; behind it, any refusal of
// MongoDB's validator for a maximum is translated to the same problem.

import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limitExceededFrom } from '../../src/data/validation-failures.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { shop, type Shop } from '../helpers/shop.ts';

const MAX = 1_000_000_000;

describe('stock counters at their limit', () => {
  let t: TestApp;
  let s: Shop;
  let customerId: string;
  const stock = () => t.app.db.connection.db!.collection('stock');
  const audit = () => t.app.db.connection.db!.collection('audit_events');
  /** Sets a stock item's counters straight in the database (what years of valid writes would reach). */
  const setCounters = (sku: string, warehouse: string, counters: Record<string, number>) =>
    stock().updateOne({ sku, warehouse }, { $set: counters });

  beforeAll(async () => {
    t = await buildTestApp('stock_limits');
    t.app.post<{ Params: { sku: string } }>('/test/raw-increment/:sku', async (request) => {
      // A write without the guard, as a future code path might make one: the net must catch it.
      await stock().updateOne({ sku: request.params.sku }, { $inc: { available: 5 } });
      return { ok: true };
    });
    t.app.post<{ Params: { sku: string } }>('/test/raw-type-mismatch/:sku', async (request) => {
      await stock().updateOne({ sku: request.params.sku }, { $set: { available: 'many' } });
      return { ok: true };
    });
    await waitForDatabase(t.app);
    s = shop(t.app);
    for (const sku of ['FULL-1', 'NEAR-1', 'MOVE-1', 'SHIP-1', 'BACK-1', 'RES-1', 'NET-1']) await s.product(sku);
    customerId = (await s.customer()).id;
  });
  afterAll(() => t.app.close());

  function expectLimit(
    res: { statusCode: number; headers: Record<string, unknown>; json(): any },
    field: string,
    value: number,
  ) {
    expect(res.statusCode, JSON.stringify(res.json())).toBe(409);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.json()).toMatchObject({
      type: 'urn:storekeeper:problem:limit-exceeded',
      title: 'Limit Exceeded',
      status: 409,
      field,
      limit: MAX,
      value,
    });
  }

  it('restocking an item at the limit is a 409 naming available, the limit and the value it would reach; the item is unchanged', async () => {
    const item = await s.stock('FULL-1', 'AMS-1', MAX);
    const auditBefore = await audit().countDocuments();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/stock/restock',
      payload: { sku: 'FULL-1', warehouse: 'AMS-1', quantity: 1 },
    });
    expectLimit(res, 'available', MAX + 1);
    expect(res.json().documentId).toBe(item.id);
    expect(res.json().detail).toContain('FULL-1');
    expect(await stock().findOne({ sku: 'FULL-1', warehouse: 'AMS-1' })).toMatchObject({ available: MAX, version: 1 });
    expect(await audit().countDocuments()).toBe(auditBefore);
  });

  it('restocking near the limit: up to the limit is served, one unit past it is refused', async () => {
    await s.stock('NEAR-1', 'AMS-1', MAX - 10);
    expectLimit(
      await t.app.inject({
        method: 'POST',
        url: '/v1/stock/restock',
        payload: { sku: 'NEAR-1', warehouse: 'AMS-1', quantity: 11 },
      }),
      'available',
      MAX + 1,
    );
    const served = await t.app.inject({
      method: 'POST',
      url: '/v1/stock/restock',
      payload: { sku: 'NEAR-1', warehouse: 'AMS-1', quantity: 10 },
    });
    expect(served.statusCode, served.body).toBe(200);
    expect(served.json().available).toBe(MAX);
  });

  it('restocking a warehouse without the item creates it, even with the largest quantity', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/stock/restock',
      payload: { sku: 'NEAR-1', warehouse: 'NEW-1', quantity: MAX },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(await stock().countDocuments({ sku: 'NEAR-1', warehouse: 'NEW-1' })).toBe(1);
  });

  it('moving one unit into a full item is a 409, and neither item changes', async () => {
    await s.stock('MOVE-1', 'AMS-1', 5);
    await s.stock('MOVE-1', 'BER-1', MAX);
    const before = await stock().find({ sku: 'MOVE-1' }).sort({ _id: 1 }).toArray();
    expectLimit(
      await t.app.inject({
        method: 'POST',
        url: '/v1/stock/move',
        payload: { sku: 'MOVE-1', from: 'AMS-1', to: 'BER-1', quantity: 1 },
      }),
      'available',
      MAX + 1,
    );
    expect(await stock().find({ sku: 'MOVE-1' }).sort({ _id: 1 }).toArray()).toEqual(before);
  });

  it('placing an order whose reservation would pass the reserved limit is a 409; nothing is reserved or stored', async () => {
    await s.stock('RES-1', 'AMS-1', 10);
    await setCounters('RES-1', 'AMS-1', { reserved: MAX - 1 });
    const orders = await t.app.db.connection.db!.collection('orders').countDocuments();
    expectLimit(await s.place(customerId, 'AMS-1', [{ sku: 'RES-1', quantity: 2 }]), 'reserved', MAX + 1);
    expect(await stock().findOne({ sku: 'RES-1' })).toMatchObject({ available: 10, reserved: MAX - 1 });
    expect(await t.app.db.connection.db!.collection('orders').countDocuments()).toBe(orders);
  });

  it('shipping into a full shipped counter is a 409; the order stays paid and its units reserved', async () => {
    await s.stock('SHIP-1', 'AMS-1', 10);
    const order = await s.place(customerId, 'AMS-1', [{ sku: 'SHIP-1', quantity: 3 }]);
    expect(order.statusCode, order.body).toBe(201);
    expect((await s.act(order.json().id, 'pay')).statusCode).toBe(200);
    await setCounters('SHIP-1', 'AMS-1', { shipped: MAX - 1 });
    expectLimit(await s.act(order.json().id, 'ship'), 'shipped', MAX + 2);
    expect(await s.storedOrder(order.json().id)).toMatchObject({ status: 'paid' });
    expect(await stock().findOne({ sku: 'SHIP-1' })).toMatchObject({ available: 7, reserved: 3, shipped: MAX - 1 });
  });

  it('cancelling an order whose units would not fit back on a full shelf is a 409; the order stays placed', async () => {
    await s.stock('BACK-1', 'AMS-1', 10);
    const order = await s.place(customerId, 'AMS-1', [{ sku: 'BACK-1', quantity: 4 }]);
    expect(order.statusCode, order.body).toBe(201);
    await setCounters('BACK-1', 'AMS-1', { available: MAX });
    expectLimit(await s.act(order.json().id, 'cancel'), 'available', MAX + 4);
    expect(await s.storedOrder(order.json().id)).toMatchObject({ status: 'placed' });
    expect(await stock().findOne({ sku: 'BACK-1' })).toMatchObject({ available: MAX, reserved: 4 });
  });

  it('the net: a write without the guard that MongoDB refuses for a maximum is the same 409, not a 500', async () => {
    await s.stock('NET-1', 'AMS-1', MAX - 1);
    const res = await t.app.inject({ method: 'POST', url: '/test/raw-increment/NET-1' });
    expectLimit(res, 'available', MAX + 4);
    expect((await stock().findOne({ sku: 'NET-1' }))!.available).toBe(MAX - 1);
  });

  it("a refusal of MongoDB's validator for anything but a maximum stays a 500 (a bug, not a limit)", async () => {
    const res = await t.app.inject({ method: 'POST', url: '/test/raw-type-mismatch/NET-1' });
    expect(res.statusCode).toBe(500);
    expect(res.json().type).toBe('urn:storekeeper:problem:internal-error');
  });

  it("the translation reads a bulk write's first write error and nested fields too", async () => {
    const products = t.app.db.connection.db!.collection('products');
    const document = {
      _id: new mongoose.Types.ObjectId(),
      sku: 'BULK-1',
      name: 'b',
      price: { amount: 2 ** 31, currency: 'EUR' },
      category: 'x',
      status: 'active',
      tags: [],
      attributes: {},
      version: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    };
    const error = await products.insertMany([document]).catch((caught: unknown) => caught);
    const problem = limitExceededFrom(error);
    expect(problem?.extensions).toMatchObject({ field: 'price.amount', limit: 2 ** 31 - 1, value: 2 ** 31 });
    expect(limitExceededFrom(new Error('nothing to do with MongoDB'))).toBeUndefined();
    expect(limitExceededFrom(null)).toBeUndefined();
  });

  it('the contract documents limit-exceeded on the routes that can reach a limit', async () => {
    const spec = t.app.swagger() as unknown as {
      paths: Record<
        string,
        Record<
          string,
          { responses: Record<string, { content?: Record<string, { examples?: Record<string, unknown> }> }> }
        >
      >;
    };
    for (const [path, method] of [
      ['/v1/stock/restock', 'post'],
      ['/v1/stock/move', 'post'],
      ['/v1/orders', 'post'],
      ['/v1/orders/{id}/ship', 'post'],
      ['/v1/orders/{id}/cancel', 'post'],
    ] as const) {
      const examples =
        spec.paths[path]?.[method]?.responses['409']?.content?.['application/problem+json']?.examples ?? {};
      expect(Object.keys(examples), `${method} ${path}`).toContain('limit-exceeded');
    }
  });
});
