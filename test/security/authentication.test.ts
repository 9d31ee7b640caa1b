// API keys at the door: how a request presents one, every way it can be refused, the stored
// form (a hash), the lookup cache, and what reaches the logs.

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { buildAppOn, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';

const PRODUCTS = { method: 'GET' as const, url: '/v1/products?limit=1' };
const problemType = (code: string) => `urn:storekeeper:problem:${code}`;

describe('authentication with API keys', () => {
  let t: TestApp;
  let reader: { id: string; key: string };

  beforeAll(async () => {
    t = await buildTestApp('authentication');
    await waitForDatabase(t.app);
    reader = await t.createKey(['products:read'], { name: 'reader' });
  });
  afterAll(() => t.app.close());

  const asKey = (headers: Record<string, string | undefined>) =>
    t.app.inject({ ...PRODUCTS, headers: { authorization: undefined, ...headers } });

  it('accepts the key as a Bearer token or in X-API-Key', async () => {
    expect((await asKey({ authorization: `Bearer ${reader.key}` })).statusCode).toBe(200);
    expect((await asKey({ authorization: `bearer ${reader.key}` })).statusCode).toBe(200);
    expect((await asKey({ 'x-api-key': reader.key })).statusCode).toBe(200);
  });

  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  it.each([
    ['no key at all', () => ({}), 'unauthenticated'],
    [
      'another scheme',
      () => ({ authorization: `Basic ${Buffer.from('user:pass').toString('base64')}` }),
      'unauthenticated',
    ],
    ['an empty bearer', () => ({ authorization: 'Bearer ' }), 'unauthenticated'],
    ['a malformed key', () => bearer('not-a-key'), 'invalid-api-key'],
    ['an unknown prefix', () => bearer(`sk_zzzzzzzzzzzz_${'A'.repeat(43)}`), 'invalid-api-key'],
    [
      'a known prefix with a wrong secret',
      () => bearer(`${reader.key.slice(0, 16)}${'B'.repeat(43)}`),
      'invalid-api-key',
    ],
    [
      'a key with a character changed',
      () => bearer(`${reader.key.slice(0, -1)}${reader.key.endsWith('A') ? 'B' : 'A'}`),
      'invalid-api-key',
    ],
  ])('refuses %s with 401 and a problem document', async (_case, headersOf, code) => {
    const headers: Record<string, string> = headersOf();
    const res = await asKey(headers);
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="storekeeper"/);
    expect(res.json()).toMatchObject({ type: problemType(code), status: 401, requestId: res.headers['x-request-id'] });
  });

  it('stores only a hash of the secret, never the key', async () => {
    const stored = await t.app.db.connection
      .db!.collection('api_keys')
      .findOne({ _id: new mongoose.Types.ObjectId(reader.id) });
    const [, prefix, secret] = /^sk_([a-z0-9]{12})_(.+)$/.exec(reader.key)!;
    expect(stored).toMatchObject({
      prefix,
      name: 'reader',
      scopes: ['products:read'],
      hash: createHash('sha256').update(secret!).digest('hex'),
    });
    expect(JSON.stringify(stored)).not.toContain(secret);
  });

  it('never writes a key or its secret into the logs, whether it is accepted or refused', async () => {
    const wrong = `${reader.key.slice(0, 16)}${'C'.repeat(43)}`;
    await asKey({ authorization: `Bearer ${reader.key}` });
    await asKey({ 'x-api-key': reader.key });
    await asKey({ authorization: `Bearer ${wrong}` });
    const text = t.logs.text();
    expect(text).not.toContain(reader.key.slice(16));
    expect(text).not.toContain(wrong.slice(16));
    // The public prefix names the caller on the request's log lines.
    expect(t.logs.lines.some((line) => line.keyPrefix === reader.key.slice(3, 15))).toBe(true);
  });

  it('looks a key up once, not once per request (the lookup is cached)', async () => {
    const db = t.app.db.connection.db!;
    const fresh = await t.createKey(['products:read'], { name: 'cached' });
    await db.command({ profile: 2 });
    try {
      for (let i = 0; i < 30; i++) expect((await asKey({ authorization: `Bearer ${fresh.key}` })).statusCode).toBe(200);
    } finally {
      await db.command({ profile: 0 });
    }
    const lookups = await db
      .collection('system.profile')
      .countDocuments({ ns: `${t.dbName}.api_keys`, op: 'query', 'command.filter.prefix': fresh.key.slice(3, 15) });
    expect(lookups).toBe(1);
  });
});

describe('revoked and expired keys', () => {
  let t: TestApp;

  beforeAll(async () => {
    // No cache: a revocation applies to the next request.
    t = await buildTestApp('authentication_revoked', { AUTH_CACHE_TTL_MS: '0' });
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('refuses a revoked key with 401, from the next request on', async () => {
    const key = await t.createKey(['products:read']);
    const asKey = () => t.app.inject({ ...PRODUCTS, headers: { authorization: `Bearer ${key.key}` } });
    expect((await asKey()).statusCode).toBe(200);
    await t.app.db.connection
      .db!.collection('api_keys')
      .updateOne({ _id: new mongoose.Types.ObjectId(key.id) }, { $set: { revokedAt: new Date() } });
    const res = await asKey();
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ type: problemType('api-key-revoked') });
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('refuses an expired key with 401', async () => {
    const key = await t.createKey(['products:read'], { expiresAt: new Date(Date.now() + 60_000) });
    const asKey = () => t.app.inject({ ...PRODUCTS, headers: { authorization: `Bearer ${key.key}` } });
    expect((await asKey()).statusCode).toBe(200);
    await t.app.db.connection
      .db!.collection('api_keys')
      .updateOne({ _id: new mongoose.Types.ObjectId(key.id) }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    const res = await asKey();
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ type: problemType('api-key-expired') });
  });

  it('a cached key is refused once its revocation reaches the instance, long before the cache time (AUTH_CACHE_TTL_MS)', async () => {
    const cached = await buildAppOn(t.dbName, t.key, { AUTH_CACHE_TTL_MS: '600000' });
    try {
      await waitForDatabase(cached.app);
      await waitFor(
        () => cached.logs.lines.some((line) => line.msg?.startsWith('key change stream started') === true),
        30_000,
        'the key change stream',
      );
      const key = await t.createKey(['products:read']);
      const asKey = (app: TestApp['app']) =>
        app.inject({ ...PRODUCTS, headers: { authorization: `Bearer ${key.key}` } });
      expect((await asKey(cached.app)).statusCode).toBe(200);
      await t.app.db.connection
        .db!.collection('api_keys')
        .updateOne({ _id: new mongoose.Types.ObjectId(key.id) }, { $set: { revokedAt: new Date() } });
      // The instance without a cache refuses at once; the one with a 10-minute cache as soon as its
      // key change stream reports the revocation (the cache time bounds it only while that is down).
      expect((await asKey(t.app)).statusCode).toBe(401);
      const revokedAt = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - revokedAt < 5_000) {
        status = (await asKey(cached.app)).statusCode;
        if (status === 200) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(status).toBe(401);
      expect(Date.now() - revokedAt).toBeLessThan(1_000);
    } finally {
      await cached.app.close();
    }
  });
});

describe('idempotency keys belong to the API key that used them', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('authentication_idempotency');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('another API key with the same Idempotency-Key runs its own request instead of seeing the first answer', async () => {
    const [a, b] = [await t.createKey(['products:write']), await t.createKey(['products:write'])];
    const create = (key: string, sku: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/products',
        headers: { authorization: `Bearer ${key}`, 'idempotency-key': 'shared-key-1' },
        payload: { sku, name: 'Idempotent', price: { amount: 100, currency: 'EUR' }, category: 'test' },
      });
    const first = await create(a.key, 'IDEM-A');
    expect(first.statusCode).toBe(201);
    const replay = await create(a.key, 'IDEM-A');
    expect(replay.headers['idempotency-replayed']).toBe('true');
    const other = await create(b.key, 'IDEM-B');
    expect(other.statusCode).toBe(201);
    expect(other.headers['idempotency-replayed']).toBeUndefined();
    expect(other.json().id).not.toBe(first.json().id);
  });
});
