import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';

let keys = 0;
const newKey = () => `test-key-${process.pid}-${++keys}`;

describe('Idempotency-Key on POST routes', () => {
  let t: TestApp;
  let s: Shop;

  beforeAll(async () => {
    t = await buildTestApp('idempotency');
    await waitForDatabase(t.app);
    s = shop(t.app);
  });
  afterAll(() => t.app.close());

  const post = (url: string, key: string | undefined, payload?: unknown) =>
    t.app.inject({
      method: 'POST',
      url,
      ...(key !== undefined && { headers: { 'idempotency-key': key } }),
      ...(payload !== undefined && { payload: payload as object }),
    });
  const count = (collection: string, filter: Record<string, unknown>) =>
    t.app.db.connection.db!.collection(collection).countDocuments(filter);

  it('places the same order sent 20 times at once exactly once, and answers every request with it', async () => {
    await s.product('IDEM-RACE', { amount: 500 });
    await s.stock('IDEM-RACE', 'AMS-1', 100);
    const customer = await s.customer();
    const key = newKey();
    const placement = { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: 'IDEM-RACE', quantity: 2 }] };

    const responses = await Promise.all(Array.from({ length: 20 }, () => post('/v1/orders', key, placement)));

    for (const res of responses) expect(res.statusCode, res.body).toBe(201);
    const ids = new Set(responses.map((res) => res.json().id));
    expect(ids.size).toBe(1);
    expect(new Set(responses.map((res) => res.headers.location)).size).toBe(1);
    expect(responses.filter((res) => res.headers['idempotency-replayed'] === 'true')).toHaveLength(19);
    expect(await count('orders', { 'lines.sku': 'IDEM-RACE' })).toBe(1);
    expect(await s.storedStock('IDEM-RACE', 'AMS-1')).toMatchObject({ available: 98, reserved: 2 });
  });

  it('replays the stored answer of a sequential retry without running the handler again', async () => {
    await s.product('IDEM-SEQ', { amount: 700 });
    await s.stock('IDEM-SEQ', 'AMS-1', 10);
    const customer = await s.customer();
    const key = newKey();
    const placement = { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: 'IDEM-SEQ', quantity: 3 }] };

    const first = await post('/v1/orders', key, placement);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.headers['idempotency-replayed']).toBeUndefined();
    // Key order does not change the fingerprint.
    const retry = await post('/v1/orders', key, {
      lines: placement.lines,
      warehouse: 'AMS-1',
      customerId: customer.id,
    });
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotency-replayed']).toBe('true');
    expect(retry.body).toBe(first.body);
    expect(retry.headers.location).toBe(first.headers.location);
    expect(retry.headers.etag).toBe(first.headers.etag);
    expect(retry.headers['content-type']).toBe(first.headers['content-type']);
    expect(retry.headers['x-request-id']).not.toBe(first.headers['x-request-id']);

    expect(await count('orders', { 'lines.sku': 'IDEM-SEQ' })).toBe(1);
    expect(await s.storedStock('IDEM-SEQ', 'AMS-1')).toMatchObject({ available: 7, reserved: 3 });
    expect((await s.storedCustomer(customer.id))!.stats.orderCount).toBe(1);
  });

  it('refuses the same key with another body with 422 and changes nothing', async () => {
    await s.product('IDEM-REUSE', { amount: 100 });
    await s.stock('IDEM-REUSE', 'AMS-1', 10);
    const customer = await s.customer();
    const key = newKey();
    const first = await post('/v1/orders', key, {
      customerId: customer.id,
      warehouse: 'AMS-1',
      lines: [{ sku: 'IDEM-REUSE', quantity: 1 }],
    });
    expect(first.statusCode).toBe(201);
    const before = await s.snapshot();

    const other = await post('/v1/orders', key, {
      customerId: customer.id,
      warehouse: 'AMS-1',
      lines: [{ sku: 'IDEM-REUSE', quantity: 5 }],
    });
    expect(other.statusCode).toBe(422);
    expect(other.headers['content-type']).toMatch(PROBLEM);
    expect(other.json()).toMatchObject({ type: 'urn:storekeeper:problem:idempotency-key-reused', status: 422 });
    expect(await s.snapshot()).toEqual(before);
  });

  it('scopes a key to its route: the same key on another route is a new request', async () => {
    const key = newKey();
    const product = await post('/v1/products', key, {
      sku: 'IDEM-SCOPE',
      name: 'Scoped',
      price: { amount: 1, currency: 'EUR' },
      category: 'test',
      status: 'active',
    });
    expect(product.statusCode, product.body).toBe(201);
    const customer = await post('/v1/customers', key, { email: `scope-${process.pid}@example.com`, name: 'Scoped' });
    expect(customer.statusCode, customer.body).toBe(201);
    expect(customer.headers['idempotency-replayed']).toBeUndefined();
  });

  it('returns the same product to a retried create and creates one', async () => {
    const key = newKey();
    const body = {
      sku: 'IDEM-PROD',
      name: 'Once',
      price: { amount: 1200, currency: 'EUR' },
      category: 'test',
      status: 'active',
    };
    const first = await post('/v1/products', key, body);
    expect(first.statusCode, first.body).toBe(201);
    const retry = await post('/v1/products', key, body);
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotency-replayed']).toBe('true');
    expect(retry.json()).toEqual(first.json());
    expect(await count('products', { sku: 'IDEM-PROD' })).toBe(1);
    // Without the key the same body is a new request: the SKU is taken.
    expect((await post('/v1/products', undefined, body)).statusCode).toBe(409);
  });

  it('replays a 400 of a request that failed validation', async () => {
    const key = newKey();
    const body = { sku: 'bad sku', name: '', price: { amount: -1, currency: 'EUR' }, category: 'test' };
    const first = await post('/v1/products', key, body);
    expect(first.statusCode).toBe(400);
    const retry = await post('/v1/products', key, body);
    expect(retry.statusCode).toBe(400);
    expect(retry.headers['idempotency-replayed']).toBe('true');
    expect(retry.headers['content-type']).toMatch(PROBLEM);
    expect(retry.json()).toEqual(first.json());
  });

  it('replays order actions and stock movements', async () => {
    await s.product('IDEM-ACT', { amount: 100 });
    await s.stock('IDEM-ACT', 'AMS-1', 10);
    const customer = await s.customer();
    const order = (await s.place(customer.id, 'AMS-1', [{ sku: 'IDEM-ACT', quantity: 1 }])).json();
    const key = newKey();
    const paid = await post(`/v1/orders/${order.id}/pay`, key);
    expect(paid.statusCode, paid.body).toBe(200);
    const again = await post(`/v1/orders/${order.id}/pay`, key);
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotency-replayed']).toBe('true');
    expect(again.json()).toEqual(paid.json());
    // Without the key, paying twice is refused: the replay did not run the action.
    expect((await s.act(order.id, 'pay')).statusCode).toBe(409);

    const restockKey = newKey();
    const restock = { sku: 'IDEM-ACT', warehouse: 'AMS-1', quantity: 5 };
    expect((await post('/v1/stock/restock', restockKey, restock)).statusCode).toBe(200);
    const restocked = await post('/v1/stock/restock', restockKey, restock);
    expect(restocked.statusCode).toBe(200);
    expect(restocked.headers['idempotency-replayed']).toBe('true');
    // 10 - 1 reserved by the order + 5 restocked once.
    expect(await s.storedStock('IDEM-ACT', 'AMS-1')).toMatchObject({ available: 14 });
  });

  it('refuses a malformed key with 400 before doing anything', async () => {
    for (const key of ['', 'has space', 'x'.repeat(256), 'naïve']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/products',
        headers: { 'idempotency-key': key },
        payload: {
          sku: 'IDEM-BADKEY',
          name: 'No',
          price: { amount: 1, currency: 'EUR' },
          category: 'test',
          status: 'active',
        },
      });
      expect(res.statusCode, `key ${JSON.stringify(key)}`).toBe(400);
      expect(res.json().errors).toEqual([expect.objectContaining({ in: 'headers', pointer: '/idempotency-key' })]);
    }
    expect(await count('products', { sku: 'IDEM-BADKEY' })).toBe(0);
  });

  const records = () =>
    t.app.db.connection.db!.collection<{ _id: string; [field: string]: unknown }>('idempotency_records');
  const latestRecord = async () => (await records().find().sort({ createdAt: -1 }).limit(1).next())!;

  it('answers 409 with Retry-After until the lease of the request holding the key ends, and runs a retry after a released claim', async () => {
    const key = newKey();
    const body = { email: `running-${process.pid}@example.com`, name: 'Running' };
    const first = await post('/v1/customers', key, body);
    expect(first.statusCode).toBe(201);
    // As if the first request were still running, holding the key for another minute.
    const stored = await latestRecord();
    await records().updateOne(
      { _id: stored._id },
      {
        $set: { state: 'running', owner: 'another-request', leaseUntil: new Date(Date.now() + 60_000) },
        $unset: { status: '', headers: '', body: '', completedAt: '' },
      },
    );
    const waiting = await post('/v1/customers', key, body);
    expect(waiting.statusCode).toBe(409);
    expect(waiting.json()).toMatchObject({ type: 'urn:storekeeper:problem:idempotency-in-progress' });
    const retryAfter = Number(waiting.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(1);
    expect(retryAfter).toBeLessThanOrEqual(60);

    // The first request failed and released its claim: the retry runs the work (here: the email is taken).
    await records().deleteOne({ _id: stored._id });
    const retried = await post('/v1/customers', key, body);
    expect(retried.statusCode).toBe(409);
    expect(retried.json()).toMatchObject({ type: 'urn:storekeeper:problem:duplicate' });
    expect(retried.headers['idempotency-replayed']).toBeUndefined();
  }, 15_000);

  it('takes a key over once the lease of the request holding it has ended (it crashed before writing), and runs the write once', async () => {
    const key = newKey();
    const body = { email: `crashed-${process.pid}@example.com`, name: 'Crashed' };
    const first = await post('/v1/customers', key, body);
    expect(first.statusCode).toBe(201);
    // As if that request had claimed the key and died before its write: no customer, a lease that ended.
    await t.app.db.connection.db!.collection('customers').deleteOne({ email: body.email });
    const stored = await latestRecord();
    await records().updateOne(
      { _id: stored._id },
      {
        $set: { state: 'running', owner: 'a-crashed-request', leaseUntil: new Date(Date.now() - 1) },
        $unset: { status: '', headers: '', body: '', completedAt: '' },
      },
    );

    const retried = await post('/v1/customers', key, body);
    expect(retried.statusCode, retried.body).toBe(201);
    expect(retried.headers['idempotency-replayed']).toBeUndefined();
    expect(retried.json().id).not.toBe(first.json().id);
    expect(await count('customers', { email: body.email })).toBe(1);
    expect(await records().findOne({ _id: stored._id })).toMatchObject({ state: 'done', status: 201 });

    const again = await post('/v1/customers', key, body);
    expect(again.headers['idempotency-replayed']).toBe('true');
    expect(again.body).toBe(retried.body);
  });

  it('replays a write that committed but whose answer was never stored, from the result committed with it', async () => {
    await s.product('IDEM-COMMITTED', { amount: 900 });
    await s.stock('IDEM-COMMITTED', 'AMS-1', 3);
    const customer = await s.customer();
    const key = newKey();
    // The last 3 units: a retry that ran the placement again would find no stock and answer 409.
    const placement = { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: 'IDEM-COMMITTED', quantity: 3 }] };
    const first = await post('/v1/orders', key, placement);
    expect(first.statusCode, first.body).toBe(201);
    // As if the answer had been lost after the commit: the record holds only what the transaction wrote.
    const stored = await latestRecord();
    const order = await t.app.db.connection
      .db!.collection('orders')
      .findOne({ _id: new mongoose.Types.ObjectId(first.json().id as string) });
    await records().updateOne(
      { _id: stored._id },
      {
        $set: { state: 'committed', committedAt: new Date(), result: order },
        $unset: { status: '', headers: '', body: '', completedAt: '' },
      },
    );
    const before = await s.snapshot();

    const retried = await post('/v1/orders', key, placement);
    expect(retried.statusCode, retried.body).toBe(201);
    expect(retried.headers['idempotency-replayed']).toBe('true');
    expect(retried.body).toBe(first.body);
    expect(retried.headers.location).toBe(first.headers.location);
    expect(retried.headers.etag).toBe(first.headers.etag);
    expect(await s.snapshot()).toEqual(before);
    expect(await count('orders', { 'lines.sku': 'IDEM-COMMITTED' })).toBe(1);
    // The rebuilt answer is stored: later retries replay it as sent.
    expect(await records().findOne({ _id: stored._id })).toMatchObject({
      state: 'done',
      status: 201,
      body: first.body,
    });
  });

  it('keeps records in a collection whose TTL index expires them at expiresAt', async () => {
    const db = t.app.db.connection.db!;
    const indexes = await db.collection('idempotency_records').indexes();
    expect(indexes).toContainEqual(expect.objectContaining({ key: { expiresAt: 1 }, expireAfterSeconds: 0 }));
    const record = await db.collection('idempotency_records').findOne({ state: 'done' });
    const ttlMs = record!.expiresAt.getTime() - record!.createdAt.getTime();
    expect(ttlMs).toBe(24 * 3_600_000);
  });

  it('documents the header, the 409 and the 422 on every POST operation', () => {
    const spec = t.app.swagger() as { paths: Record<string, Record<string, any>> };
    const posts = Object.entries(spec.paths).filter(([, operations]) => operations.post !== undefined);
    expect(posts.length).toBeGreaterThanOrEqual(8);
    for (const [path, { post: operation }] of posts) {
      const header = operation.parameters.find(
        (p: { in: string; name: string }) => p.in === 'header' && p.name === 'idempotency-key',
      );
      expect(header, path).toMatchObject({ required: false, schema: { maxLength: 255 } });
      expect(Object.keys(operation.responses['409'].content['application/problem+json'].examples), path).toContain(
        'idempotency-in-progress',
      );
      expect(operation.responses['409'].headers?.['Retry-After'], path).toBeDefined();
      expect(Object.keys(operation.responses['422'].content['application/problem+json'].examples), path).toEqual([
        'idempotency-key-reused',
      ]);
    }
  });
});
