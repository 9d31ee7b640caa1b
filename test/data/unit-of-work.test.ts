// What the unit of work publishes after a commit: every kind of write publishes exactly the changes
// it committed (the same ones its audit entries name, with its actor and time), once, and a write
// that was refused, aborted or replayed publishes nothing. A batch written document by document
// (runEach) audits and publishes what landed, even when it fails partway.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/data/unit-of-work.ts';
import { Product } from '../../src/domain/entities/index.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop as shopOf, type Shop } from '../helpers/shop.ts';

describe('UnitOfWork: changes published after the commit', () => {
  let t: TestApp;
  let shop: Shop;
  const published: Change[][] = [];
  let stop: () => void;

  beforeAll(async () => {
    t = await buildTestApp('unit_of_work');
    await waitForDatabase(t.app);
    shop = shopOf(t.app);
    stop = t.app.stores.work.subscribe((changes) => published.push([...changes]));
  });
  afterAll(async () => {
    stop();
    await t.app.close();
  });

  /** Sends a request with a request id of its own; returns the answer and what was published for it. */
  async function send(options: {
    method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    url: string;
    payload?: unknown;
    headers?: Record<string, string>;
  }) {
    const requestId = randomUUID();
    const res = await t.app.inject({ ...options, headers: { ...options.headers, 'x-request-id': requestId } } as never);
    const batches = published.filter((changes) => changes.some((change) => change.requestId === requestId));
    return { res, requestId, batches };
  }

  /** The request's audit entries, as the published changes should name them. */
  async function audited(requestId: string) {
    await t.app.stores.audit.settled();
    const entries = await t.app.db.connection
      .db!.collection('audit_events')
      .find({ requestId })
      .sort({ _id: 1 })
      .toArray();
    return entries.map((entry) => ({
      collection: entry.collection,
      documentId: entry.documentId,
      ...(entry.documentVersion !== undefined && { version: entry.documentVersion }),
      action: entry.action,
      requestId,
      actor: { keyId: entry.keyId, keyName: entry.keyName },
      at: entry.at,
    }));
  }

  /** The write committed and published its changes in one batch: exactly those its audit entries name. */
  async function expectPublished(
    sent: Awaited<ReturnType<typeof send>>,
    status: number,
    expected: { collection: string; action: string }[],
  ) {
    expect(sent.res.statusCode, sent.res.body).toBe(status);
    expect(sent.batches).toHaveLength(1);
    const [changes] = sent.batches;
    expect(changes!.map(({ collection, action }) => ({ collection, action }))).toEqual(expected);
    expect(changes).toEqual(await audited(sent.requestId));
    return changes!;
  }

  const patch = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    send({ method: 'PATCH', url, payload, headers: { 'content-type': 'application/merge-patch+json', ...headers } });

  it('documents: create, replace, patch, delete and archive each publish their one change', async () => {
    const created = await send({
      method: 'POST',
      url: '/v1/products',
      payload: { sku: 'UOW-1', name: 'One', price: { amount: 100, currency: 'EUR' }, category: 'test' },
    });
    const [change] = await expectPublished(created, 201, [{ collection: 'products', action: 'create' }]);
    const id = created.res.json().id as string;
    expect(change).toMatchObject({ documentId: id, version: 1 });

    const replaced = await send({
      method: 'PUT',
      url: `/v1/products/${id}`,
      payload: { sku: 'UOW-1', name: 'Two', price: { amount: 200, currency: 'EUR' }, category: 'test' },
    });
    expect((await expectPublished(replaced, 200, [{ collection: 'products', action: 'replace' }]))[0]).toMatchObject({
      documentId: id,
      version: 2,
    });
    await expectPublished(await patch(`/v1/products/${id}`, { name: 'Three' }), 200, [
      { collection: 'products', action: 'patch' },
    ]);
    const deleted = await send({ method: 'DELETE', url: `/v1/products/${id}` });
    expect((await expectPublished(deleted, 204, [{ collection: 'products', action: 'delete' }]))[0]).toMatchObject({
      documentId: id,
      version: 3,
    });

    // A product an order refers to is archived.
    await shop.product('UOW-2');
    await shop.stock('UOW-2', 'AMS-1', 5);
    const customer = await shop.customer();
    const placed = await shop.place(customer.id, 'AMS-1', [{ sku: 'UOW-2', quantity: 1 }]);
    expect(placed.statusCode, placed.body).toBe(201);
    const product = (await t.app.inject({ method: 'GET', url: '/v1/products?sku=UOW-2' })).json().items[0];
    await expectPublished(await send({ method: 'DELETE', url: `/v1/products/${product.id}` }), 200, [
      { collection: 'products', action: 'archive' },
    ]);
  });

  it('orders and stock: placement, status actions, restock and move publish every document they changed', async () => {
    await shop.product('UOW-3');
    await shop.stock('UOW-3', 'AMS-1', 10);
    const customer = await shop.customer();
    const placed = await send({
      method: 'POST',
      url: '/v1/orders',
      payload: { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: 'UOW-3', quantity: 2 }] },
    });
    await expectPublished(placed, 201, [
      { collection: 'stock', action: 'place' },
      { collection: 'orders', action: 'place' },
      { collection: 'customers', action: 'place' },
    ]);
    const order = placed.res.json().id as string;
    await expectPublished(await send({ method: 'POST', url: `/v1/orders/${order}/pay` }), 200, [
      { collection: 'orders', action: 'pay' },
    ]);
    await expectPublished(await send({ method: 'POST', url: `/v1/orders/${order}/cancel` }), 200, [
      { collection: 'orders', action: 'cancel' },
      { collection: 'stock', action: 'cancel' },
    ]);
    await expectPublished(
      await send({
        method: 'POST',
        url: '/v1/stock/restock',
        payload: { sku: 'UOW-3', warehouse: 'BER-1', quantity: 4 },
      }),
      201,
      [{ collection: 'stock', action: 'restock' }],
    );
    await expectPublished(
      await send({
        method: 'POST',
        url: '/v1/stock/move',
        payload: { sku: 'UOW-3', from: 'AMS-1', to: 'BER-1', quantity: 3 },
      }),
      200,
      [
        { collection: 'stock', action: 'move' },
        { collection: 'stock', action: 'move' },
      ],
    );
  });

  it('a batch publishes all its operations together, once', async () => {
    const customer = await shop.customer();
    const batch = await send({
      method: 'POST',
      url: '/v1/batch',
      payload: {
        operations: [
          {
            op: 'insert',
            collection: 'products',
            document: { sku: 'UOW-4', name: 'Four', price: { amount: 1, currency: 'EUR' }, category: 'test' },
          },
          {
            op: 'insert',
            collection: 'products',
            document: { sku: 'UOW-5', name: 'Five', price: { amount: 1, currency: 'EUR' }, category: 'test' },
          },
          { op: 'patch', collection: 'customers', id: customer.id, patch: { name: 'Patched' } },
          { op: 'delete', collection: 'customers', id: customer.id },
        ],
      },
    });
    await expectPublished(batch, 200, [
      { collection: 'products', action: 'create' },
      { collection: 'products', action: 'create' },
      { collection: 'customers', action: 'patch' },
      { collection: 'customers', action: 'delete' },
    ]);
  });

  it('keys: creation and revocation publish the key; a second revocation changes nothing and publishes nothing', async () => {
    const created = await send({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: 'uow', scopes: ['products:read'] },
    });
    const [change] = await expectPublished(created, 201, [{ collection: 'api_keys', action: 'create' }]);
    const id = created.res.json().id as string;
    expect(change).toMatchObject({ documentId: id });
    expect(change).not.toHaveProperty('version');
    await expectPublished(await send({ method: 'DELETE', url: `/v1/keys/${id}` }), 200, [
      { collection: 'api_keys', action: 'revoke' },
    ]);
    const again = await send({ method: 'DELETE', url: `/v1/keys/${id}` });
    expect(again.res.statusCode).toBe(200);
    expect(again.batches).toEqual([]);
  });

  it('refused writes publish nothing', async () => {
    const product = await shop.product('UOW-6');
    await shop.stock('UOW-6', 'AMS-1', 1);
    const customer = await shop.customer();
    const refusals = [
      await send({
        method: 'POST',
        url: '/v1/orders',
        payload: { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: 'UOW-6', quantity: 2 }] },
      }),
      await patch(`/v1/products/${product.id}`, { name: 'Late' }, { 'if-match': '"7"' }),
      await send({ method: 'DELETE', url: `/v1/customers/${'0'.repeat(24)}` }),
      await send({
        method: 'POST',
        url: '/v1/batch',
        payload: {
          operations: [
            { op: 'patch', collection: 'products', id: product.id, patch: { name: 'Batched' } },
            { op: 'patch', collection: 'products', id: '0'.repeat(24), patch: { name: 'Missing' } },
          ],
        },
      }),
      await send({
        method: 'POST',
        url: '/v1/stock/move',
        payload: { sku: 'UOW-6', from: 'AMS-1', to: 'BER-1', quantity: 5 },
      }),
    ];
    expect(refusals.map(({ res }) => res.statusCode)).toEqual([409, 412, 404, 404, 409]);
    for (const refused of refusals) {
      expect(refused.batches).toEqual([]);
      expect(await audited(refused.requestId)).toEqual([]);
    }
  });

  it('work that throws after writing publishes nothing; a replayed write publishes nothing again', async () => {
    const product = await shop.product('UOW-7');
    const before = published.length;
    const actor = { keyId: '0'.repeat(24), keyName: 'unit-of-work-test', requestId: randomUUID() };
    await expect(
      t.app.stores.work.run({ actor, log: t.app.log }, async (tx) => {
        await t.app.shop.documents.patchIn(tx, { collection: 'products', id: product.id, patch: { name: 'Never' } });
        throw new Error('failed after the write');
      }),
    ).rejects.toThrow('failed after the write');
    expect(published.length).toBe(before);

    const request = {
      method: 'POST' as const,
      url: '/v1/stock',
      payload: { sku: 'UOW-7', warehouse: 'AMS-1', available: 1 },
      headers: { 'idempotency-key': randomUUID() },
    };
    await expectPublished(await send(request), 201, [{ collection: 'stock', action: 'create' }]);
    const replayed = await send(request);
    expect(replayed.res.statusCode).toBe(201);
    expect(replayed.res.headers['idempotency-replayed']).toBe('true');
    expect(replayed.batches).toEqual([]);
  });

  it('runEach: the writes of a batch store their entries and publish together; work failing partway still audits what landed', async () => {
    const actor = { keyId: '0'.repeat(24), keyName: 'unit-of-work-test', requestId: randomUUID() };
    const fields = (sku: string) => ({ ...structuredClone(Product.example), sku });
    const before = published.length;
    const written = await t.app.stores.work.runEach({ actor, log: t.app.log }, (tx) =>
      t.app.shop.documents.insertIn(tx, 'products', [fields('EACH-1'), fields('EACH-2')]),
    );
    expect(published.length).toBe(before + 1);
    expect(published.at(-1)).toEqual(await audited(actor.requestId));
    expect(published.at(-1)!.map((change) => change.documentId)).toEqual(written.map((d) => d._id.toHexString()));

    // The second insert is refused (its SKU is taken): the first one landed, and is audited.
    const failing = { ...actor, requestId: randomUUID() };
    await expect(
      t.app.stores.work.runEach({ actor: failing, log: t.app.log }, async (tx) => {
        await t.app.shop.documents.insertIn(tx, 'products', [fields('EACH-3')]);
        await t.app.shop.documents.insertIn(tx, 'products', [fields('EACH-1')]);
      }),
    ).rejects.toThrow();
    const landed = await t.app.db.connection.db!.collection('products').findOne({ sku: 'EACH-3' });
    const entries = await audited(failing.requestId);
    expect(entries.map((entry) => [entry.documentId, entry.action])).toEqual([[landed!._id.toHexString(), 'create']]);
    expect(published.at(-1)).toEqual(entries);
  });
});
