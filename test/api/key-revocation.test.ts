// Revocation everywhere: two instances on one database, each with a key cache that would keep a
// key for a minute; a key revoked through one is refused by the other within a second,
// through the key change stream, not after the cache's time.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppOn, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';

/** How soon the other instance must refuse a revoked key. */
const BOUND_MS = 1_000;

describe('key revocation across instances', () => {
  let one: TestApp;
  let two: TestApp;

  const streamStarted = (t: TestApp) => () =>
    t.logs.lines.some((line) => line.msg?.startsWith('key change stream started') === true);

  beforeAll(async () => {
    one = await buildTestApp('key_revocation', { AUTH_CACHE_TTL_MS: '60000' });
    two = await buildAppOn(one.dbName, one.key, { AUTH_CACHE_TTL_MS: '60000' });
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
});
