import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE as PROBLEM, expectProblemAnswers } from '../helpers/problems.ts';

const MERGE_PATCH = 'application/merge-patch+json';

let sequence = 0;
const stockInput = (overrides: Record<string, unknown> = {}) => ({
  sku: `SKU-${String(++sequence).padStart(5, '0')}`,
  warehouse: 'AMS-1',
  available: 10,
  ...overrides,
});

describe('/v1/stock', () => {
  let t: TestApp;
  const stock = () => t.app.db.connection.db!.collection('stock');
  const stored = async (id: string) => stock().findOne({ _id: new mongoose.Types.ObjectId(id) });
  const create = async (overrides: Record<string, unknown> = {}) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/stock', payload: stockInput(overrides) });
    expect(res.statusCode, res.body).toBe(201);
    return res;
  };
  const patch = (id: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'PATCH',
      url: `/v1/stock/${id}`,
      headers: { 'content-type': MERGE_PATCH, ...headers },
      payload: payload as object,
    });
  const put = (id: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'PUT', url: `/v1/stock/${id}`, headers, payload: payload as object });

  beforeAll(async () => {
    t = await buildTestApp('stock');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  describe('create', () => {
    it('answers 201 with Location, ETag and the stored item, with nothing reserved or shipped', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/stock',
        payload: { sku: 'MUG-BLUE', warehouse: 'AMS-1', available: 120, reorderLevel: 20 },
      });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(res.headers.location).toBe(`/v1/stock/${body.id}`);
      expect(res.headers.etag).toBe('"1"');
      expect(body).toEqual({
        id: body.id,
        sku: 'MUG-BLUE',
        warehouse: 'AMS-1',
        available: 120,
        reorderLevel: 20,
        reserved: 0,
        shipped: 0,
        version: 1,
        createdAt: body.createdAt,
        updatedAt: body.createdAt,
      });
      const doc = await stored(body.id);
      expect(doc).toMatchObject({
        sku: 'MUG-BLUE',
        warehouse: 'AMS-1',
        available: 120,
        reorderLevel: 20,
        reserved: 0,
        shipped: 0,
        version: 1,
      });
      expect(doc!.createdAt).toBeInstanceOf(Date);
    });

    it('stores no reorderLevel when none is given', async () => {
      const body = (await create()).json();
      expect(body).not.toHaveProperty('reorderLevel');
      expect(await stored(body.id)).not.toHaveProperty('reorderLevel');
    });

    it.each([
      ['reserved', { reserved: 5 }],
      ['shipped', { shipped: 5 }],
    ])('when the client sends %s, answers 400 unknown property and stores nothing', async (field, extra) => {
      const input = stockInput(extra);
      const res = await t.app.inject({ method: 'POST', url: '/v1/stock', payload: input });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([{ in: 'body', pointer: `/${field}`, message: 'is not an allowed property' }]);
      expect(await stock().countDocuments({ sku: input.sku })).toBe(0);
    });

    it.each([
      ['a negative available', { available: -1 }, '/available', 'must be >= 0'],
      ['a fractional available', { available: 1.5 }, '/available', 'must be integer'],
      ['available as a string (body values are not coerced)', { available: '3' }, '/available', 'must be integer'],
      ['available as null', { available: null }, '/available', 'must be integer'],
      ['a negative reorderLevel', { reorderLevel: -2 }, '/reorderLevel', 'must be >= 0'],
      ['a lower-case SKU', { sku: 'mug-blue' }, '/sku', undefined],
      ['a warehouse code with spaces', { warehouse: 'AMS 1' }, '/warehouse', undefined],
    ])('refuses %s with 400 naming the field, and stores nothing', async (_case, overrides, pointer, message) => {
      const input = stockInput(overrides);
      const res = await t.app.inject({ method: 'POST', url: '/v1/stock', payload: input });
      expect(res.statusCode).toBe(400);
      expect(res.json().type).toBe('urn:storekeeper:problem:validation-failed');
      const errors = res.json().errors;
      expect(errors.map((e: { pointer: string }) => e.pointer)).toEqual([pointer]);
      if (message !== undefined) expect(errors[0].message).toBe(message);
      expect(await stock().countDocuments({ sku: input.sku })).toBe(0);
    });

    it('without sku, warehouse and available, answers 400 naming each', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/v1/stock', payload: {} });
      expect(res.statusCode).toBe(400);
      expect(
        res
          .json()
          .errors.map((e: { pointer: string }) => e.pointer)
          .sort(),
      ).toEqual(['/available', '/sku', '/warehouse']);
    });
  });

  describe('one item per SKU and warehouse', () => {
    it('a second item for the same SKU and warehouse answers 409 naming both fields and stores nothing', async () => {
      const first = (await create({ sku: 'DUP-1', warehouse: 'AMS-1', available: 5 })).json();
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/stock',
        payload: stockInput({ sku: 'DUP-1', warehouse: 'AMS-1', available: 99 }),
      });
      expect(res.statusCode).toBe(409);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:duplicate',
        detail: 'A stock item with this sku and warehouse already exists.',
      });
      expect(res.json().errors).toEqual([
        { in: 'body', pointer: '/sku', message: 'is already taken' },
        { in: 'body', pointer: '/warehouse', message: 'is already taken' },
      ]);
      expect(res.body).not.toContain('sku_warehouse_unique');
      const docs = await stock().find({ sku: 'DUP-1' }).toArray();
      expect(docs.map((d) => [d._id.toHexString(), d.available])).toEqual([[first.id, 5]]);
    });

    it('the same SKU in another warehouse is another item', async () => {
      await create({ sku: 'TWO-PLACES', warehouse: 'AMS-1' });
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/stock',
        payload: stockInput({ sku: 'TWO-PLACES', warehouse: 'BER-2' }),
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(await stock().countDocuments({ sku: 'TWO-PLACES' })).toBe(2);
    });
  });

  describe('read', () => {
    it('answers the item with its ETag, and 304 when If-None-Match is current', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({ url: `/v1/stock/${created.id}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(created);
      const cached = await t.app.inject({
        url: `/v1/stock/${created.id}`,
        headers: { 'if-none-match': res.headers.etag as string },
      });
      expect(cached.statusCode).toBe(304);
      expect(cached.body).toBe('');
    });

    it('answers 404 for an unknown id', async () => {
      const res = await t.app.inject({ url: `/v1/stock/${new mongoose.Types.ObjectId().toHexString()}` });
      expect(res.statusCode).toBe(404);
      expect(res.json().detail).toMatch(/^No stock item with id /);
    });
  });

  describe('replace and merge patch', () => {
    it('PUT replaces available and reorderLevel and keeps reserved, shipped and createdAt', async () => {
      const created = (await create({ reorderLevel: 5 })).json();
      await stock().updateOne({ _id: new mongoose.Types.ObjectId(created.id) }, { $set: { reserved: 3, shipped: 7 } });
      const res = await put(created.id, { sku: created.sku, warehouse: created.warehouse, available: 42 });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers.etag).toBe('"2"');
      expect(res.json()).toMatchObject({
        available: 42,
        reserved: 3,
        shipped: 7,
        version: 2,
        createdAt: created.createdAt,
      });
      expect(res.json()).not.toHaveProperty('reorderLevel');
      const doc = await stored(created.id);
      expect(doc).toMatchObject({ available: 42, reserved: 3, shipped: 7, version: 2 });
      expect(doc).not.toHaveProperty('reorderLevel');
    });

    it('PATCH changes available, and null removes reorderLevel', async () => {
      const created = (await create({ reorderLevel: 5 })).json();
      const res = await patch(created.id, { available: 0, reorderLevel: null });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({
        sku: created.sku,
        warehouse: created.warehouse,
        available: 0,
        reserved: 0,
        shipped: 0,
        version: 2,
      });
      expect(res.json()).not.toHaveProperty('reorderLevel');
      const doc = await stored(created.id);
      expect(doc).toMatchObject({ available: 0, version: 2 });
      expect(doc).not.toHaveProperty('reorderLevel');
    });

    it.each([
      ['PUT', 'sku', { sku: 'OTHER-SKU' }],
      ['PUT', 'warehouse', { warehouse: 'BER-2' }],
      ['PATCH', 'sku', { sku: 'OTHER-SKU' }],
      ['PATCH', 'warehouse', { warehouse: 'BER-2' }],
    ])('%s cannot change the %s: 400 naming it, and nothing changes', async (method, field, change) => {
      const created = (await create()).json();
      const res =
        method === 'PUT'
          ? await put(created.id, { sku: created.sku, warehouse: created.warehouse, available: 1, ...change })
          : await patch(created.id, change);
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([
        {
          in: 'body',
          pointer: `/${field}`,
          message: `cannot change after creation (is ${JSON.stringify(created[field])})`,
        },
      ]);
      expect(await stored(created.id)).toMatchObject({
        sku: created.sku,
        warehouse: created.warehouse,
        available: created.available,
        version: 1,
      });
    });

    it('PUT or PATCH that repeats the same sku and warehouse is fine', async () => {
      const created = (await create()).json();
      const res = await patch(created.id, { sku: created.sku, warehouse: created.warehouse, available: 3 });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().available).toBe(3);
    });

    it.each([
      ['reserved', { reserved: 0 }],
      ['shipped', { shipped: 100 }],
    ])('PUT and PATCH with %s answer 400 unknown property and change nothing', async (field, extra) => {
      const created = (await create()).json();
      const replaced = await put(created.id, {
        sku: created.sku,
        warehouse: created.warehouse,
        available: 1,
        ...extra,
      });
      expect(replaced.statusCode).toBe(400);
      expect(replaced.json().errors).toEqual([
        { in: 'body', pointer: `/${field}`, message: 'is not an allowed property' },
      ]);
      const patched = await patch(created.id, extra);
      expect(patched.statusCode).toBe(400);
      expect(patched.json().errors).toEqual([
        { in: 'body', pointer: `/${field}`, message: 'is not an allowed property' },
      ]);
      expect(await stored(created.id)).toMatchObject({
        available: created.available,
        reserved: 0,
        shipped: 0,
        version: 1,
      });
    });

    it.each([
      ['-1', -1, 'must be >= 0'],
      ['1.5', 1.5, 'must be integer'],
      ['"3" (a string)', '3', 'must be integer'],
    ])('available %s answers 400 on PUT and PATCH, and nothing changes', async (_case, available, message) => {
      const created = (await create({ available: 7 })).json();
      const replaced = await put(created.id, { sku: created.sku, warehouse: created.warehouse, available });
      expect(replaced.statusCode).toBe(400);
      expect(replaced.json().errors).toEqual([{ in: 'body', pointer: '/available', message }]);
      const patched = await patch(created.id, { available });
      expect(patched.statusCode).toBe(400);
      expect(patched.json().errors).toEqual([{ in: 'body', pointer: '/available', message }]);
      expect(await stored(created.id)).toMatchObject({ available: 7, version: 1 });
    });

    it('a PATCH with an invalid optional member answers one error for it, saying what is wrong', async () => {
      const created = (await create({ reorderLevel: 5 })).json();
      const res = await patch(created.id, { reorderLevel: -3 });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toBe('The request has 1 invalid value.');
      expect(res.json().errors).toEqual([{ in: 'body', pointer: '/reorderLevel', message: 'must be >= 0' }]);
      expect(await stored(created.id)).toMatchObject({ reorderLevel: 5, version: 1 });
    });

    it("If-Match with a stale ETag answers 412 and the document keeps the other writer's change", async () => {
      const created = (await create({ available: 10 })).json();
      expect((await patch(created.id, { available: 9 }, { 'if-match': '"1"' })).statusCode).toBe(200);
      const stale = await patch(created.id, { available: 8 }, { 'if-match': '"1"' });
      expect(stale.statusCode).toBe(412);
      expect(stale.json().type).toBe('urn:storekeeper:problem:precondition-failed');
      const stalePut = await put(
        created.id,
        { sku: created.sku, warehouse: created.warehouse, available: 8 },
        { 'if-match': '"1"' },
      );
      expect(stalePut.statusCode).toBe(412);
      expect(await stored(created.id)).toMatchObject({ available: 9, version: 2 });
    });
  });

  describe('delete', () => {
    it('deletes an item with nothing reserved: 204, then 404', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/stock/${created.id}` });
      expect(res.statusCode).toBe(204);
      expect(res.body).toBe('');
      expect(await stored(created.id)).toBeNull();
      expect((await t.app.inject({ method: 'DELETE', url: `/v1/stock/${created.id}` })).statusCode).toBe(404);
    });

    it('refuses to delete an item with units reserved: 409 stock-reserved, and nothing is deleted', async () => {
      const created = (await create()).json();
      await stock().updateOne({ _id: new mongoose.Types.ObjectId(created.id) }, { $set: { reserved: 4 } });
      const before = await stock().countDocuments();
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/stock/${created.id}` });
      expect(res.statusCode).toBe(409);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:stock-reserved', status: 409 });
      expect(res.json().detail).toContain('4 units are reserved');
      expect(await stock().countDocuments()).toBe(before);
      expect(await stored(created.id)).toMatchObject({ reserved: 4, version: 1 });
    });

    it('an item whose units were all shipped can be deleted', async () => {
      const created = (await create()).json();
      await stock().updateOne({ _id: new mongoose.Types.ObjectId(created.id) }, { $set: { shipped: 12 } });
      expect((await t.app.inject({ method: 'DELETE', url: `/v1/stock/${created.id}` })).statusCode).toBe(204);
      expect(await stored(created.id)).toBeNull();
    });
  });

  describe('list', () => {
    const ids: Record<string, string> = {};
    beforeAll(async () => {
      const items = [
        { key: 'a', warehouse: 'LOW-1', available: 5 },
        { key: 'b', warehouse: 'LOW-1', available: 0 },
        { key: 'c', warehouse: 'LOW-1', available: 50 },
        { key: 'd', warehouse: 'LOW-1', available: 5 },
        { key: 'e', warehouse: 'LOW-2', available: 1 },
        { key: 'f', warehouse: 'LOW-1', available: 9 },
      ];
      for (const { key, ...fields } of items)
        ids[key] = (await create({ ...fields, sku: `LIST-${key.toUpperCase()}${key.toUpperCase()}` })).json().id;
      await stock().updateOne({ _id: new mongoose.Types.ObjectId(ids.f) }, { $set: { reserved: 2 } });
    });
    const list = async (query: string) => {
      const res = await t.app.inject({ url: `/v1/stock?${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    const byId = (a: string, b: string) => (a < b ? -1 : 1);

    it("filters a warehouse's low stock and sorts it by units available, ties by id", async () => {
      const { items, next } = await list('warehouse=LOW-1&available[lt]=10&sort=available');
      const [tieFirst, tieSecond] = [ids.a!, ids.d!].sort(byId);
      expect(items.map((i: { id: string }) => i.id)).toEqual([ids.b, tieFirst, tieSecond, ids.f]);
      expect(items.map((i: { available: number }) => i.available)).toEqual([0, 5, 5, 9]);
      expect(next).toBeNull();
      const descending = await list('warehouse=LOW-1&available[lt]=10&sort=-available');
      expect(descending.items.map((i: { id: string }) => i.id)).toEqual([ids.f, tieSecond, tieFirst, ids.b]);
    });

    it('pages through the filtered list two at a time, each item once', async () => {
      const seen: string[] = [];
      let url: string | null =
        '/v1/stock?warehouse[in]=LOW-1,LOW-2&available[lt]=10&sort=available&limit=2&fields=available';
      while (url !== null) {
        const res: { statusCode: number; body: string; json(): any } = await t.app.inject({ url });
        expect(res.statusCode, res.body).toBe(200);
        seen.push(...res.json().items.map((i: { id: string }) => i.id));
        url = res.json().next;
      }
      expect(seen).toHaveLength(5);
      expect(new Set(seen)).toEqual(new Set([ids.a, ids.b, ids.d, ids.e, ids.f]));
    });

    it('filters by SKU and by reserved units', async () => {
      expect((await list('sku=LIST-AA')).items.map((i: { id: string }) => i.id)).toEqual([ids.a]);
      expect((await list('warehouse[in]=LOW-1,LOW-2&reserved[gt]=0')).items.map((i: { id: string }) => i.id)).toEqual([
        ids.f,
      ]);
    });

    it.each([
      ['a negative bound', 'available[lt]=-1', '/available[lt]'],
      ['a fractional bound', 'available[lt]=1.5', '/available[lt]'],
      ['an operator the field does not allow', 'reserved[lt]=3', '/reserved[lt]'],
      ['a sort on an unindexed field', 'sort=sku', '/sort'],
      ['a full-text search on a collection without one', 'q=mug', '/q'],
    ])('refuses %s with a 400 pointing at the parameter', async (_case, query, pointer) => {
      const res = await t.app.inject({ url: `/v1/stock?${query}` });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    });
  });

  it('every error body is a problem document carrying the request id of the response', async () => {
    const created = (await create()).json();
    await stock().updateOne({ _id: new mongoose.Types.ObjectId(created.id) }, { $set: { reserved: 1 } });
    const unknown = new mongoose.Types.ObjectId().toHexString();
    const failures = [
      { method: 'POST' as const, url: '/v1/stock', payload: stockInput({ available: '3' }) },
      {
        method: 'POST' as const,
        url: '/v1/stock',
        payload: { sku: created.sku, warehouse: created.warehouse, available: 1 },
      },
      { method: 'POST' as const, url: '/v1/stock', payload: 'sku=X', headers: { 'content-type': 'text/plain' } },
      { method: 'GET' as const, url: `/v1/stock/${unknown}` },
      { method: 'GET' as const, url: '/v1/stock?available[gt]=lots' },
      {
        method: 'PUT' as const,
        url: `/v1/stock/${created.id}`,
        payload: { ...stockInput(), warehouse: created.warehouse },
      },
      {
        method: 'PATCH' as const,
        url: `/v1/stock/${created.id}`,
        payload: { available: 1.5 },
        headers: { 'content-type': MERGE_PATCH },
      },
      {
        method: 'PATCH' as const,
        url: `/v1/stock/${created.id}`,
        payload: { available: 1 },
        headers: { 'content-type': MERGE_PATCH, 'if-match': 'W/"1"' },
      },
      { method: 'DELETE' as const, url: `/v1/stock/${created.id}`, headers: { 'x-request-id': 'caller-chosen.id-3' } },
    ];
    const statuses = await expectProblemAnswers(t.app, failures);
    expect(statuses).toEqual([400, 409, 415, 404, 400, 400, 400, 412, 409]);
    expect(await stored(created.id)).toMatchObject({ available: created.available, reserved: 1, version: 1 });
  });
});
