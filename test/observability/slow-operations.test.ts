// The slow-operation log: a command over SLOW_OPERATION_MS is logged at warn with the request it
// served (a read's, a single write's, a transaction's commit), its collection and command, and its
// query's shape, no value of any document in it. The command is made slow by a fail point that
// holds it, never by a timing the test hopes for.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { commandShape, redactedShape } from '../../src/data/monitoring.ts';

const HELD_MS = 400;

describe('slow-operation log', () => {
  const appName = `slow-ops-${process.pid}`;
  let t: TestApp;
  let admin: mongoose.mongo.MongoClient;
  beforeAll(async () => {
    const seed = await buildTestApp('slow-ops');
    await seed.app.close();
    t = await buildAppOn(seed.dbName, seed.key, { SLOW_OPERATION_MS: String(HELD_MS / 2), MONGODB_APP_NAME: appName });
    await waitForDatabase(t.app);
    admin = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  });
  afterAll(async () => {
    await admin.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
    await admin.close();
    await t.app.close();
  });

  /** Holds the next `command` of this app (on `namespace`, if given) for HELD_MS. */
  const hold = (command: string, namespace?: string) =>
    admin.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 1 },
      data: {
        failCommands: [command],
        appName,
        blockConnection: true,
        blockTimeMS: HELD_MS,
        ...(namespace !== undefined && { namespace }),
      },
    });
  const slowLines = () => t.logs.lines.filter((line) => line.msg === 'slow MongoDB operation');
  const slowLine = (command: string) => slowLines().findLast((line) => line.command === command);

  it('logs a held list with its request, collection, command and a shape without values', async () => {
    const email = 'slow.shopper@example.com';
    expect(
      (await t.app.inject({ method: 'POST', url: '/v1/customers', payload: { email, name: 'Slow Shopper' } }))
        .statusCode,
    ).toBe(201);
    await hold('find', `${t.dbName}.customers`);

    const res = await t.app.inject(`/v1/customers?email=${encodeURIComponent(email)}&limit=5`);
    expect(res.statusCode, res.body).toBe(200);
    const line = slowLines().find((candidate) => candidate.command === 'find' && candidate.collection === 'customers');
    expect(line, JSON.stringify(slowLines())).toBeDefined();
    expect(line).toMatchObject({ level: 40, command: 'find', collection: 'customers', documentsReturned: 1 });
    expect(line!.durationMs as number).toBeGreaterThanOrEqual(HELD_MS / 2);
    expect(line!.requestId).toBe(res.headers['x-request-id']);
    const shape = line!.shape as Record<string, unknown>;
    expect(shape).toMatchObject({ find: 'customers', filter: { email: { $eq: '?string' } } });
    expect(shape).not.toHaveProperty('comment');
    expect(JSON.stringify(line)).not.toContain(email);

    const metrics = (await t.app.inject('/metrics')).body;
    expect(metrics).toMatch(/^storekeeper_mongodb_slow_operations_total\{command="find"\} [1-9]/m);
  });

  it('names the request that started a read by id the document cache missed, a query its readers share', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/customers',
      payload: { email: `missed-${process.pid}@example.com`, name: 'Cache Miss' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const { id } = created.json<{ id: string }>();
    await hold('find', `${t.dbName}.customers`);
    // no-cache: the read goes to MongoDB through the shared load, whatever the cache holds.
    const res = await t.app.inject({ url: `/v1/customers/${id}`, headers: { 'cache-control': 'no-cache' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(slowLine('find')).toMatchObject({
      collection: 'customers',
      documentsReturned: 1,
      requestId: res.headers['x-request-id'],
    });
  });

  it("names the request of a single write, which carries the request's id as its comment", async () => {
    await hold('insert', `${t.dbName}.customers`);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/customers',
      payload: { email: `atomic-${process.pid}@example.com`, name: 'Held Insert' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(slowLine('insert')).toMatchObject({ collection: 'customers', requestId: res.headers['x-request-id'] });
  });

  it("names the request of a transaction's commit, which no comment reaches, by the transaction's session", async () => {
    await hold('commitTransaction');
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: { 'idempotency-key': `held-commit-${process.pid}` },
      payload: { email: `in-transaction-${process.pid}@example.com`, name: 'Held Commit' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(slowLine('commitTransaction')).toMatchObject({ requestId: res.headers['x-request-id'] });
  });
});

describe('query shapes', () => {
  it('keep keys and operators and replace every value by its type', () => {
    const id = new mongoose.Types.ObjectId();
    expect(
      redactedShape({
        email: 'a@example.com',
        'stats.spent': { $elemMatch: { currency: 'EUR', amount: { $gte: 100 } } },
        _id: { $in: [id, id, id, id, id] },
        createdAt: { $lt: new Date() },
        deleted: null,
        active: true,
      }),
    ).toEqual({
      email: '?string',
      'stats.spent': { $elemMatch: { currency: '?string', amount: { $gte: '?number' } } },
      _id: { $in: ['?objectid', '?objectid', '?objectid', '…2 more'] },
      createdAt: { $lt: '?date' },
      deleted: '?null',
      active: '?boolean',
    });
  });

  it("leave out the driver's bookkeeping and keep how a command reads, not what it writes", () => {
    const shape = commandShape(
      {
        update: 'customers',
        updates: [{ q: { email: 'a@example.com' }, u: { $set: { name: 'Ann Example' } } }],
        ordered: true,
        lsid: { id: 'session' },
        txnNumber: 3,
        $db: 'shop',
      },
      'update',
    );
    expect(shape).toEqual({
      update: 'customers',
      updates: [{ q: { email: '?string' }, u: { $set: { name: '?string' } } }],
      ordered: true,
    });
  });
});
