import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import mongoose from 'mongoose';
import { Order, Product } from '../../src/domain/entities/index.ts';
import { storedOrder } from '../helpers/documents.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

const MERGE_PATCH = 'application/merge-patch+json';

let sequence = 0;
const productInput = (overrides: Record<string, unknown> = {}) => ({
  ...Product.example,
  sku: `SKU-${String(++sequence).padStart(5, '0')}`,
  ...overrides,
});

describe('/v1/products', () => {
  let t: TestApp;
  const stored = async (id: string) =>
    t.app.db.connection.db!.collection('products').findOne({ _id: new mongoose.Types.ObjectId(id) });
  const create = async (overrides: Record<string, unknown> = {}) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/products', payload: productInput(overrides) });
    expect(res.statusCode, res.body).toBe(201);
    return res;
  };

  beforeAll(async () => {
    t = await buildTestApp('products');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  describe('create', () => {
    it('answers 201 with Location, ETag and the stored product, with defaults applied', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/products',
        payload: { sku: 'MUG-BLUE', name: 'Blue mug', price: { amount: 900, currency: 'EUR' }, category: 'kitchen' },
      });
      expect(res.statusCode).toBe(201);
      const body = res.json();
      expect(res.headers.location).toBe(`/v1/products/${body.id}`);
      expect(res.headers.etag).toBe('"1"');
      expect(body).toMatchObject({ sku: 'MUG-BLUE', status: 'draft', tags: [], attributes: {}, version: 1 });
      const doc = await stored(body.id);
      expect(doc).toMatchObject({
        sku: 'MUG-BLUE',
        name: 'Blue mug',
        price: { amount: 900, currency: 'EUR' },
        version: 1,
      });
      expect(doc!.createdAt).toBeInstanceOf(Date);
    });

    it('when a field is invalid, answers 400 naming each field, and stores nothing', async () => {
      const before = await t.app.db.connection.db!.collection('products').countDocuments();
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/products',
        payload: {
          sku: 'bad sku',
          name: '',
          price: { amount: -5, currency: 'euro' },
          category: 'x',
          extra: 1,
          attributes: { 'a-b': 1 },
        },
      });
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      const pointers = res.json().errors.map((e: { pointer: string }) => e.pointer);
      expect(pointers).toEqual(
        expect.arrayContaining(['/sku', '/name', '/price/amount', '/price/currency', '/extra', '/attributes/a-b']),
      );
      expect(await t.app.db.connection.db!.collection('products').countDocuments()).toBe(before);
    });

    it('when the SKU exists, answers 409 naming the field, without the index name', async () => {
      await create({ sku: 'DUP-1' });
      const res = await t.app.inject({ method: 'POST', url: '/v1/products', payload: productInput({ sku: 'DUP-1' }) });
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:duplicate',
        detail: 'A product with this sku already exists.',
      });
      expect(res.json().errors).toEqual([{ in: 'body', pointer: '/sku', message: 'is already taken' }]);
      expect(res.body).not.toContain('sku_unique');
    });
  });

  describe('read', () => {
    it('answers the product with its ETag, and 304 when If-None-Match is current', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({ url: `/v1/products/${created.id}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(created);
      const cached = await t.app.inject({
        url: `/v1/products/${created.id}`,
        headers: { 'if-none-match': res.headers.etag as string },
      });
      expect(cached.statusCode).toBe(304);
      expect(cached.body).toBe('');
    });

    it('answers 404 for an unknown id and 400 for a malformed one', async () => {
      const missing = await t.app.inject({ url: `/v1/products/${new mongoose.Types.ObjectId().toHexString()}` });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().type).toBe('urn:storekeeper:problem:not-found');
      const malformed = await t.app.inject({ url: '/v1/products/not-an-id' });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().errors[0]).toMatchObject({ in: 'params', pointer: '/id' });
    });
  });

  describe('replace and merge patch', () => {
    it('PUT replaces the writable fields and bumps the version; PATCH merges', async () => {
      const created = (await create({ tags: ['a'], attributes: { color: 'red', size: 'M' } })).json();
      const put = await t.app.inject({
        method: 'PUT',
        url: `/v1/products/${created.id}`,
        payload: { ...productInput({ sku: created.sku }), name: 'Renamed', tags: ['b'] },
      });
      expect(put.statusCode, put.body).toBe(200);
      expect(put.headers.etag).toBe('"2"');
      expect(put.json()).toMatchObject({ name: 'Renamed', tags: ['b'], version: 2, createdAt: created.createdAt });

      const patch = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${created.id}`,
        headers: { 'content-type': MERGE_PATCH },
        payload: { price: { amount: 1999 }, attributes: { size: null, fit: 'slim' }, description: null },
      });
      expect(patch.statusCode, patch.body).toBe(200);
      const body = patch.json();
      expect(body.price).toEqual({ amount: 1999, currency: 'EUR' });
      expect(body.attributes).toEqual({ color: 'red', material: 'cotton', weightGrams: 180, fit: 'slim' });
      expect(body).not.toHaveProperty('description');
      expect(body.version).toBe(3);
      const doc = await stored(created.id);
      expect(doc!.attributes).not.toHaveProperty('size');
      expect(doc).not.toHaveProperty('description');
    });

    it('a patch that removes a required field answers 400 and changes nothing', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${created.id}`,
        headers: { 'content-type': MERGE_PATCH },
        payload: { name: null },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([{ in: 'body', pointer: '/name', message: 'must be string' }]);
      expect((await stored(created.id))!.version).toBe(1);
    });

    it('the SKU cannot change after creation', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${created.id}`,
        headers: { 'content-type': MERGE_PATCH },
        payload: { sku: 'OTHER-1' },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors[0]).toMatchObject({ pointer: '/sku' });
    });

    it('a patch whose merged result breaks a rule answers 400 naming the field', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${created.id}`,
        headers: { 'content-type': MERGE_PATCH },
        payload: { tags: Array.from({ length: 21 }, (_, i) => `tag${i}`) },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors[0]).toMatchObject({ in: 'body', pointer: '/tags' });
      expect((await stored(created.id))!.tags).toEqual(created.tags);
    });

    it('PATCH with plain application/json is refused with 415', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({ method: 'PATCH', url: `/v1/products/${created.id}`, payload: { name: 'x' } });
      expect(res.statusCode).toBe(415);
      expect((await stored(created.id))!.name).toBe(created.name);
    });

    it("If-Match with a stale ETag answers 412 and the document keeps the other writer's change", async () => {
      const created = (await create()).json();
      const first = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${created.id}`,
        headers: { 'content-type': MERGE_PATCH, 'if-match': '"1"' },
        payload: { name: 'First writer' },
      });
      expect(first.statusCode).toBe(200);
      const second = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${created.id}`,
        headers: { 'content-type': MERGE_PATCH, 'if-match': '"1"' },
        payload: { name: 'Second writer' },
      });
      expect(second.statusCode).toBe(412);
      expect(second.json().type).toBe('urn:storekeeper:problem:precondition-failed');
      expect((await stored(created.id))!.name).toBe('First writer');
    });

    it('concurrent patches without If-Match lose no update', async () => {
      const created = (await create({ tags: [] })).json();
      const tags = Array.from({ length: 8 }, (_, i) => `t${i}`);
      // Each writer sets its own attribute: all of them must survive.
      const results = await Promise.all(
        tags.map((tag) =>
          t.app.inject({
            method: 'PATCH',
            url: `/v1/products/${created.id}`,
            headers: { 'content-type': MERGE_PATCH },
            payload: { attributes: { [tag]: true } },
          }),
        ),
      );
      const statuses = results.map((r) => r.statusCode);
      const succeeded = statuses.filter((s) => s === 200).length;
      expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
      const doc = await stored(created.id);
      expect(doc!.version).toBe(1 + succeeded);
      expect(Object.keys(doc!.attributes).filter((k) => k.startsWith('t'))).toHaveLength(succeeded);
    });
  });

  describe('delete', () => {
    it('deletes a product no order refers to: 204, then 404', async () => {
      const created = (await create()).json();
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/products/${created.id}` });
      expect(res.statusCode).toBe(204);
      expect(await stored(created.id)).toBeNull();
      expect((await t.app.inject({ method: 'DELETE', url: `/v1/products/${created.id}` })).statusCode).toBe(404);
    });

    it('archives a product that an order refers to: 200 with status archived', async () => {
      const created = (await create()).json();
      await t.app.db.connection
        .db!.collection('orders')
        .insertOne(storedOrder({ lines: [{ ...Order.serverExample.lines[0], sku: created.sku }] }));
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/products/${created.id}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ status: 'archived', version: 2 });
      expect((await stored(created.id))!.status).toBe('archived');
    });

    it('archives a product that a stock item names, which would otherwise name no product', async () => {
      const created = (await create()).json();
      const stocked = await t.app.inject({
        method: 'POST',
        url: '/v1/stock',
        payload: { sku: created.sku, warehouse: 'AMS-1', available: 3 },
      });
      expect(stocked.statusCode, stocked.body).toBe(201);
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/products/${created.id}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ status: 'archived', version: 2 });
      expect((await stored(created.id))!.status).toBe('archived');
    });
  });
});
