// List cursors are tamper-evident: signed (HMAC-SHA256) with CURSOR_SECRET or, when it is unset,
// with a secret stored once per database, so every instance on the database accepts the others'
// cursors. A cursor altered in any character, re-encoded with other content (value types, extra
// members, zeroed ids), taken from another query, sort or collection, or signed with another
// secret is a 400 invalid-cursor problem.

import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { CURSOR_SECRET_ID, SECRETS_COLLECTION } from '../../src/data/cursor-keys.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { shop } from '../helpers/shop.ts';

const SECRET_A = 'a-cursor-secret-of-at-least-32-characters';
const SECRET_B = 'another-cursor-secret-of-32-characters-or-more';

type Json = Record<string, unknown>;

/** The cursor of a `next` link. */
const cursorOf = (next: string) => new URL(next, 'http://x').searchParams.get('cursor')!;

/** A cursor's content re-encoded after `change`, keeping its signature: what a client can do without the secret. */
function reencoded(cursor: string, change: (content: Json) => unknown): string {
  const [payload, signature] = cursor.split('.');
  const content = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Json;
  return `${Buffer.from(JSON.stringify(change(content))).toString('base64url')}.${signature}`;
}

/** Every way of editing a cursor's content: other value types, extra or missing members, other ids. */
function editedContents(cursor: string): { label: string; cursor: string }[] {
  const values: unknown[] = [
    0,
    -1,
    1e308,
    '',
    'zzz',
    '\u0000',
    true,
    false,
    null,
    [],
    [1],
    {},
    { $gt: '' },
    { d: '1970-01-01T00:00:00.000Z' },
    { o: '000000000000000000000000' },
    { s: { $ne: null } },
    { d: 'not a date' },
    { o: 'xyz' },
  ];
  const ids: unknown[] = [
    '000000000000000000000000',
    'ffffffffffffffffffffffff',
    new mongoose.Types.ObjectId().toHexString(),
    '',
    'zz',
    7,
    null,
    { $gt: '' },
  ];
  const edits: { label: string; change: (content: Json) => unknown }[] = [
    ...values.map((value) => ({ label: `v=${JSON.stringify(value)}`, change: (c: Json) => ({ ...c, v: value }) })),
    ...values.map((value) => ({
      label: `v.s=${JSON.stringify(value)}`,
      change: (c: Json) => ({ ...c, v: { s: value } }),
    })),
    ...ids.map((id) => ({ label: `i=${JSON.stringify(id)}`, change: (c: Json) => ({ ...c, i: id }) })),
    ...['', 'x', 'AAAAAAAAAAAAAAAA'].map((h) => ({ label: `h=${h}`, change: (c: Json) => ({ ...c, h }) })),
    ...['extra', '$where', '__proto__', 'limit'].map((name) => ({
      label: `extra member ${name}`,
      change: (c: Json) => ({ ...c, [name]: 1 }),
    })),
    ...['h', 'v', 'i'].map((name) => ({
      label: `without ${name}`,
      change: (c: Json) => Object.fromEntries(Object.entries(c).filter(([key]) => key !== name)),
    })),
    { label: 'an array', change: (c: Json) => [c] },
    { label: 'a string', change: () => 'cursor' },
    { label: 'null', change: () => null },
    { label: 'members in another order', change: (c: Json) => Object.fromEntries(Object.entries(c).reverse()) },
  ];
  return edits.map(({ label, change }) => ({ label, cursor: reencoded(cursor, change) }));
}

/** The cursor with one character replaced, at every position. */
function flippedCharacters(cursor: string): string[] {
  return Array.from(cursor).map(
    (character, index) =>
      `${cursor.slice(0, index)}${character === 'A' ? 'B' : character === '.' ? '-' : 'A'}${cursor.slice(index + 1)}`,
  );
}

describe('tamper-evident cursors', () => {
  let t: TestApp;
  let productsNext: string;
  let customersNext: string;

  beforeAll(async () => {
    t = await buildTestApp('cursors');
    await waitForDatabase(t.app);
    const s = shop(t.app);
    for (let i = 0; i < 5; i++) {
      await s.product(`CUR-${i}`, { amount: 100 * (i + 1) });
      await s.customer();
    }
    productsNext = (await t.app.inject({ url: '/v1/products?sort=price.amount&limit=2' })).json().next;
    customersNext = (await t.app.inject({ url: '/v1/customers?limit=2' })).json().next;
  });
  afterAll(() => t.app.close());

  async function expectRefused(url: string, label = url) {
    const res = await t.app.inject({ url });
    expect(res.statusCode, `${label}: ${res.body}`).toBe(400);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.json().type, label).toBe('urn:storekeeper:problem:invalid-cursor');
    expect(res.json().errors, label).toEqual([expect.objectContaining({ in: 'query', pointer: '/cursor' })]);
  }

  it('a cursor is its position and a signature, and following it gives the next page', async () => {
    const cursor = cursorOf(productsNext);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    const page = await t.app.inject({ url: productsNext });
    expect(page.statusCode).toBe(200);
    expect(page.json().items.map((item: { sku: string }) => item.sku)).toEqual(['CUR-2', 'CUR-3']);
  });

  it('every edit of its content is refused, whatever it says', async () => {
    const edited = editedContents(cursorOf(productsNext));
    expect(edited.length).toBeGreaterThanOrEqual(50);
    for (const { label, cursor } of edited)
      await expectRefused(`/v1/products?sort=price.amount&limit=2&cursor=${encodeURIComponent(cursor)}`, label);
  });

  it('a change of any one character is refused', async () => {
    const cursor = cursorOf(productsNext);
    for (const flipped of flippedCharacters(cursor))
      await expectRefused(`/v1/products?sort=price.amount&limit=2&cursor=${encodeURIComponent(flipped)}`);
  });

  it.each([
    ['truncated', (c: string) => c.slice(0, -1)],
    ['extended', (c: string) => `${c}A`],
    ['with padding', (c: string) => `${c}==`],
    ['without its signature', (c: string) => c.split('.')[0]!],
    ['with a second signature', (c: string) => `${c}.${c.split('.')[1]}`],
    ['with a character outside base64url', (c: string) => c.replace('.', '+.')],
    ['with a space', (c: string) => ` ${c}`],
    ['empty signature', (c: string) => `${c.split('.')[0]}.`],
  ])('a cursor %s is refused', async (_case, alter) => {
    await expectRefused(
      `/v1/products?sort=price.amount&limit=2&cursor=${encodeURIComponent(alter(cursorOf(productsNext)))}`,
    );
  });

  it('a cursor used with another sort, filter, search or collection is refused', async () => {
    const cursor = encodeURIComponent(cursorOf(productsNext));
    await expectRefused(`/v1/products?sort=-price.amount&limit=2&cursor=${cursor}`);
    await expectRefused(`/v1/products?sort=price.amount&status=active&limit=2&cursor=${cursor}`);
    await expectRefused(`/v1/products?sort=price.amount&q=mug&limit=2&cursor=${cursor}`);
    // Same sort and no filters on both: only the collection tells them apart.
    const customers = encodeURIComponent(cursorOf(customersNext));
    await expectRefused(`/v1/products?limit=2&cursor=${customers}`);
    await expectRefused(`/v1/stock?limit=2&cursor=${customers}`);
    await expectRefused(`/v1/audit?limit=2&cursor=${customers}`);
  });

  it('the same query with another page size or projection accepts it', async () => {
    const res = await t.app.inject({
      url: `/v1/products?sort=price.amount&limit=1&fields=sku&cursor=${encodeURIComponent(cursorOf(productsNext))}`,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().items.map((item: { sku: string }) => item.sku)).toEqual(['CUR-2']);
  });

  it('another instance on the same database accepts the cursor: they share the stored secret', async () => {
    const other = await buildAppOn(t.dbName, t.key);
    await waitForDatabase(other.app);
    try {
      const res = await other.app.inject({ url: productsNext });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().items.map((item: { sku: string }) => item.sku)).toEqual(['CUR-2', 'CUR-3']);
    } finally {
      await other.app.close();
    }
  });

  it('a cursor signed with another secret is refused; instances configured with one CURSOR_SECRET agree', async () => {
    const a = await buildAppOn(t.dbName, t.key, { CURSOR_SECRET: SECRET_A });
    const a2 = await buildAppOn(t.dbName, t.key, { CURSOR_SECRET: SECRET_A });
    const b = await buildAppOn(t.dbName, t.key, { CURSOR_SECRET: SECRET_B });
    await Promise.all([a, a2, b].map((instance) => waitForDatabase(instance.app)));
    try {
      const next = (await a.app.inject({ url: '/v1/products?sort=price.amount&limit=2' })).json().next as string;
      expect((await a2.app.inject({ url: next })).statusCode).toBe(200);
      for (const app of [b.app, t.app]) {
        const res = await app.inject({ url: next });
        expect(res.statusCode).toBe(400);
        expect(res.json().type).toBe('urn:storekeeper:problem:invalid-cursor');
      }
      expect((await a.app.inject({ url: productsNext })).statusCode).toBe(400);
    } finally {
      await Promise.all([a.app.close(), a2.app.close(), b.app.close()]);
    }
  });

  it('a database whose migration has not stored the secret answers lists that need a cursor 503, naming the migrations, and stores nothing', async () => {
    const secrets = t.app.db.connection.db!.collection<{ _id: string; secret: string }>(SECRETS_COLLECTION);
    const stored = await secrets.findOne({ _id: CURSOR_SECRET_ID });
    expect(stored?.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await secrets.deleteOne({ _id: CURSOR_SECRET_ID });
    const fresh = await buildAppOn(t.dbName, t.key);
    await waitForDatabase(fresh.app);
    try {
      const needsCursor = await fresh.app.inject({ url: '/v1/products?sort=price.amount&limit=2' });
      expect(needsCursor.statusCode).toBe(503);
      expect(needsCursor.json()).toMatchObject({ type: 'urn:storekeeper:problem:migrations-pending' });
      expect(needsCursor.json().detail).toMatch(/migrate:up/);
      // A page that issues no cursor needs no key.
      expect((await fresh.app.inject({ url: '/v1/products?sort=price.amount&limit=200' })).statusCode).toBe(200);
      expect(await secrets.countDocuments({ _id: CURSOR_SECRET_ID })).toBe(0);
    } finally {
      await fresh.app.close();
      await secrets.insertOne(stored!);
    }
  });

  it('CURSOR_SECRET must be at least 32 visible characters', () => {
    const env = { MONGODB_URI: 'mongodb://127.0.0.1:1/?replicaSet=rs0' };
    expect(() => loadConfig({ ...env, CURSOR_SECRET: 'too-short' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...env, CURSOR_SECRET: `${'x'.repeat(31)} ` })).toThrow(/CURSOR_SECRET/);
    expect(loadConfig({ ...env, CURSOR_SECRET: SECRET_A }).security.cursorSecret).toBe(SECRET_A);
    expect(loadConfig(env).security.cursorSecret).toBeUndefined();
  });
});
