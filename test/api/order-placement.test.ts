import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import mongoose from 'mongoose';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';

const { ObjectId } = mongoose.Types;

describe('POST /v1/orders places an order', () => {
  let t: TestApp;
  let s: Shop;

  beforeAll(async () => {
    t = await buildTestApp('order_placement');
    await waitForDatabase(t.app);
    s = shop(t.app);
  });
  afterAll(() => t.app.close());

  describe('a valid order', () => {
    it('reserves the stock, prices the lines from the catalog, totals them and counts the order in the customer stats', async () => {
      await s.product('PLACE-TEE', { amount: 2499, name: 'Tee, red' });
      await s.product('PLACE-MUG', { amount: 900, name: 'Mug, blue' });
      await s.stock('PLACE-TEE', 'AMS-1', 10);
      await s.stock('PLACE-MUG', 'AMS-1', 5);
      await s.stock('PLACE-TEE', 'BER-2', 7);
      const customer = await s.customer();

      const res = await s.place(customer.id, 'AMS-1', [
        { sku: 'PLACE-TEE', quantity: 3 },
        { sku: 'PLACE-MUG', quantity: 1 },
      ]);
      expect(res.statusCode, res.body).toBe(201);
      const order = res.json();
      expect(res.headers.location).toBe(`/v1/orders/${order.id}`);
      expect(res.headers.etag).toBe('"1"');
      expect(order).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        customerId: customer.id,
        warehouse: 'AMS-1',
        lines: [
          {
            sku: 'PLACE-TEE',
            name: 'Tee, red',
            quantity: 3,
            unitPrice: { amount: 2499, currency: 'EUR' },
            lineTotal: { amount: 7497, currency: 'EUR' },
          },
          {
            sku: 'PLACE-MUG',
            name: 'Mug, blue',
            quantity: 1,
            unitPrice: { amount: 900, currency: 'EUR' },
            lineTotal: { amount: 900, currency: 'EUR' },
          },
        ],
        totals: { itemCount: 4, subtotal: { amount: 8397, currency: 'EUR' } },
        status: 'placed',
        history: [{ status: 'placed', at: order.createdAt }],
        version: 1,
        createdAt: expect.any(String),
        updatedAt: order.createdAt,
      });

      // What is stored is what was answered, and GET answers it too.
      const read = await t.app.inject({ url: `/v1/orders/${order.id}` });
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual(order);
      const stored = await s.storedOrder(order.id);
      expect(stored!.customerId).toBeInstanceOf(ObjectId);
      expect(stored!.createdAt).toBeInstanceOf(Date);

      expect(await s.storedStock('PLACE-TEE', 'AMS-1')).toMatchObject({
        available: 7,
        reserved: 3,
        shipped: 0,
        version: 2,
      });
      expect(await s.storedStock('PLACE-MUG', 'AMS-1')).toMatchObject({
        available: 4,
        reserved: 1,
        shipped: 0,
        version: 2,
      });
      // Another warehouse's stock of the same SKU is not touched.
      expect(await s.storedStock('PLACE-TEE', 'BER-2')).toMatchObject({ available: 7, reserved: 0, version: 1 });

      const buyer = await s.storedCustomer(customer.id);
      expect(buyer!.stats).toEqual({
        orderCount: 1,
        spent: [{ currency: 'EUR', amount: 8397 }],
        lastOrderAt: new Date(order.createdAt),
      });
      expect(buyer!.version).toBe(2);
      const api = await t.app.inject({ url: `/v1/customers/${customer.id}` });
      expect(api.json().stats).toEqual({
        orderCount: 1,
        spent: [{ currency: 'EUR', amount: 8397 }],
        lastOrderAt: order.createdAt,
      });
      expect(api.headers.etag).toBe('"2"');
    });

    it('adds to the entry of the currency on the next order, and adds an entry for a new currency', async () => {
      await s.product('SPEND-EUR', { amount: 1000 });
      await s.product('SPEND-GBP', { amount: 700, currency: 'GBP' });
      await s.stock('SPEND-EUR', 'AMS-1', 10);
      await s.stock('SPEND-GBP', 'AMS-1', 10);
      const customer = await s.customer();

      expect((await s.place(customer.id, 'AMS-1', [{ sku: 'SPEND-EUR', quantity: 1 }])).statusCode).toBe(201);
      expect((await s.place(customer.id, 'AMS-1', [{ sku: 'SPEND-GBP', quantity: 2 }])).statusCode).toBe(201);
      const last = await s.place(customer.id, 'AMS-1', [{ sku: 'SPEND-EUR', quantity: 3 }]);
      expect(last.statusCode).toBe(201);

      const { stats, version } = (await s.storedCustomer(customer.id))!;
      expect(stats.orderCount).toBe(3);
      expect(stats.spent).toEqual([
        { currency: 'EUR', amount: 4000 },
        { currency: 'GBP', amount: 1400 },
      ]);
      expect(stats.lastOrderAt).toEqual(new Date(last.json().createdAt));
      expect(version).toBe(4);
    });

    it('takes the price the catalog has when the order is placed, not an older one', async () => {
      const product = await s.product('REPRICED-1', { amount: 1000 });
      await s.stock('REPRICED-1', 'AMS-1', 5);
      const customer = await s.customer();
      const patch = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${product.id}`,
        headers: { 'content-type': 'application/merge-patch+json' },
        payload: { price: { amount: 1250 } },
      });
      expect(patch.statusCode, patch.body).toBe(200);
      const res = await s.place(customer.id, 'AMS-1', [{ sku: 'REPRICED-1', quantity: 2 }]);
      expect(res.json().lines[0]).toMatchObject({ unitPrice: { amount: 1250 }, lineTotal: { amount: 2500 } });
      expect(res.json().totals.subtotal).toEqual({ amount: 2500, currency: 'EUR' });
    });

    it('may take the last units: available 0 is allowed, below is not', async () => {
      await s.product('LAST-UNITS');
      await s.stock('LAST-UNITS', 'AMS-1', 2);
      const customer = await s.customer();
      expect((await s.place(customer.id, 'AMS-1', [{ sku: 'LAST-UNITS', quantity: 2 }])).statusCode).toBe(201);
      expect(await s.storedStock('LAST-UNITS', 'AMS-1')).toMatchObject({ available: 0, reserved: 2 });
      const more = await s.place(customer.id, 'AMS-1', [{ sku: 'LAST-UNITS', quantity: 1 }]);
      expect(more.statusCode).toBe(409);
      expect(await s.storedStock('LAST-UNITS', 'AMS-1')).toMatchObject({ available: 0, reserved: 2 });
    });
  });

  describe('refusals change nothing', () => {
    let customerId: string;
    beforeAll(async () => {
      customerId = (await s.customer()).id;
      await s.product('REFUSE-A', { amount: 500 });
      await s.product('REFUSE-B', { amount: 700 });
      await s.product('REFUSE-C', { amount: 900 });
      await s.product('REFUSE-DRAFT', { status: 'draft' });
      await s.product('REFUSE-ARCHIVED', { status: 'archived' });
      await s.product('REFUSE-GBP', { currency: 'GBP' });
      await s.product('REFUSE-HUGE', { amount: 2_000_000_000 });
      for (const sku of [
        'REFUSE-A',
        'REFUSE-B',
        'REFUSE-C',
        'REFUSE-DRAFT',
        'REFUSE-ARCHIVED',
        'REFUSE-GBP',
        'REFUSE-HUGE',
      ]) {
        await s.stock(sku, 'AMS-1', 10);
      }
      await s.stock('REFUSE-B', 'BER-2', 100);
    });

    /** Sends the placement and checks that no stored document changed. */
    const refused = async (body: Record<string, unknown>) => {
      const before = await s.snapshot();
      const res = await t.app.inject({ method: 'POST', url: '/v1/orders', payload: body });
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(await s.snapshot()).toEqual(before);
      return res;
    };

    it('short stock: 409 listing every short SKU with what is available; the reservation of the line before is undone', async () => {
      await s.product('NOT-STOCKED-2');
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [
          { sku: 'REFUSE-A', quantity: 2 }, // enough: reserved, then rolled back with the rest
          { sku: 'REFUSE-B', quantity: 11 }, // 10 here; the 100 in BER-2 do not count
          { sku: 'REFUSE-C', quantity: 10 }, // exactly enough
          { sku: 'NOT-STOCKED-2', quantity: 1 }, // a product AMS-1 has no stock item of
        ],
      });
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:insufficient-stock',
        title: 'Insufficient Stock',
        status: 409,
        instance: '/v1/orders',
        requestId: res.headers['x-request-id'],
      });
      expect(res.json().shortages).toEqual([
        { sku: 'REFUSE-B', warehouse: 'AMS-1', requested: 11, available: 10 },
        { sku: 'NOT-STOCKED-2', warehouse: 'AMS-1', requested: 1, available: 0 },
      ]);
      expect(res.json().detail).toContain('REFUSE-B (requested 11, available 10)');
    });

    it('an unknown customer: 409 unknown-customer', async () => {
      const ghost = new ObjectId().toHexString();
      const res = await refused({ customerId: ghost, warehouse: 'AMS-1', lines: [{ sku: 'REFUSE-A', quantity: 1 }] });
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:unknown-customer', customerId: ghost });
    });

    it('unknown and inactive products: 409 products-unavailable naming each with why', async () => {
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [
          { sku: 'REFUSE-A', quantity: 1 },
          { sku: 'NO-SUCH-SKU', quantity: 1 },
          { sku: 'REFUSE-DRAFT', quantity: 1 },
          { sku: 'REFUSE-ARCHIVED', quantity: 1 },
        ],
      });
      expect(res.statusCode).toBe(409);
      expect(res.json().type).toBe('urn:storekeeper:problem:products-unavailable');
      expect(res.json().products).toEqual([
        { sku: 'NO-SUCH-SKU', reason: 'unknown' },
        { sku: 'REFUSE-DRAFT', reason: 'inactive', status: 'draft' },
        { sku: 'REFUSE-ARCHIVED', reason: 'inactive', status: 'archived' },
      ]);
    });

    it('products priced in two currencies: 409 mixed-currencies', async () => {
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [
          { sku: 'REFUSE-A', quantity: 1 },
          { sku: 'REFUSE-GBP', quantity: 1 },
        ],
      });
      expect(res.statusCode).toBe(409);
      expect(res.json().type).toBe('urn:storekeeper:problem:mixed-currencies');
      expect(res.json().currencies).toEqual([
        { sku: 'REFUSE-A', currency: 'EUR' },
        { sku: 'REFUSE-GBP', currency: 'GBP' },
      ]);
    });

    it('a total larger than an amount can hold: 409 amount-too-large', async () => {
      const res = await refused({ customerId, warehouse: 'AMS-1', lines: [{ sku: 'REFUSE-HUGE', quantity: 2 }] });
      expect(res.statusCode).toBe(409);
      expect(res.json().type).toBe('urn:storekeeper:problem:amount-too-large');
    });

    it('a customer whose running total in the currency would pass the largest amount: 409 amount-too-large', async () => {
      const rich = (await s.customer()).id;
      await t.app.db.connection
        .db!.collection('customers')
        .updateOne(
          { _id: new mongoose.Types.ObjectId(rich) },
          { $set: { 'stats.spent': [{ currency: 'EUR', amount: 2_147_483_647 }] } },
        );
      const res = await refused({ customerId: rich, warehouse: 'AMS-1', lines: [{ sku: 'REFUSE-A', quantity: 1 }] });
      expect(res.statusCode).toBe(409);
      expect(res.json().type).toBe('urn:storekeeper:problem:amount-too-large');
    });

    it('a price sent by the client: 400, prices come from the catalog only', async () => {
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [{ sku: 'REFUSE-A', quantity: 1, unitPrice: { amount: 1, currency: 'EUR' } }],
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([
        { in: 'body', pointer: '/lines/0/unitPrice', message: 'is not an allowed property' },
      ]);
    });

    it('a total or status sent by the client: 400 unknown properties', async () => {
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [{ sku: 'REFUSE-A', quantity: 1 }],
        totals: {},
        status: 'paid',
      });
      expect(res.statusCode).toBe(400);
      expect(
        res
          .json()
          .errors.map((e: { pointer: string }) => e.pointer)
          .sort(),
      ).toEqual(['/status', '/totals']);
    });

    it('the same SKU on two lines: 400 pointing at the repeated line (not merged)', async () => {
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [
          { sku: 'REFUSE-A', quantity: 1 },
          { sku: 'REFUSE-B', quantity: 1 },
          { sku: 'REFUSE-A', quantity: 2 },
        ],
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([
        {
          in: 'body',
          pointer: '/lines/2/sku',
          message: 'repeats the SKU of line 0; put the whole quantity on one line',
        },
      ]);
    });

    it.each([
      ['no lines', { lines: [] }, '/lines'],
      ['101 lines', { lines: Array.from({ length: 101 }, (_, i) => ({ sku: `MANY-${i}`, quantity: 1 })) }, '/lines'],
      ['a quantity of 0', { lines: [{ sku: 'REFUSE-A', quantity: 0 }] }, '/lines/0/quantity'],
      ['a fractional quantity', { lines: [{ sku: 'REFUSE-A', quantity: 1.5 }] }, '/lines/0/quantity'],
      ['a quantity as a string', { lines: [{ sku: 'REFUSE-A', quantity: '1' }] }, '/lines/0/quantity'],
      ['a malformed customer id', { customerId: 'nope' }, '/customerId'],
      ['a malformed warehouse', { warehouse: 'ams 1' }, '/warehouse'],
      ['a malformed SKU', { lines: [{ sku: 'lower-case', quantity: 1 }] }, '/lines/0/sku'],
    ])('%s: 400 pointing at it', async (_case, override, pointer) => {
      const res = await refused({
        customerId,
        warehouse: 'AMS-1',
        lines: [{ sku: 'REFUSE-A', quantity: 1 }],
        ...override,
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    });

    it('without a body, or with one that is not JSON: 400/415, nothing changed', async () => {
      const before = await s.snapshot();
      expect((await t.app.inject({ method: 'POST', url: '/v1/orders' })).statusCode).toBe(400);
      const text = await t.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: { 'content-type': 'text/plain' },
        payload: 'x',
      });
      expect(text.statusCode).toBe(415);
      expect(await s.snapshot()).toEqual(before);
    });
  });
});
