// API key management over HTTP (/v1/keys, the keys:admin scope): a key created here works at
// once, is listed without its secret, and is refused once revoked.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

describe('/v1/keys', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('keys_api', { AUTH_CACHE_TTL_MS: '0' });
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('creates a key that works at once, lists it without a secret, and revokes it', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: 'storefront', scopes: ['products:read', 'stock:*'], rateLimitPerMinute: 100 },
    });
    expect(created.statusCode, created.body).toBe(201);
    const key = created.json();
    expect(key).toMatchObject({
      name: 'storefront',
      scopes: ['products:read', 'stock:read', 'stock:write'],
      rateLimitPerMinute: 100,
    });
    expect(created.headers.location).toBe(`/v1/keys/${key.id}`);

    const use = () =>
      t.app.inject({ method: 'GET', url: '/v1/products', headers: { authorization: `Bearer ${key.key}` } });
    const used = await use();
    expect(used.statusCode).toBe(200);
    expect(used.headers['ratelimit-limit']).toBe('100');

    const listed = await t.app.inject({ method: 'GET', url: '/v1/keys' });
    expect(listed.statusCode).toBe(200);
    expect(listed.body).not.toContain(key.key.slice(16));
    expect(listed.body).not.toContain('hash');
    expect(listed.json().items.find((item: { id: string }) => item.id === key.id)).toEqual({
      id: key.id,
      prefix: key.prefix,
      name: 'storefront',
      scopes: ['products:read', 'stock:read', 'stock:write'],
      rateLimitPerMinute: 100,
      createdAt: key.createdAt,
    });

    const revoked = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}` });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().revokedAt).toEqual(expect.any(String));
    expect((await use()).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: `/v1/keys/${key.id}` })).json().revokedAt).toBe(
      revoked.json().revokedAt,
    );
    // Revoking again changes nothing, and records nothing.
    expect((await t.app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}` })).json().revokedAt).toBe(
      revoked.json().revokedAt,
    );

    const trail = await t.app.inject({ method: 'GET', url: `/v1/audit?collection=api_keys&documentId=${key.id}` });
    expect(trail.statusCode, trail.body).toBe(200);
    const admin = t.key.slice(3, 15);
    const adminId = (await t.app.inject({ method: 'GET', url: '/v1/keys' }))
      .json()
      .items.find((item: { prefix: string }) => item.prefix === admin).id;
    expect(
      trail.json().items.map((entry: Record<string, unknown>) => [entry.action, entry.keyId, entry.requestId]),
    ).toEqual([
      ['revoke', adminId, revoked.headers['x-request-id']],
      ['create', adminId, created.headers['x-request-id']],
    ]);
  });

  it.each([
    [{ name: 'x', scopes: ['products:delete'] }, '/scopes/0'],
    [{ name: 'x', scopes: ['warehouses:read'] }, '/scopes/0'],
    [{ name: 'x', scopes: [] }, '/scopes'],
    [{ name: ' ', scopes: ['*'] }, '/name'],
    [{ name: 'x', scopes: ['*'], expiresAt: '2001-01-01T00:00:00Z' }, ''],
    [{ name: 'x', scopes: ['*'], hash: 'mine' }, '/hash'],
  ])('refuses %j with a 400 and creates nothing', async (payload, pointer) => {
    const before = (await t.app.inject({ method: 'GET', url: '/v1/keys' })).json().items.length;
    const res = await t.app.inject({ method: 'POST', url: '/v1/keys', payload });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors.map((error: { pointer: string }) => error.pointer)).toContain(pointer);
    expect((await t.app.inject({ method: 'GET', url: '/v1/keys' })).json().items).toHaveLength(before);
    expect(
      (
        await t.app.inject({
          method: 'GET',
          url: `/v1/audit?collection=api_keys&requestId=${String(res.headers['x-request-id'])}`,
        })
      ).json().items,
    ).toEqual([]);
  });

  it('answers 404 for a key that does not exist', async () => {
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/keys/6650f0c2a1b2c3d4e5f60799' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/v1/keys/6650f0c2a1b2c3d4e5f60799' })).statusCode).toBe(404);
  });
});
