// The change feed over HTTP, against a listening app: every kind of write on every collection
// arrives once, in order, with the resource as GET answers it, whichever instance wrote it; a
// client that reconnects with Last-Event-ID after 1,000 writes gets each of them once; positions
// that expired or were never given out are refused (410, 400); filters and `fields` apply,
// including to a document leaving the filter; heartbeats carry a position to resume from; scopes
// and the query are checked as on the lists. (Caps, slow clients, revocation, shutdown and
// restarts: changes-lifecycle.test.ts.)

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { Customer, Product } from '../../src/domain/entities/index.ts';
import { decodePosition, encodePosition } from '../../src/data/change-feed.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { SseStream, waitForFeed } from '../helpers/sse.ts';

const { ObjectId } = mongoose.Types;
const MERGE_PATCH = 'application/merge-patch+json';

let sequence = 0;
const nextSku = () => `FEED-${process.pid}-${String(++sequence).padStart(5, '0')}`;
const productInput = (overrides: Record<string, unknown> = {}) => ({
  ...Product.example,
  sku: nextSku(),
  ...overrides,
});
const customerInput = (overrides: Record<string, unknown> = {}) => ({
  ...Customer.example,
  email: `feed-${process.pid}-${++sequence}@example.com`,
  ...overrides,
});

/** A write the stream must report: its document's collection, id, kind and version. */
interface Expected {
  collection: string;
  id: string;
  type: string;
  version: number;
  /** The resource as GET answered it right after the write; absent for a delete. */
  document?: Record<string, unknown>;
}

describe('the change feed', () => {
  let t: TestApp;
  let base: string;
  const streams: SseStream[] = [];
  const db = () => t.app.db.connection.db!;

  const open = async (path: string, headers: Record<string, string> = {}, key = t.key) => {
    const stream = await SseStream.open(`${base}${path}`, { headers: { authorization: `Bearer ${key}`, ...headers } });
    streams.push(stream);
    return stream;
  };
  /** A stream that has received its first event (so it follows from before the next write). */
  const following = async (path: string, headers: Record<string, string> = {}, key = t.key) => {
    const stream = await open(path, headers, key);
    expect(stream.status).toBe(200);
    await stream.until((s) => s.events.length > 0, 'the first event');
    return stream;
  };
  const send = async (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) => {
    const res = await t.app.inject({
      method,
      url,
      ...(payload !== undefined && { payload: payload as Record<string, unknown> }),
      ...(method === 'PATCH' && { headers: { 'content-type': MERGE_PATCH } }),
    });
    expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    return res.statusCode === 204 ? undefined : res.json<Record<string, any>>();
  };
  /** The resource as MongoDB holds it now: an update behind the service is read before the feed evicts it. */
  const get = async (collection: string, id: string) => {
    const res = await t.app.inject({ url: `/v1/${collection}/${id}`, headers: { 'cache-control': 'no-cache' } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<Record<string, unknown>>();
  };
  /** A write of one document through the API, and what the stream must say of it. */
  const written = async (
    collection: string,
    type: string,
    write: () => Promise<Record<string, any> | undefined>,
  ): Promise<Expected> => {
    const { id } = (await write())!;
    const document = await get(collection, id as string);
    return { collection, id: id as string, type, version: document.version as number, document };
  };

  beforeAll(async () => {
    t = await buildTestApp('changes', { FEED_HEARTBEAT_MS: '500' });
    await waitForDatabase(t.app);
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    await waitForFeed(t.app);
  });
  afterAll(async () => {
    for (const stream of streams) stream.close();
    await t.app.close();
  });

  it('sends every kind of write on every collection once, in order, with the resource as GET answers it', async () => {
    const stream = await following('/v1/changes?collections=products,customers,stock,orders');
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
    expect(stream.response.headers.get('cache-control')).toBe('no-cache');
    expect(stream.response.headers.get('x-accel-buffering')).toBe('no');
    expect(stream.response.headers.get('x-request-id')).toBeTruthy();
    const [first] = stream.events;
    expect(first).toMatchObject({ retry: 2000, comments: ['connected'] });
    expect(first?.id).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);

    const expected: Expected[] = [];
    /** Creates, merge-patches, replaces and deletes one document of `collection`. */
    const lifeOf = async (
      collection: string,
      create: Record<string, unknown>,
      patch: Record<string, unknown>,
      replacement: (current: Record<string, unknown>) => Record<string, unknown>,
      update: (id: string) => Promise<unknown>,
    ) => {
      const created = await written(collection, 'insert', () => send('POST', `/v1/${collection}`, create));
      const url = `/v1/${collection}/${created.id}`;
      expected.push(created);
      // A merge patch is applied as a replacement of the whole document, checked whole.
      expected.push(await written(collection, 'replace', () => send('PATCH', url, patch)));
      const current = await get(collection, created.id);
      expected.push(await written(collection, 'replace', () => send('PUT', url, replacement(current))));
      expected.push(
        await written(collection, 'update', async () => {
          await update(created.id);
          return { id: created.id };
        }),
      );
      await send('DELETE', url);
      expected.push({ collection, id: created.id, type: 'delete', version: 4 });
    };
    /** An update by another writer than the service (an operator, a migration): MongoDB's update. */
    const updatedBehind = (collection: string) => (id: string) =>
      db()
        .collection(collection)
        .updateOne(
          { _id: new ObjectId(id) },
          { $set: { name: 'Updated', updatedAt: new Date() }, $inc: { version: 1 } },
        );
    await lifeOf(
      'products',
      productInput(),
      { name: 'Renamed' },
      (current) => productInput({ sku: current.sku, name: 'Replaced' }),
      updatedBehind('products'),
    );
    await lifeOf(
      'customers',
      customerInput(),
      { name: 'Renamed' },
      (current) => customerInput({ email: current.email, name: 'Replaced' }),
      updatedBehind('customers'),
    );
    const stockSku = nextSku();
    await send('POST', '/v1/products', productInput({ sku: stockSku }));
    await lifeOf(
      'stock',
      { sku: stockSku, warehouse: 'FEED-1', available: 5 },
      { available: 7 },
      () => ({ sku: stockSku, warehouse: 'FEED-1', available: 9 }),
      () => send('POST', '/v1/stock/restock', { sku: stockSku, warehouse: 'FEED-1', quantity: 3 }),
    );

    // Orders are written by their workflow (insert, then updates); replaced and deleted here by hand.
    const sku = nextSku();
    const orderProduct = await send('POST', '/v1/products', productInput({ sku, status: 'active' }));
    const buyer = await send('POST', '/v1/customers', customerInput());
    const stock = await send('POST', '/v1/stock', { sku, warehouse: 'FEED-2', available: 10 });
    const placed = await send('POST', '/v1/orders', {
      customerId: buyer!.id,
      warehouse: 'FEED-2',
      lines: [{ sku, quantity: 2 }],
    });
    const orderId = placed!.id as string;
    expected.push({
      collection: 'orders',
      id: orderId,
      type: 'insert',
      version: 1,
      document: await get('orders', orderId),
    });
    expected.push(await written('orders', 'update', () => send('POST', `/v1/orders/${orderId}/pay`)));
    const orders = db().collection('orders');
    const stored = (await orders.findOne<{ _id: mongoose.Types.ObjectId; version: number }>({
      _id: new ObjectId(orderId),
    }))!;
    await orders.replaceOne({ _id: stored._id }, { ...stored, version: stored.version + 1, updatedAt: new Date() });
    expected.push({
      collection: 'orders',
      id: orderId,
      type: 'replace',
      version: 3,
      document: await get('orders', orderId),
    });
    await orders.deleteOne({ _id: stored._id });
    expected.push({ collection: 'orders', id: orderId, type: 'delete', version: 3 });

    const last = expected.at(-1)!;
    await stream.until(
      (s) => s.changes().some((c) => c.collection === 'orders' && c.type === 'delete' && c.id === last.id),
      'the last write',
    );
    const changes = stream.changes();
    // Once: no position twice, and no document version twice.
    expect(new Set(changes.map((c) => c.position)).size).toBe(changes.length);
    expect(new Set(changes.map((c) => `${c.collection}/${c.id}/${c.type}/${c.version}`)).size).toBe(changes.length);
    // In order, each write with its document as GET answered it.
    let previous = -1;
    for (const write of expected) {
      const label = `${write.type} ${write.collection} ${write.id} v${write.version}`;
      const index = changes.findIndex(
        (c) =>
          c.collection === write.collection &&
          c.id === write.id &&
          c.type === write.type &&
          c.version === write.version,
      );
      expect(index, label).toBeGreaterThan(previous);
      previous = index;
      expect(changes[index]!.document, label).toEqual(write.document);
      expect(Date.parse(changes[index]!.operationTime), label).not.toBeNaN();
    }
    // The order's side effects came too: the reservation on the stock item and the buyer's stats.
    expect(changes.some((c) => c.collection === 'stock' && c.id === stock!.id && c.type === 'update')).toBe(true);
    expect(changes.some((c) => c.collection === 'customers' && c.id === buyer!.id && c.version === 2)).toBe(true);
    expect(changes.some((c) => c.collection === 'products' && c.id === orderProduct!.id)).toBe(true);

    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/storekeeper_feed_events_total\{collection="orders",type="replace"\} [1-9]/);
    expect(metrics).toMatch(/storekeeper_feed_streams [1-9]/);
    expect(metrics).toMatch(/storekeeper_feed_lag_seconds_count [1-9]/);
  });

  it('sends the writes another instance makes on the same database', async () => {
    const stream = await following('/v1/products/changes');
    const other = await buildAppOn(t.dbName, t.key);
    try {
      await waitForDatabase(other.app);
      const res = await other.app.inject({ method: 'POST', url: '/v1/products', payload: productInput() });
      expect(res.statusCode, res.body).toBe(201);
      await stream.until((s) => s.changes().some((c) => c.id === res.json().id), "the other instance's write");
      expect(stream.changes().find((c) => c.id === res.json().id)).toMatchObject({ type: 'insert', version: 1 });
    } finally {
      await other.app.close();
    }
  });

  it('resumes with Last-Event-ID after 1,000 writes: each of them once, in order, nothing before', async () => {
    const stream = await following('/v1/products/changes');
    const before = await send('POST', '/v1/products', productInput());
    await stream.until((s) => s.changes().some((c) => c.id === before!.id), 'the write before');
    const resumeFrom = stream.lastEventId()!;
    stream.close();

    const ids: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const operations = Array.from({ length: 100 }, () => ({
        op: 'insert',
        collection: 'products',
        document: productInput(),
      }));
      const res = await t.app.inject({ method: 'POST', url: '/v1/batch', payload: { operations } });
      expect(res.statusCode, res.body).toBe(200);
      ids.push(...(res.json().results as { id: string }[]).map((result) => result.id));
    }

    const resumed = await following('/v1/products/changes', { 'last-event-id': resumeFrom });
    expect(resumed.events[0]?.id).toBe(resumeFrom);
    await resumed.untilChanges(1000, 60_000);
    // A write after them: it comes next, so nothing else was on its way.
    const after = await send('POST', '/v1/products', productInput());
    await resumed.until((s) => s.changes().some((c) => c.id === after!.id), 'the write after');
    expect(resumed.changes().map((c) => c.id)).toEqual([...ids, after!.id]);
  });

  it('refuses a position older than MongoDB keeps (410, how to resynchronise) and one it never gave out (400)', async () => {
    const stream = await following('/v1/products/changes');
    const write = await send('POST', '/v1/products', productInput());
    await stream.until((s) => s.changes().some((c) => c.id === write!.id), 'the write');
    // An event's position: the same event at a time before the oplog is one MongoDB cannot find.
    // (A mere time before it, as a head's position may be, is history an oplog never truncated
    // still holds, and MongoDB serves it.)
    const position = stream.changes().find((c) => c.id === write!.id)!.position;
    stream.close();
    const key = await t.app.stores.positionKey();
    const real = (decodePosition(key, position) as { _data: string })._data;
    // A token's _data starts with its cluster time: 0x82, 4 bytes of seconds, 4 of increment.
    const ancient = encodePosition(key, { _data: `820000000100000001${real.slice(18)}` });

    const expired = await open('/v1/products/changes', { 'last-event-id': ancient });
    expect(expired.status).toBe(410);
    expect(expired.response.headers.get('content-type')).toMatch(PROBLEM_CONTENT_TYPE);
    const gone = await expired.problem();
    expect(gone).toMatchObject({
      type: 'urn:storekeeper:problem:position-expired',
      status: 410,
      errors: [{ in: 'headers', pointer: '/last-event-id' }],
    });
    expect(gone.detail).toContain('GET /v1/products?sort=updatedAt');

    const altered = `${position.slice(0, 5)}${position[5] === 'A' ? 'B' : 'A'}${position.slice(6)}`;
    for (const [query, headers, pointer] of [
      ['?after=not-a-position', {}, '/after'],
      [`?after=${altered}`, {}, '/after'],
      ['?after=whatever', { 'last-event-id': 'garbled' }, '/last-event-id'],
    ] as const) {
      const res = await t.app.inject({ url: `/v1/products/changes${query}`, headers });
      expect(res.statusCode, `${query} ${JSON.stringify(headers)}`).toBe(400);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:invalid-position',
        errors: [{ pointer }],
      });
    }
  });

  it("applies the list's filters before and after each change, and `fields`", async () => {
    const stream = await following('/v1/products/changes?category=kitchen&fields=name,category');
    const kitchen = await send('POST', '/v1/products', productInput({ category: 'kitchen' }));
    const garden = await send('POST', '/v1/products', productInput({ category: 'garden' }));
    const k = `/v1/products/${kitchen!.id}`;
    const g = `/v1/products/${garden!.id}`;
    await send('PATCH', k, { name: 'Kettle' });
    await send('PATCH', k, { category: 'garden' }); // leaves the filter: reported
    await send('PATCH', k, { name: 'Kettle, outdoor' }); // outside before and after: not
    await send('PATCH', g, { category: 'kitchen' }); // enters: reported
    await send('DELETE', g); // matched before: reported
    const marker = await send('POST', '/v1/products', productInput({ category: 'kitchen' }));
    await stream.until((s) => s.changes().some((c) => c.id === marker!.id), 'the marker');
    // Merge patches are replacements of the whole document, as MongoDB reports them.
    expect(stream.changes().map((c) => [c.id, c.type, c.version])).toEqual([
      [kitchen!.id, 'insert', 1],
      [kitchen!.id, 'replace', 2],
      [kitchen!.id, 'replace', 3],
      [garden!.id, 'replace', 2],
      [garden!.id, 'delete', 2],
      [marker!.id, 'insert', 1],
    ]);
    const left = stream.changes()[2]!;
    expect(left.document).toEqual({ id: kitchen!.id, version: 3, name: 'Kettle', category: 'garden' });
    expect(stream.changes()[4]!.document).toBeUndefined();

    // Customers compare e-mails regardless of case (their collection's collation), on the feed too.
    const customers = await following(`/v1/customers/changes?email[prefix]=FEED-ADA-${process.pid}`);
    const ada = await send('POST', '/v1/customers', customerInput({ email: `feed-ada-${process.pid}-1@example.com` }));
    await send('POST', '/v1/customers', customerInput({ email: `feed-bob-${process.pid}@example.com` }));
    const ada2 = await send('POST', '/v1/customers', customerInput({ email: `Feed-Ada-${process.pid}-2@example.com` }));
    await customers.until((s) => s.changes().some((c) => c.id === ada2!.id), 'the second match');
    expect(customers.changes().map((c) => c.id)).toEqual([ada!.id, ada2!.id]);
  });

  it('sends heartbeats carrying a position that a client resumes from without a repeat', async () => {
    const stream = await following('/v1/products/changes?category=garden');
    const write = await send('POST', '/v1/products', productInput({ category: 'kitchen' })); // filtered out
    await stream.until(
      (s) => s.events.filter((event) => event.comments.includes('heartbeat')).length >= 2,
      'two heartbeats',
    );
    const heartbeat = stream.events.findLast((event) => event.comments.includes('heartbeat'))!;
    expect(heartbeat.id).toBeTruthy();
    expect(heartbeat.event).toBeUndefined();
    stream.close();
    const resumed = await following('/v1/products/changes', { 'last-event-id': heartbeat.id! });
    const next = await send('POST', '/v1/products', productInput());
    await resumed.until((s) => s.changes().some((c) => c.id === next!.id), 'the next write');
    expect(resumed.changes().map((c) => c.id)).not.toContain(write!.id);
  });

  it('needs the read scope of every collection it follows', async () => {
    const reader = await t.createKey(['customers:read'], { name: 'customers-reader' });
    const as = { authorization: `Bearer ${reader.key}` };
    const products = await t.app.inject({ url: '/v1/products/changes', headers: as });
    expect(products.statusCode).toBe(403);
    expect(products.json()).toMatchObject({ missingScopes: ['products:read'] });
    const both = await t.app.inject({ url: '/v1/changes?collections=customers,products', headers: as });
    expect(both.statusCode).toBe(403);
    expect(both.json()).toMatchObject({
      type: 'urn:storekeeper:problem:insufficient-scope',
      missingScopes: ['products:read'],
    });
    const own = await following('/v1/changes?collections=customers', {}, reader.key);
    expect(own.status).toBe(200);
  });

  it('takes the list filters and fields and `after`, and nothing that pages or sorts (400)', async () => {
    for (const url of [
      '/v1/products/changes?sort=name',
      '/v1/products/changes?limit=5',
      '/v1/products/changes?cursor=abc',
      '/v1/products/changes?count=true',
      '/v1/products/changes?q=mug',
      '/v1/products/changes?colour=red',
      '/v1/products/changes?fields=nope',
      '/v1/changes',
      '/v1/changes?collections=products,products',
      '/v1/changes?collections=products,audit',
      '/v1/changes?collections=products&category=kitchen',
    ]) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
      expect(res.json().type, url).toBe('urn:storekeeper:problem:validation-failed');
    }
  });
});
