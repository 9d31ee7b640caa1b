import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { storedProduct } from '../helpers/documents.ts';

const PRODUCTS = 1000;

describe('listing products', () => {
  let t: TestApp;
  const list = async (query: string) => {
    const res = await t.app.inject({ url: `/v1/products?${query}` });
    return { status: res.statusCode, body: res.json(), headers: res.headers };
  };

  beforeAll(async () => {
    t = await buildTestApp('list');
    await waitForDatabase(t.app);
    await t.app.db.connection
      .db!.collection('products')
      .insertMany(Array.from({ length: PRODUCTS }, (_, i) => storedProduct(i)));
  });
  afterAll(() => t.app.close());

  it('pages through every product exactly once while others are being inserted', async () => {
    const seen = new Map<string, number>();
    let url: string | null = '/v1/products?sort=name&limit=70&fields=sku,name';
    let pages = 0;
    let inserted = 0;
    while (url !== null) {
      const res: { statusCode: number; body: string; headers: Record<string, unknown>; json(): any } =
        await t.app.inject({ url });
      expect(res.statusCode, res.body).toBe(200);
      const page: { items: { sku: string }[]; next: string | null } = res.json();
      for (const item of page.items) seen.set(item.sku, (seen.get(item.sku) ?? 0) + 1);
      url = page.next;
      if (url !== null) expect(res.headers.link).toBe(`<${url}>; rel="next"`);
      pages++;
      // New products land all over the name order, before and after the cursor.
      const fresh = Array.from({ length: 5 }, (_, k) =>
        storedProduct(PRODUCTS + inserted + k, { name: `Product ${(pages * 131 + k * 977) % 100_003}` }),
      );
      await t.app.db.connection.db!.collection('products').insertMany(fresh);
      inserted += fresh.length;
    }
    for (let i = 0; i < PRODUCTS; i++) expect(seen.get(storedProduct(i).sku as string), `P-${i}`).toBe(1);
    expect([...seen.values()].every((count) => count === 1)).toBe(true);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(PRODUCTS / 70));
  });

  it('sorts descending with a leading -, ties broken by id', async () => {
    const { body } = await list('sort=-price.amount&limit=200');
    const prices = body.items.map((p: { price: { amount: number } }) => p.price.amount);
    expect(prices).toEqual([...prices].sort((a, b) => b - a));
  });

  it('filters with equality, ranges, lists, array contains and exists, combined', async () => {
    const { status, body } = await list(
      'category=kitchen&price.amount[gte]=1000&price.amount[lt]=2000&status[in]=active,draft&tags=sale&limit=200&count=true',
    );
    expect(status).toBe(200);
    expect(body.items.length).toBeGreaterThan(0);
    for (const p of body.items) {
      expect(p.category).toBe('kitchen');
      expect(p.price.amount).toBeGreaterThanOrEqual(1000);
      expect(p.price.amount).toBeLessThan(2000);
      expect(p.tags).toContain('sale');
    }
    const expected = await t.app.db.connection.db!.collection('products').countDocuments({
      category: 'kitchen',
      'price.amount': { $gte: 1000, $lt: 2000 },
      status: { $in: ['active', 'draft'] },
      tags: 'sale',
    });
    expect(body.total).toBe(expected);
  });

  it('projects the requested fields only, plus id and version', async () => {
    const { body } = await list('fields=sku&limit=3');
    expect(body.items).toHaveLength(3);
    for (const item of body.items) expect(Object.keys(item).sort()).toEqual(['createdAt', 'id', 'sku', 'version']);
  });

  it('searches names and descriptions through the text index', async () => {
    await t.app.inject({
      method: 'POST',
      url: '/v1/products',
      payload: {
        sku: 'LAMP-1',
        name: 'Brass reading lamp',
        description: 'Warm light',
        price: { amount: 5900, currency: 'EUR' },
        category: 'home',
      },
    });
    const { body } = await list('q=brass');
    expect(body.items.map((p: { sku: string }) => p.sku)).toEqual(['LAMP-1']);
  });

  it.each([
    ['an unknown filter field', 'colour=red', '/colour'],
    ['an operator the field does not allow', 'name[gt]=a', '/name[gt]'],
    ['a mistyped value', 'price.amount[gte]=cheap', '/price.amount[gte]'],
    ['a sort on an unindexed field', 'sort=description', '/sort'],
    ['an unknown projected field', 'fields=sku,secret', '/fields'],
    ['a page size above the maximum', 'limit=1000', '/limit'],
    ['an operator smuggled in a value', 'status=%7B%22%24ne%22%3A1%7D', '/status'],
    [
      'too many values in a list',
      `sku[in]=${Array.from({ length: 51 }, (_, i) => `SKU-${i}00`).join(',')}`,
      '/sku[in]',
    ],
  ])('refuses %s with a 400 pointing at the parameter', async (_case, query, pointer) => {
    const { status, body } = await list(query);
    expect(status).toBe(400);
    expect(body.errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    expect(body.errors.every((e: { in: string }) => e.in === 'query')).toBe(true);
  });

  it('refuses a tampered cursor, and a cursor used with another query', async () => {
    const first = await list('sort=name&limit=10');
    const cursor = new URL(first.body.next, 'http://x').searchParams.get('cursor')!;
    const other = await list(`sort=price.amount&limit=10&cursor=${cursor}`);
    expect(other.status).toBe(400);
    expect(other.body.type).toBe('urn:storekeeper:problem:invalid-cursor');
    const tampered = await list(`sort=name&limit=10&cursor=${cursor.slice(0, -4)}AAAA`);
    expect(tampered.status).toBe(400);
    const garbage = await list('sort=name&limit=10&cursor=bm90LWpzb24');
    expect(garbage.status).toBe(400);
  });
});
