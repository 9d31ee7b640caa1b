// What a client is told when one MongoDB command fails is true. MongoDB's own fail points (the
// failCommand test command, scoped to this file's app by its application name) drop a connection
// or hold a command the way a failover or a frozen server would; the test then reads the database
// through a client of its own to see what really happened.

import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, inject } from 'vitest';
import mongoose from 'mongoose';
import { buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { transactionRetries } from '../../src/data/transactions.ts';

const DEADLINE_MS = 3000;
/** Longer than the deadline by a margin that holds on a busy machine: an answer before it did not wait for the held command. */
const HELD_MS = 9000;

describe('write outcomes when a MongoDB command fails', () => {
  const appName = `storekeeper-outcomes-${randomBytes(4).toString('hex')}`;
  let t: TestApp;
  const client = new mongoose.mongo.MongoClient(inject('mongoUri'));
  let db: mongoose.mongo.Db;
  let keys = 0;

  beforeAll(async () => {
    t = await buildTestApp('write_outcomes', {
      MONGODB_APP_NAME: appName,
      REQUEST_DEADLINE_MS: String(DEADLINE_MS),
      READINESS_TIMEOUT_MS: '500',
    });
    await waitForDatabase(t.app);
    // Once the audit stream runs, a create without Idempotency-Key is an atomic write.
    await t.app.stores.audit.settled();
    await client.connect();
    db = client.db(t.dbName);
  });
  afterEach(async () => {
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
    await settled();
  });
  afterAll(async () => {
    await client.close();
    await t.app.close();
  });

  /** Makes MongoDB fail the next `times` of these commands sent by this file's app. */
  const failNext = (commands: string[], data: Record<string, unknown>, times = 1) =>
    client.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times },
      data: { failCommands: commands, appName, ...data },
    });

  /** Waits until no command of the app is still running in MongoDB (a held one included); its monitors' hellos never end. */
  const settled = () =>
    waitFor(
      async () => {
        const running = await client
          .db('admin')
          .aggregate([{ $currentOp: { allUsers: true } }, { $match: { appName, 'command.hello': { $exists: false } } }])
          .toArray();
        return running.length === 0;
      },
      30_000,
      "the app's commands to finish",
    );

  const product = (sku: string) => ({
    sku,
    name: `Outcome ${sku}`,
    price: { amount: 1500, currency: 'EUR' },
    category: 'test',
    status: 'active',
  });
  const create = (sku: string, key?: string) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/products',
      payload: product(sku),
      ...(key !== undefined && { headers: { 'idempotency-key': key } }),
    });
  const newSku = () => `OUT-${randomBytes(3).toString('hex').toUpperCase()}-${++keys}`;
  const stored = (sku: string) =>
    db.collection('products').countDocuments({ sku }, { readConcern: { level: 'majority' } });
  const timed = async <T>(work: () => Promise<T>): Promise<{ result: T; elapsedMs: number }> => {
    const started = performance.now();
    const result = await work();
    return { result, elapsedMs: performance.now() - started };
  };

  it('commits again when the connection drops under a commit, and answers 201 for a product stored once', async () => {
    const before = transactionRetries.unknownCommit;
    // Twice: the driver's own retry of the commit meets the second drop, and the outcome is left to the service.
    await failNext(['commitTransaction'], { closeConnection: true }, 2);
    const sku = newSku();

    // With an Idempotency-Key a create is a transaction (the key's record commits with it).
    const res = await create(sku, `commit-${sku}`);

    expect(res.statusCode, res.body).toBe(201);
    expect(await stored(sku)).toBe(1);
    expect(transactionRetries.unknownCommit).toBeGreaterThan(before);
  });

  it('answers 503 outcome-unknown, never "nothing was written", when the commit does not answer by the deadline; a retry with the key replays the write', async () => {
    await failNext(['commitTransaction'], { blockConnection: true, blockTimeMS: HELD_MS });
    const sku = newSku();
    const key = `outcome-${sku}`;

    const { result: res, elapsedMs } = await timed(() => create(sku, key));

    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:outcome-unknown', status: 503 });
    expect(res.headers['retry-after']).toBeDefined();
    expect(elapsedMs).toBeLessThan(HELD_MS);
    // The held commit goes through once MongoDB lets it: the answer was right not to say "not written".
    await settled();
    expect(await stored(sku)).toBe(1);

    const retry = await create(sku, key);
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.headers['idempotency-replayed']).toBe('true');
    expect(await stored(sku)).toBe(1);
    const again = await create(sku, key);
    expect(again.body).toBe(retry.body);
  });

  it('answers 503 service-unavailable when a write inside the transaction does not answer by the deadline, and nothing is written', async () => {
    await failNext(['insert'], { blockConnection: true, blockTimeMS: HELD_MS, namespace: `${t.dbName}.products` });
    const sku = newSku();

    const { result: res, elapsedMs } = await timed(() => create(sku, `held-${sku}`));

    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:service-unavailable' });
    expect(elapsedMs).toBeLessThan(HELD_MS);
    // The held insert ran once MongoDB let it, in a transaction that was never committed.
    await settled();
    expect(await stored(sku)).toBe(0);
    const retry = await create(sku);
    expect(retry.statusCode, retry.body).toBe(201);
    expect(await stored(sku)).toBe(1);
  });

  it('frees the key of a request whose claim reached MongoDB only after it had answered 503: the retry runs the write once', async () => {
    // The first insert of a request with a key is its claim.
    await failNext(['insert'], { blockConnection: true, blockTimeMS: HELD_MS });
    const sku = newSku();
    const key = `late-claim-${sku}`;

    const first = await create(sku, key);
    expect(first.statusCode, first.body).toBe(503);
    expect(first.json()).toMatchObject({ type: 'urn:storekeeper:problem:service-unavailable' });
    await settled();
    // The claim landed after the answer, holding the key under a lease that had already ended.
    const late = await db.collection('idempotency_records').find({ state: 'running' }).toArray();
    expect(late).toHaveLength(1);
    expect(late[0]!.leaseUntil.getTime()).toBeLessThanOrEqual(Date.now());

    const retry = await create(sku, key);
    expect(retry.headers['idempotency-replayed']).toBeUndefined();
    expect(retry.statusCode, retry.body).toBe(201);
    expect(await stored(sku)).toBe(1);
  });

  it('retries a transaction whose audit insert (a bulk write) loses its connection: 201, never a 500', async () => {
    await failNext(['insert'], { closeConnection: true, namespace: `${t.dbName}.audit_events` });
    const sku = newSku();
    const errorsBefore = t.logs.lines.filter((line) => line.level >= 50).length;

    const res = await create(sku, `audit-${sku}`);

    expect(res.statusCode, res.body).toBe(201);
    expect(await stored(sku)).toBe(1);
    expect(await db.collection('audit_events').countDocuments({ documentId: res.json().id })).toBe(1);
    expect(t.logs.lines.filter((line) => line.level >= 50).slice(errorsBefore)).toEqual([]);
  });

  it('an atomic create whose insert loses its connection twice (the driver retries once) is found by its stamp: 201, stored and audited once', async () => {
    await failNext(['insert'], { closeConnection: true, namespace: `${t.dbName}.products` }, 2);
    const sku = newSku();

    const res = await create(sku);

    expect(res.statusCode, res.body).toBe(201);
    expect(await stored(sku)).toBe(1);
    await t.app.stores.audit.settled();
    expect(await db.collection('audit_events').countDocuments({ documentId: res.json().id })).toBe(1);
  });

  it('answers 503 outcome-unknown, never "nothing was written", when an atomic write does not answer by the deadline; the held insert lands once, audited once', async () => {
    await failNext(['insert'], { blockConnection: true, blockTimeMS: HELD_MS, namespace: `${t.dbName}.products` });
    const sku = newSku();

    const { result: res, elapsedMs } = await timed(() => create(sku));

    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:outcome-unknown', status: 503 });
    expect(elapsedMs).toBeLessThan(HELD_MS);
    await settled();
    expect(await stored(sku)).toBe(1);
    const [product] = await db.collection('products').find({ sku }).toArray();
    await t.app.stores.audit.settled();
    expect(await db.collection('audit_events').countDocuments({ documentId: product!._id.toHexString() })).toBe(1);
  });

  it('answers a read 503 by the deadline when MongoDB holds the query', async () => {
    await failNext(['find'], { blockConnection: true, blockTimeMS: HELD_MS });

    const { result: res, elapsedMs } = await timed(() => t.app.inject({ method: 'GET', url: '/v1/products?limit=5' }));

    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:service-unavailable' });
    expect(elapsedMs).toBeLessThan(HELD_MS);
  });

  it('answers readiness 503 within READINESS_TIMEOUT_MS, not when MongoDB answers the ping', async () => {
    await failNext(['ping'], { blockConnection: true, blockTimeMS: HELD_MS });

    const { result: res, elapsedMs } = await timed(() => t.app.inject({ method: 'GET', url: '/health/ready' }));

    expect(res.statusCode, res.body).toBe(503);
    expect(elapsedMs).toBeLessThan(HELD_MS);
  });
});
