import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';

describe('stock actions: POST /v1/stock/restock and /v1/stock/move', () => {
  let t: TestApp;
  let s: Shop;

  beforeAll(async () => {
    t = await buildTestApp('stock_actions');
    await waitForDatabase(t.app);
    s = shop(t.app);
  });
  afterAll(() => t.app.close());

  const restock = (payload: Record<string, unknown>, app = t.app) =>
    app.inject({ method: 'POST', url: '/v1/stock/restock', payload });
  const move = (payload: Record<string, unknown>) => t.app.inject({ method: 'POST', url: '/v1/stock/move', payload });
  const counters = (item: Record<string, any> | null) =>
    item && { available: item.available, reserved: item.reserved, shipped: item.shipped };

  describe('restock', () => {
    it('adds to the available units of an existing item, keeping reserved and shipped', async () => {
      await s.product('RESTOCK-1');
      const created = await s.stock('RESTOCK-1', 'AMS-1', 5);
      const customer = await s.customer();
      expect((await s.place(customer.id, 'AMS-1', [{ sku: 'RESTOCK-1', quantity: 2 }])).statusCode).toBe(201);

      const res = await restock({ sku: 'RESTOCK-1', warehouse: 'AMS-1', quantity: 48 });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers).not.toHaveProperty('location');
      expect(res.headers.etag).toBe('"3"');
      expect(res.json()).toMatchObject({
        id: created.id,
        sku: 'RESTOCK-1',
        warehouse: 'AMS-1',
        available: 51,
        reserved: 2,
        shipped: 0,
        version: 3,
      });
      expect(await s.storedStock('RESTOCK-1', 'AMS-1')).toMatchObject({
        available: 51,
        reserved: 2,
        shipped: 0,
        version: 3,
      });
    });

    it('creates the item when the warehouse has none: 201 with Location, nothing reserved or shipped', async () => {
      await s.product('RESTOCK-2');
      const res = await restock({ sku: 'RESTOCK-2', warehouse: 'BER-2', quantity: 12 });
      expect(res.statusCode, res.body).toBe(201);
      const item = res.json();
      expect(res.headers.location).toBe(`/v1/stock/${item.id}`);
      expect(res.headers.etag).toBe('"1"');
      expect(item).toEqual({
        id: item.id,
        sku: 'RESTOCK-2',
        warehouse: 'BER-2',
        available: 12,
        reserved: 0,
        shipped: 0,
        version: 1,
        createdAt: item.updatedAt,
        updatedAt: expect.any(String),
      });
      const read = await t.app.inject({ url: res.headers.location as string });
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual(item);
    });

    it('stocks a product that is not on sale yet (draft): stock may arrive first', async () => {
      await s.product('RESTOCK-DRAFT', { status: 'draft' });
      expect((await restock({ sku: 'RESTOCK-DRAFT', warehouse: 'AMS-1', quantity: 1 })).statusCode).toBe(201);
    });

    it('refuses a SKU that is no product: 409 unknown-product, and no item is created', async () => {
      const before = await s.snapshot();
      const res = await restock({ sku: 'NO-SUCH-PRODUCT', warehouse: 'AMS-1', quantity: 5 });
      expect(res.statusCode).toBe(409);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:unknown-product', sku: 'NO-SUCH-PRODUCT' });
      expect(await s.snapshot()).toEqual(before);
    });

    it.each([
      ['a quantity of 0', { quantity: 0 }, '/quantity'],
      ['a negative quantity', { quantity: -5 }, '/quantity'],
      ['a quantity over the maximum', { quantity: 1_000_000_001 }, '/quantity'],
      ['reserved units', { reserved: 3 }, '/reserved'],
      ['a malformed warehouse', { warehouse: 'x' }, '/warehouse'],
    ])('refuses %s with a 400, and changes nothing', async (_case, override, pointer) => {
      const before = await s.snapshot();
      const res = await restock({ sku: 'RESTOCK-1', warehouse: 'AMS-1', quantity: 1, ...override });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
      expect(await s.snapshot()).toEqual(before);
    });

    it('concurrent restocks of an item that does not exist yet, from two instances: one creates it, all add up', async () => {
      await s.product('RESTOCK-RACE');
      const { app: other } = await buildAppOn(t.dbName, t.key);
      try {
        await waitForDatabase(other);
        const responses = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            restock({ sku: 'RESTOCK-RACE', warehouse: 'AMS-1', quantity: 5 }, i % 2 === 0 ? t.app : other),
          ),
        );
        const statuses = responses.map((res) => res.statusCode);
        expect(statuses.filter((status) => status === 201)).toHaveLength(1);
        expect(statuses.filter((status) => status === 200)).toHaveLength(19);
        const items = await t.app.db.connection.db!.collection('stock').find({ sku: 'RESTOCK-RACE' }).toArray();
        expect(items).toHaveLength(1);
        expect(items[0]).toMatchObject({ available: 100, reserved: 0, shipped: 0, version: 20 });
      } finally {
        await other.close();
      }
    });
  });

  describe('move', () => {
    it('moves available units between warehouses in one step, answering both items; reserved units stay', async () => {
      await s.product('MOVE-1');
      await s.stock('MOVE-1', 'AMS-1', 30);
      await s.stock('MOVE-1', 'BER-2', 4);
      const customer = await s.customer();
      expect((await s.place(customer.id, 'AMS-1', [{ sku: 'MOVE-1', quantity: 5 }])).statusCode).toBe(201);

      const res = await move({ sku: 'MOVE-1', from: 'AMS-1', to: 'BER-2', quantity: 10 });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().from).toMatchObject({
        sku: 'MOVE-1',
        warehouse: 'AMS-1',
        available: 15,
        reserved: 5,
        shipped: 0,
        version: 3,
      });
      expect(res.json().to).toMatchObject({
        sku: 'MOVE-1',
        warehouse: 'BER-2',
        available: 14,
        reserved: 0,
        shipped: 0,
        version: 2,
      });
      expect(counters(await s.storedStock('MOVE-1', 'AMS-1'))).toEqual({ available: 15, reserved: 5, shipped: 0 });
      expect(counters(await s.storedStock('MOVE-1', 'BER-2'))).toEqual({ available: 14, reserved: 0, shipped: 0 });
    });

    it('creates the destination item when the warehouse has none', async () => {
      await s.product('MOVE-2');
      await s.stock('MOVE-2', 'AMS-1', 8);
      const res = await move({ sku: 'MOVE-2', from: 'AMS-1', to: 'NEW-WH', quantity: 8 });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().to).toMatchObject({ warehouse: 'NEW-WH', available: 8, reserved: 0, shipped: 0, version: 1 });
      expect(counters(await s.storedStock('MOVE-2', 'AMS-1'))).toEqual({ available: 0, reserved: 0, shipped: 0 });
    });

    it('short: 409 insufficient-stock saying what is available (reserved units do not count), and nothing moved', async () => {
      await s.product('MOVE-SHORT');
      await s.stock('MOVE-SHORT', 'AMS-1', 8);
      const customer = await s.customer();
      expect((await s.place(customer.id, 'AMS-1', [{ sku: 'MOVE-SHORT', quantity: 5 }])).statusCode).toBe(201);
      const before = await s.snapshot();
      const res = await move({ sku: 'MOVE-SHORT', from: 'AMS-1', to: 'BER-2', quantity: 4 });
      expect(res.statusCode).toBe(409);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:insufficient-stock',
        shortages: [{ sku: 'MOVE-SHORT', warehouse: 'AMS-1', requested: 4, available: 3 }],
      });
      expect(await s.snapshot()).toEqual(before);
      expect(await s.storedStock('MOVE-SHORT', 'BER-2')).toBeNull();
    });

    it('from a warehouse without the item: 409 with 0 available, and the destination is not created', async () => {
      await s.product('MOVE-NOWHERE');
      const before = await s.snapshot();
      const res = await move({ sku: 'MOVE-NOWHERE', from: 'AMS-1', to: 'BER-2', quantity: 1 });
      expect(res.statusCode).toBe(409);
      expect(res.json().shortages).toEqual([{ sku: 'MOVE-NOWHERE', warehouse: 'AMS-1', requested: 1, available: 0 }]);
      expect(await s.snapshot()).toEqual(before);
    });

    it.each([
      ['the same warehouse on both ends', { to: 'AMS-1' }, '/to'],
      ['a quantity of 0', { quantity: 0 }, '/quantity'],
      ['no destination', { to: undefined }, '/to'],
    ])('refuses %s with a 400, and changes nothing', async (_case, override, pointer) => {
      const before = await s.snapshot();
      const res = await move({ sku: 'MOVE-1', from: 'AMS-1', to: 'BER-2', quantity: 1, ...override });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
      expect(await s.snapshot()).toEqual(before);
    });

    it('20 concurrent moves of 1 unit with 10 available: exactly 10 move, 10 get 409, and no unit is created or lost', async () => {
      await s.product('MOVE-RACE');
      await s.stock('MOVE-RACE', 'AMS-1', 10);
      await s.stock('MOVE-RACE', 'BER-2', 0);
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          move({
            sku: 'MOVE-RACE',
            from: i % 4 === 3 ? 'BER-2' : 'AMS-1',
            to: i % 4 === 3 ? 'AMS-1' : 'BER-2',
            quantity: 1,
          }),
        ),
      );
      const statuses = responses.map((res) => res.statusCode);
      expect(statuses.filter((status) => status >= 500)).toEqual([]);
      expect(statuses.every((status) => status === 200 || status === 409)).toBe(true);
      const ams = (await s.storedStock('MOVE-RACE', 'AMS-1'))!;
      const ber = (await s.storedStock('MOVE-RACE', 'BER-2'))!;
      expect(ams.available).toBeGreaterThanOrEqual(0);
      expect(ber.available).toBeGreaterThanOrEqual(0);
      expect(ams.available + ber.available).toBe(10);
      // Each move that succeeded changed each side once; each refused one changed nothing.
      const moved = statuses.filter((status) => status === 200).length;
      expect(ams.version - 1 + (ber.version - 1)).toBe(2 * moved);
      const outOfAms = responses.filter((res, i) => res.statusCode === 200 && i % 4 !== 3).length;
      const intoAms = responses.filter((res, i) => res.statusCode === 200 && i % 4 === 3).length;
      expect(ams.available).toBe(10 - outOfAms + intoAms);
    });
  });

  it('the OpenAPI document describes both actions with examples', () => {
    const spec = t.app.swagger() as {
      paths: Record<string, Record<string, any>>;
      components: { schemas: Record<string, any> };
    };
    const restockOp = spec.paths['/v1/stock/restock']!.post;
    expect(Object.keys(restockOp.responses).sort()).toEqual([
      '200',
      '201',
      '400',
      '401',
      '403',
      '409',
      '413',
      '415',
      '422',
      '429',
      '500',
      '503',
    ]);
    expect(restockOp.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Restock' });
    const moveOp = spec.paths['/v1/stock/move']!.post;
    expect(
      moveOp.responses['409'].content['application/problem+json'].examples['insufficient-stock'].value.shortages,
    ).toHaveLength(1);
    expect(spec.components.schemas.StockMove.examples).toHaveLength(1);
  });
});
