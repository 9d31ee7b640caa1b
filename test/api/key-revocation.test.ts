// Revocation everywhere: two instances on one database, each with a key cache that would keep a
// key for a minute; a key revoked through one is refused by the other within a second, through
// the key change stream, not after the cache's time. An instance whose key stream breaks says so,
// reopens it, and then forgets what it had cached (what changed meanwhile is unknown).

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import { buildAppOn, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';

/** How soon the other instance must refuse a revoked key. */
const BOUND_MS = 1_000;
/** The second instance's name in MongoDB: its key stream's connections are `${TWO}-keys`. */
const TWO = 'key-revocation-two';

describe('key revocation across instances', () => {
  let one: TestApp;
  let two: TestApp;

  const streamStarted = (t: TestApp) => () =>
    t.logs.lines.some((line) => line.msg?.startsWith('key change stream started') === true);

  beforeAll(async () => {
    one = await buildTestApp('key_revocation', { AUTH_CACHE_TTL_MS: '60000' });
    two = await buildAppOn(one.dbName, one.key, { AUTH_CACHE_TTL_MS: '60000', MONGODB_APP_NAME: TWO });
    await Promise.all([waitForDatabase(one.app), waitForDatabase(two.app)]);
    await Promise.all([
      waitFor(streamStarted(one), 30_000, 'key stream'),
      waitFor(streamStarted(two), 30_000, 'key stream'),
    ]);
  });
  afterAll(async () => {
    await Promise.all([one.app.close(), two.app.close()]);
  });

  /** Polls `check` until it holds; returns how long that took, failing past `boundMs`. */
  async function within(boundMs: number, check: () => Promise<boolean>): Promise<number> {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > boundMs * 3) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return Date.now() - started;
  }

  it('a key revoked through one instance is refused by the other within a second', async () => {
    const created = await one.app.inject({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: 'revoked-elsewhere', scopes: ['products:read'] },
    });
    expect(created.statusCode, created.body).toBe(201);
    const key = created.json<{ id: string; key: string }>();
    const use = () =>
      two.app.inject({ method: 'GET', url: '/v1/products', headers: { authorization: `Bearer ${key.key}` } });
    // The other instance has the key in its cache, for a minute if nothing told it otherwise.
    expect((await use()).statusCode).toBe(200);

    const revoked = await one.app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}` });
    expect(revoked.statusCode).toBe(200);
    let last = 0;
    const tookMs = await within(BOUND_MS, async () => {
      const answer = await use();
      last = answer.statusCode;
      if (answer.statusCode === 401)
        expect(answer.json()).toMatchObject({ type: expect.stringContaining('api-key-revoked') });
      return answer.statusCode === 401;
    });
    expect(last).toBe(401);
    expect(tookMs).toBeLessThan(BOUND_MS);
  });

  it('says when its key stream breaks, reopens it, and forgets every cached key then', async () => {
    const logged = (message: string) => () => two.logs.lines.some((line) => line.msg?.startsWith(message) === true);
    const created = await one.app.inject({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: 'revoked-while-down', scopes: ['products:read'] },
    });
    const key = created.json<{ id: string; key: string }>();
    const use = () =>
      two.app.inject({ method: 'GET', url: '/v1/products', headers: { authorization: `Bearer ${key.key}` } });
    expect((await use()).statusCode).toBe(200);

    // An operator kills the stream's waiting getMore: Interrupted, which the driver does not resume from.
    const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
    try {
      const admin = client.db('admin');
      await waitFor(
        async () => {
          const [getMore] = await admin
            .aggregate<{ opid: unknown }>([
              { $currentOp: { allUsers: true } },
              { $match: { appName: `${TWO}-keys`, 'command.getMore': { $exists: true } } },
            ])
            .toArray();
          if (getMore !== undefined) await admin.command({ killOp: 1, op: getMore.opid });
          return logged('key change stream down')();
        },
        30_000,
        'the key stream to break',
      );
    } finally {
      await client.close();
    }
    // Revoked while the stream is away: nothing tells the instance, but it forgets its keys once back.
    expect((await one.app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}` })).statusCode).toBe(200);
    await waitFor(logged('key change stream back'), 30_000, 'the key stream to be back');
    expect((await use()).statusCode).toBe(401);
  });
});
