// The audit trail through the API: every successful write leaves one entry per document it
// changed, naming the key that wrote; a write that fails leaves none; keys holding audit:read
// list and read the entries; the collection has its validator, indexes and TTL index.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import mongoose from 'mongoose';
import { AUDIT_EXPIRY_INDEX, AuditEvent } from '../../src/domain/audit.ts';
import { Customer, Product } from '../../src/domain/entities/index.ts';
import { toMongoJsonSchema } from '../../src/data/json-schema.ts';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';

const DAY_MS = 86_400_000;
const MERGE_PATCH = 'application/merge-patch+json';

let sequence = 0;
const nextSku = () => `AUDIT-${String(++sequence).padStart(5, '0')}`;
const productInput = (overrides: Record<string, unknown> = {}) => ({
  ...Product.example,
  sku: nextSku(),
  ...overrides,
});

type Entry = Record<string, any>;

describe('the audit trail', () => {
  let t: TestApp;
  let s: Shop;
  /** A key that writes but cannot read the trail. */
  let writer: { id: string; key: string };
  /** A key that reads the trail and nothing else. */
  let auditor: { id: string; key: string };
  const db = () => t.app.db.connection.db!;
  const trail = () => db().collection('audit_events');
  /** The trail once every write answered so far has its entry (atomic writes' come from the change stream). */
  const settledTrail = async () => {
    await t.app.stores.audit.settled();
    return trail();
  };
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  const requestIdOf = (res: LightMyRequestResponse) => res.headers['x-request-id'] as string;
  /** The stored entries of one request, in the order they were written. */
  const entriesOf = async (res: LightMyRequestResponse) =>
    (await settledTrail())
      .find({ requestId: requestIdOf(res) })
      .sort({ _id: 1 })
      .toArray();
  const list = (query: string, key = auditor.key) => t.app.inject({ url: `/v1/audit${query}`, headers: as(key) });

  beforeAll(async () => {
    t = await buildTestApp('audit');
    await waitForDatabase(t.app);
    s = shop(t.app);
    writer = await t.createKey(['products:read', 'products:write', 'customers:write', 'stock:write', 'orders:write'], {
      name: 'writer-a',
    });
    auditor = await t.createKey(['audit:read'], { name: 'auditor' });
  });
  afterAll(() => t.app.close());

  describe('a successful write is recorded with the key that made it', () => {
    it('create, patch, replace and delete of a product: one entry each, with key, action, collection, document, version, request and time', async () => {
      const before = new Date();
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/products',
        headers: as(writer.key),
        payload: productInput(),
      });
      expect(created.statusCode, created.body).toBe(201);
      const id = created.json().id;
      const patched = await t.app.inject({
        method: 'PATCH',
        url: `/v1/products/${id}`,
        headers: { ...as(writer.key), 'content-type': MERGE_PATCH },
        payload: { name: 'Renamed' },
      });
      expect(patched.statusCode, patched.body).toBe(200);
      const replaced = await t.app.inject({
        method: 'PUT',
        url: `/v1/products/${id}`,
        headers: as(writer.key),
        payload: { ...productInput(), sku: created.json().sku },
      });
      expect(replaced.statusCode, replaced.body).toBe(200);
      const deleted = await t.app.inject({ method: 'DELETE', url: `/v1/products/${id}`, headers: as(writer.key) });
      expect(deleted.statusCode, deleted.body).toBe(204);
      const after = new Date();

      const expected: [LightMyRequestResponse, string, number][] = [
        [created, 'create', 1],
        [patched, 'patch', 2],
        [replaced, 'replace', 3],
        [deleted, 'delete', 3],
      ];
      for (const [res, action, version] of expected) {
        const entries = await entriesOf(res);
        expect(entries, action).toEqual([
          {
            _id: expect.any(mongoose.Types.ObjectId),
            at: expect.any(Date),
            keyId: writer.id,
            keyName: 'writer-a',
            action,
            collection: 'products',
            documentId: id,
            documentVersion: version,
            requestId: requestIdOf(res),
            expiresAt: expect.any(Date),
          },
        ]);
        const [entry] = entries as Entry[];
        expect(entry!.at.getTime()).toBeGreaterThanOrEqual(before.getTime());
        expect(entry!.at.getTime()).toBeLessThanOrEqual(after.getTime());
        // The default retention, AUDIT_RETENTION_DAYS=365.
        expect(entry!.expiresAt.getTime() - entry!.at.getTime()).toBe(365 * DAY_MS);
      }
    });

    it('the request id is the caller-chosen X-Request-Id when one is sent', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/products',
        headers: { ...as(writer.key), 'x-request-id': 'checkout-7f3a.1' },
        payload: productInput(),
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(await (await settledTrail()).find({ requestId: 'checkout-7f3a.1' }).toArray()).toEqual([
        expect.objectContaining({ keyId: writer.id, action: 'create', documentId: res.json().id }),
      ]);
    });

    it('an order placement records the order, every stock item it reserved and the customer, under one request id', async () => {
      await s.product('AUDIT-TEE');
      await s.product('AUDIT-MUG');
      const tee = await s.stock('AUDIT-TEE', 'AMS-1', 10);
      const mug = await s.stock('AUDIT-MUG', 'AMS-1', 5);
      const customer = await s.customer();
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: as(writer.key),
        payload: {
          customerId: customer.id,
          warehouse: 'AMS-1',
          lines: [
            { sku: 'AUDIT-TEE', quantity: 2 },
            { sku: 'AUDIT-MUG', quantity: 1 },
          ],
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      const order = res.json();
      const entries = (await entriesOf(res)) as Entry[];
      const summary = entries.map((e) => [e.action, e.collection, e.documentId, e.documentVersion]);
      expect(summary).toHaveLength(4);
      expect(summary).toEqual(
        expect.arrayContaining([
          ['place', 'orders', order.id, 1],
          ['place', 'stock', tee.id, 2],
          ['place', 'stock', mug.id, 2],
          ['place', 'customers', customer.id, 2],
        ]),
      );
      for (const entry of entries)
        expect(entry).toMatchObject({ keyId: writer.id, keyName: 'writer-a', requestId: requestIdOf(res) });
      // One change, committed together: one time for all its entries.
      expect(new Set(entries.map((e) => e.at.getTime())).size).toBe(1);
      // The versions recorded are the documents' versions after the write.
      expect((await s.storedCustomer(customer.id))!.version).toBe(2);
      expect((await s.storedStock('AUDIT-TEE', 'AMS-1'))!.version).toBe(2);

      // An action without stock records the order only; cancel also records the stock it released.
      const paid = await t.app.inject({ method: 'POST', url: `/v1/orders/${order.id}/pay`, headers: as(writer.key) });
      expect(paid.statusCode, paid.body).toBe(200);
      expect(
        ((await entriesOf(paid)) as Entry[]).map((e) => [e.action, e.collection, e.documentId, e.documentVersion]),
      ).toEqual([['pay', 'orders', order.id, 2]]);
      const cancelled = await t.app.inject({
        method: 'POST',
        url: `/v1/orders/${order.id}/cancel`,
        headers: as(writer.key),
      });
      expect(cancelled.statusCode, cancelled.body).toBe(200);
      expect(((await entriesOf(cancelled)) as Entry[]).map((e) => [e.action, e.collection, e.documentId])).toEqual([
        ['cancel', 'orders', order.id],
        ['cancel', 'stock', tee.id],
        ['cancel', 'stock', mug.id],
      ]);
    });

    it('deleting a product that an order refers to records an archive', async () => {
      const product = await s.product('AUDIT-ARCHIVED');
      await s.stock('AUDIT-ARCHIVED', 'AMS-1', 3);
      expect(
        (await s.place((await s.customer()).id, 'AMS-1', [{ sku: 'AUDIT-ARCHIVED', quantity: 1 }])).statusCode,
      ).toBe(201);
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/products/${product.id}`, headers: as(writer.key) });
      expect(res.statusCode, res.body).toBe(200);
      expect(await entriesOf(res)).toEqual([
        expect.objectContaining({
          action: 'archive',
          collection: 'products',
          documentId: product.id,
          documentVersion: 2,
        }),
      ]);
    });

    it('restock and move record every stock item they change', async () => {
      await s.product('AUDIT-MOVE');
      const restocked = await t.app.inject({
        method: 'POST',
        url: '/v1/stock/restock',
        headers: as(writer.key),
        payload: { sku: 'AUDIT-MOVE', warehouse: 'AMS-1', quantity: 10 },
      });
      expect(restocked.statusCode, restocked.body).toBe(201);
      const item = restocked.json();
      expect(await entriesOf(restocked)).toEqual([
        expect.objectContaining({
          keyId: writer.id,
          action: 'restock',
          collection: 'stock',
          documentId: item.id,
          documentVersion: 1,
        }),
      ]);

      const moved = await t.app.inject({
        method: 'POST',
        url: '/v1/stock/move',
        headers: as(writer.key),
        payload: { sku: 'AUDIT-MOVE', from: 'AMS-1', to: 'BER-2', quantity: 4 },
      });
      expect(moved.statusCode, moved.body).toBe(200);
      const { from, to } = moved.json();
      expect(((await entriesOf(moved)) as Entry[]).map((e) => [e.action, e.documentId, e.documentVersion])).toEqual([
        ['move', from.id, from.version],
        ['move', to.id, to.version],
      ]);
    });

    it('a batch records every operation, in order, under its request id', async () => {
      const doomed = (
        await t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload: productInput() })
      ).json();
      const customer = await s.customer();
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: as(writer.key),
        payload: {
          operations: [
            { op: 'insert', collection: 'products', document: productInput() },
            { op: 'patch', collection: 'customers', id: customer.id, patch: { name: 'Ada King' } },
            { op: 'delete', collection: 'products', id: doomed.id },
          ],
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const { results } = res.json();
      expect(
        ((await entriesOf(res)) as Entry[]).map((e) => [
          e.keyId,
          e.action,
          e.collection,
          e.documentId,
          e.documentVersion,
        ]),
      ).toEqual([
        [writer.id, 'create', 'products', results[0].id, 1],
        [writer.id, 'patch', 'customers', customer.id, 2],
        [writer.id, 'delete', 'products', doomed.id, 1],
      ]);
    });

    it('an idempotent replay is no new write: the first request has its entry, the replay none', async () => {
      const headers = { ...as(writer.key), 'idempotency-key': `audit-replay-${process.pid}` };
      const payload = productInput();
      const first = await t.app.inject({ method: 'POST', url: '/v1/products', headers, payload });
      expect(first.statusCode, first.body).toBe(201);
      const replay = await t.app.inject({ method: 'POST', url: '/v1/products', headers, payload });
      expect(replay.statusCode).toBe(201);
      expect(replay.headers['idempotency-replayed']).toBe('true');
      expect(await entriesOf(first)).toHaveLength(1);
      expect(await entriesOf(replay)).toEqual([]);
      expect(await (await settledTrail()).countDocuments({ documentId: first.json().id })).toBe(1);
    });
  });

  describe('a write that fails leaves no entry', () => {
    /** Sends a request that must fail, and checks it changed neither the trail nor anything else. */
    const refused = async (status: number, send: () => Promise<LightMyRequestResponse>) => {
      const before = await (await settledTrail()).countDocuments();
      const res = await send();
      expect(res.statusCode, res.body).toBe(status);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(await entriesOf(res)).toEqual([]);
      expect(await (await settledTrail()).countDocuments()).toBe(before);
      return res;
    };

    it('400: a document that fails validation', async () => {
      await refused(400, () =>
        t.app.inject({
          method: 'POST',
          url: '/v1/products',
          headers: as(writer.key),
          payload: productInput({ price: { amount: -1, currency: 'EUR' } }),
        }),
      );
      // A merge patch whose result is invalid fails inside the write, after the document was read.
      const created = (
        await t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload: productInput() })
      ).json();
      await refused(400, () =>
        t.app.inject({
          method: 'PATCH',
          url: `/v1/products/${created.id}`,
          headers: { ...as(writer.key), 'content-type': MERGE_PATCH },
          payload: { name: null },
        }),
      );
    });

    it('409: a duplicate SKU', async () => {
      const payload = productInput();
      expect(
        (await t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload })).statusCode,
      ).toBe(201);
      const res = await refused(409, () =>
        t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload }),
      );
      expect(res.json().type).toBe('urn:storekeeper:problem:duplicate');
    });

    it('412: If-Match naming an old version', async () => {
      const created = (
        await t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload: productInput() })
      ).json();
      const patch = (ifMatch: string) =>
        t.app.inject({
          method: 'PATCH',
          url: `/v1/products/${created.id}`,
          headers: { ...as(writer.key), 'content-type': MERGE_PATCH, 'if-match': ifMatch },
          payload: { name: 'Next' },
        });
      expect((await patch('"1"')).statusCode).toBe(200);
      await refused(412, () => patch('"1"'));
      await refused(412, () =>
        t.app.inject({
          method: 'DELETE',
          url: `/v1/products/${created.id}`,
          headers: { ...as(writer.key), 'if-match': '"1"' },
        }),
      );
      expect(await (await settledTrail()).countDocuments({ documentId: created.id })).toBe(2);
    });

    it('409: a batch whose last operation fails records none of the earlier ones', async () => {
      const taken = productInput();
      expect(
        (await t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload: taken }))
          .statusCode,
      ).toBe(201);
      const fresh = productInput();
      const res = await refused(409, () =>
        t.app.inject({
          method: 'POST',
          url: '/v1/batch',
          headers: as(writer.key),
          payload: {
            operations: [
              { op: 'insert', collection: 'products', document: fresh },
              {
                op: 'insert',
                collection: 'customers',
                document: { ...Customer.example, email: `audit-batch-${process.pid}@example.com` },
              },
              { op: 'insert', collection: 'products', document: { ...productInput(), sku: taken.sku } },
            ],
          },
        }),
      );
      expect(res.json().failedOperation).toEqual({ index: 2, op: 'insert', collection: 'products' });
      expect(await db().collection('products').findOne({ sku: fresh.sku })).toBeNull();
    });

    it('409: an order that cannot be placed for lack of stock', async () => {
      await s.product('AUDIT-SHORT');
      await s.product('AUDIT-PLENTY');
      await s.stock('AUDIT-PLENTY', 'AMS-1', 10);
      await s.stock('AUDIT-SHORT', 'AMS-1', 1);
      const customer = await s.customer();
      const snapshot = await s.snapshot();
      const res = await refused(409, () =>
        t.app.inject({
          method: 'POST',
          url: '/v1/orders',
          headers: as(writer.key),
          // The first line is reserved before the second is found short: the abort takes both back.
          payload: {
            customerId: customer.id,
            warehouse: 'AMS-1',
            lines: [
              { sku: 'AUDIT-PLENTY', quantity: 2 },
              { sku: 'AUDIT-SHORT', quantity: 3 },
            ],
          },
        }),
      );
      expect(res.json().type).toBe('urn:storekeeper:problem:insufficient-stock');
      expect(await s.snapshot()).toEqual(snapshot);
    });

    it('404 and 409 of the workflows: an unknown order, a transition its status does not allow', async () => {
      await refused(404, () =>
        t.app.inject({
          method: 'POST',
          url: `/v1/orders/${new mongoose.Types.ObjectId().toHexString()}/pay`,
          headers: as(writer.key),
        }),
      );
      await s.product('AUDIT-TWICE');
      await s.stock('AUDIT-TWICE', 'AMS-1', 2);
      const order = (await s.place((await s.customer()).id, 'AMS-1', [{ sku: 'AUDIT-TWICE', quantity: 1 }])).json();
      await refused(409, () =>
        t.app.inject({ method: 'POST', url: `/v1/orders/${order.id}/ship`, headers: as(writer.key) }),
      );
    });
  });

  describe('GET /v1/audit', () => {
    let other: { id: string; key: string };
    let product: Record<string, any>;

    beforeAll(async () => {
      // A second writer, and a product with a history of five writes by both keys.
      other = await t.createKey(['products:write'], { name: 'writer-b' });
      product = (
        await t.app.inject({ method: 'POST', url: '/v1/products', headers: as(writer.key), payload: productInput() })
      ).json();
      for (const [key, name] of [
        [other.key, 'B1'],
        [writer.key, 'A2'],
        [other.key, 'B3'],
        [writer.key, 'A4'],
      ] as const) {
        const res = await t.app.inject({
          method: 'PATCH',
          url: `/v1/products/${product.id}`,
          headers: { ...as(key), 'content-type': MERGE_PATCH },
          payload: { name },
        });
        expect(res.statusCode, res.body).toBe(200);
      }
    });

    it('needs the audit:read scope: 401 without a key, 403 naming the scope for a key without it', async () => {
      const anonymous = await t.app.inject({ url: '/v1/audit', headers: { authorization: undefined } });
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.headers['content-type']).toMatch(PROBLEM);
      for (const url of ['/v1/audit', `/v1/audit/${new mongoose.Types.ObjectId().toHexString()}`]) {
        const forbidden = await t.app.inject({ url, headers: as(writer.key) });
        expect(forbidden.statusCode, url).toBe(403);
        expect(forbidden.json()).toMatchObject({
          type: 'urn:storekeeper:problem:insufficient-scope',
          missingScopes: ['audit:read'],
        });
      }
      expect((await list('')).statusCode).toBe(200);
    });

    it("lists one document's history newest first, by collection and documentId", async () => {
      const res = await list(`?collection=products&documentId=${product.id}`);
      expect(res.statusCode, res.body).toBe(200);
      const { items, next } = res.json();
      expect(next).toBeNull();
      expect(items.map((e: Entry) => [e.action, e.keyName, e.documentVersion])).toEqual([
        ['patch', 'writer-a', 5],
        ['patch', 'writer-b', 4],
        ['patch', 'writer-a', 3],
        ['patch', 'writer-b', 2],
        ['create', 'writer-a', 1],
      ]);
      // As stored, in the API's spelling.
      const stored = await (await settledTrail()).findOne({ documentId: product.id, documentVersion: 1 });
      expect(items[4]).toEqual({
        id: stored!._id.toHexString(),
        at: stored!.at.toISOString(),
        keyId: writer.id,
        keyName: 'writer-a',
        action: 'create',
        collection: 'products',
        documentId: product.id,
        documentVersion: 1,
        requestId: stored!.requestId,
        expiresAt: stored!.expiresAt.toISOString(),
      });
      // sort=at: oldest first.
      const oldest = (await list(`?collection=products&documentId=${product.id}&sort=at`)).json().items;
      expect(oldest.map((e: Entry) => e.documentVersion)).toEqual([1, 2, 3, 4, 5]);
    });

    it('takes at most 10 filters, as every list does', async () => {
      const filters = [
        'keyId=6650f0c2a1b2c3d4e5f60718',
        'action=create',
        'collection=products',
        'documentId=6650f0c2a1b2c3d4e5f60718',
        'requestId=r1',
      ];
      const times = [
        'at[gt]=2026-01-01T00:00:00Z',
        'at[gte]=2026-01-01T00:00:00Z',
        'at[lt]=2027-01-01T00:00:00Z',
        'at[lte]=2027-01-01T00:00:00Z',
      ];
      expect((await list(`?${[...filters, ...times, 'action[in]=create,patch'].join('&')}`)).statusCode).toBe(200);
      const tooMany = await list(
        `?${[...filters, ...times, 'action[in]=create,patch', 'collection[in]=products'].join('&')}`,
      );
      expect(tooMany.statusCode).toBe(400);
      expect(tooMany.json().errors[0].message).toBe('has 11 filters; at most 10 are allowed');
    });

    it('filters by key, action (also several), request id and time range', async () => {
      const byKey = (await list(`?keyId=${other.id}`)).json().items as Entry[];
      expect(byKey.map((e) => [e.keyId, e.keyName, e.documentVersion])).toEqual([
        [other.id, 'writer-b', 4],
        [other.id, 'writer-b', 2],
      ]);

      const creates = (await list('?action=create&limit=200')).json().items as Entry[];
      expect(creates.length).toBeGreaterThan(0);
      expect(creates.every((e) => e.action === 'create')).toBe(true);
      const createsOrDeletes = (await list('?action[in]=create,delete&limit=200')).json().items as Entry[];
      expect(new Set(createsOrDeletes.map((e) => e.action))).toEqual(new Set(['create', 'delete']));
      expect(createsOrDeletes.filter((e) => e.action === 'create')).toEqual(creates);

      const [newest] = (await list(`?documentId=${product.id}&limit=1`)).json().items as Entry[];
      const byRequest = (await list(`?requestId=${encodeURIComponent(newest!.requestId)}`)).json().items as Entry[];
      expect(byRequest).toEqual([newest]);

      // A time range around the second and third writes of the product's history.
      const history = (await list(`?documentId=${product.id}&sort=at`)).json().items as Entry[];
      const range = (
        await list(`?documentId=${product.id}&at[gte]=${history[1]!.at}&at[lte]=${history[2]!.at}&sort=at`)
      ).json().items as Entry[];
      expect(range.map((e) => e.documentVersion)).toEqual([2, 3]);
      const since = (await list(`?documentId=${product.id}&at[gt]=${history[3]!.at}`)).json().items as Entry[];
      expect(since.map((e) => e.documentVersion)).toEqual([5]);
      // fields: only those asked for, with the id (and the sort key the cursor needs).
      const [slim] = (await list(`?documentId=${product.id}&fields=action,keyName&limit=1`)).json().items as Entry[];
      expect(slim).toEqual({ id: newest!.id, action: 'patch', keyName: 'writer-a', at: newest!.at });
    });

    it('pages with opaque cursors through `next` and Link, visiting every entry once, newest first', async () => {
      const all = (await list('?limit=200')).json();
      expect(all.next).toBeNull();
      const everything = all.items as Entry[];
      expect(everything.length).toBeGreaterThan(10);
      // Newest first, ties broken by id.
      for (let i = 1; i < everything.length; i++) {
        const [newer, older] = [everything[i - 1]!, everything[i]!];
        expect(
          newer.at > older.at || (newer.at === older.at && newer.id > older.id),
          `${newer.id} before ${older.id}`,
        ).toBe(true);
      }

      const visited: Entry[] = [];
      let url: string | null = '/v1/audit?limit=3&count=true';
      let pages = 0;
      while (url !== null) {
        const res: LightMyRequestResponse = await t.app.inject({ url, headers: as(auditor.key) });
        expect(res.statusCode, res.body).toBe(200);
        const page: { items: Entry[]; next: string | null; total?: number } = res.json();
        expect(page.items.length).toBeLessThanOrEqual(3);
        expect(page.total).toBe(everything.length);
        if (page.next !== null) expect(res.headers.link).toBe(`<${page.next}>; rel="next"`);
        visited.push(...page.items);
        url = page.next;
        pages++;
      }
      expect(pages).toBe(Math.ceil(everything.length / 3));
      expect(visited).toEqual(everything);
    });

    it('refuses what it does not serve: a page above the cap, an unknown filter, a cursor of another query, a malformed id', async () => {
      const tooMany = await list('?limit=201');
      expect(tooMany.statusCode).toBe(400);
      expect(tooMany.json().errors).toEqual([expect.objectContaining({ in: 'query', pointer: '/limit' })]);
      expect((await list('?keyName=writer-a')).statusCode).toBe(400);
      expect((await list('?action=launch')).statusCode).toBe(400);
      expect((await list('?keyId=not-a-key')).statusCode).toBe(400);

      const next = (await list('?limit=1')).json().next as string;
      const cursor = new URL(next, 'http://x').searchParams.get('cursor')!;
      const misused = await list(`?limit=1&action=patch&cursor=${cursor}`);
      expect(misused.statusCode).toBe(400);
      expect(misused.json().type).toBe('urn:storekeeper:problem:invalid-cursor');

      expect((await list('/not-an-id')).statusCode).toBe(400);
    });

    it('GET /v1/audit/{id} answers one entry as listed, 404 for an unknown id', async () => {
      const [entry] = (await list(`?documentId=${product.id}&limit=1`)).json().items as Entry[];
      const res = await list(`/${entry!.id}`);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual(entry);
      const missing = await list(`/${new mongoose.Types.ObjectId().toHexString()}`);
      expect(missing.statusCode).toBe(404);
      expect(missing.headers['content-type']).toMatch(PROBLEM);
    });

    it('reading the trail is no write: it records nothing', async () => {
      const before = await (await settledTrail()).countDocuments();
      expect((await list('?limit=5')).statusCode).toBe(200);
      expect(await (await settledTrail()).countDocuments()).toBe(before);
    });
  });

  describe('retention and schema', () => {
    it('expiresAt is AUDIT_RETENTION_DAYS after the write, as configured when it was written', async () => {
      const shortLived = await buildAppOn(t.dbName, writer.key, { AUDIT_RETENTION_DAYS: '7' });
      try {
        await waitForDatabase(shortLived.app);
        const res = await shortLived.app.inject({ method: 'POST', url: '/v1/products', payload: productInput() });
        expect(res.statusCode, res.body).toBe(201);
        const [entry] = (await entriesOf(res)) as Entry[];
        expect(entry!.expiresAt.getTime() - entry!.at.getTime()).toBe(7 * DAY_MS);
      } finally {
        await shortLived.app.close();
      }
    });

    it('the collection has the declaration as its strict validator, the declared indexes and the TTL index on expiresAt', async () => {
      const [info] = await db().listCollections({ name: 'audit_events' }).toArray();
      const options = (info as { options: Record<string, unknown> }).options;
      expect(options.validator).toEqual({ $jsonSchema: toMongoJsonSchema(AuditEvent.stored) });
      expect(options.validationLevel).toBe('strict');
      expect(options.validationAction).toBe('error');

      const indexes = (await trail().listIndexes().toArray()).filter((index) => index.name !== '_id_');
      const simplified = indexes.map(({ name, key, expireAfterSeconds }) => ({
        name,
        key,
        ...(expireAfterSeconds !== undefined && { expireAfterSeconds }),
      }));
      const declared = [...AuditEvent.indexes.map(({ name, key }) => ({ name, key })), AUDIT_EXPIRY_INDEX];
      const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
      expect(simplified.sort(byName)).toEqual(declared.sort(byName));
    });

    it('the database refuses an entry that is not one (the validator holds the shape)', async () => {
      const now = new Date();
      const entry = {
        at: now,
        keyId: writer.id,
        keyName: 'x',
        action: 'create',
        collection: 'products',
        documentId: writer.id,
        documentVersion: 1,
        requestId: 'r',
        expiresAt: now,
      };
      await expect(trail().insertOne({ ...entry, contents: { name: 'leak' } })).rejects.toThrow(
        /Document failed validation/,
      );
      await expect(trail().insertOne({ ...entry, action: 'launch' })).rejects.toThrow(/Document failed validation/);
    });
  });
});
