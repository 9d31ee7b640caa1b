// Numbers mean what their text says, through every channel: a query parameter, a path or a header
// is read by one strict grammar (JSON's number, whole) before Ajv sees it, and a JSON body number
// that JSON.parse would silently change (1e400 to Infinity, 1e-400 to 0) is refused with a pointer
// to it. -0 is read as 0 wherever it comes from: the same number, stored as the integer 0.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from 'typebox';
import { readNumber } from '../../src/domain/validation.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { shop } from '../helpers/shop.ts';

describe('readNumber, the one grammar of numbers written as text', () => {
  it.each([
    ['12', 12],
    ['-3', -3],
    ['4.5', 4.5],
    ['1e1', 10],
    ['1E+2', 100],
    ['2.5e-3', 0.0025],
    ['0', 0],
    ['-0', 0],
    ['-0.0e5', 0],
    ['0.0', 0],
    ['9007199254740991', 9007199254740991],
    ['1e300', 1e300],
  ])('reads %s as %s', (text, expected) => {
    const read = readNumber(text);
    expect(read).toBe(expected);
    expect(Object.is(read, -0)).toBe(false);
  });

  it.each([
    ['Infinity', 'decimal number'],
    ['-Infinity', 'decimal number'],
    ['+Infinity', 'decimal number'],
    ['NaN', 'decimal number'],
    ['', 'decimal number'],
    [' ', 'decimal number'],
    [' 5', 'decimal number'],
    ['5 ', 'decimal number'],
    ['+5', 'decimal number'],
    ['0x10', 'decimal number'],
    ['0b1', 'decimal number'],
    ['05', 'decimal number'],
    ['5.', 'decimal number'],
    ['.5', 'decimal number'],
    ['1_000', 'decimal number'],
    ['1,5', 'decimal number'],
    ['1e400', 'too large'],
    ['-1e400', 'too large'],
    ['1'.padEnd(400, '0'), 'too large'],
    ['1e-400', 'too close to 0'],
    ['-1e-400', 'too close to 0'],
    [`0.${'0'.repeat(400)}1`, 'too close to 0'],
    ['9007199254740993', 'more digits'],
    ['-9007199254740993', 'more digits'],
    ['9007199254740993.0', 'more digits'],
    ['9007199254740993e0', 'more digits'],
    ['90071992547409930e-1', 'more digits'],
  ])('refuses %j, saying it is %s', (text, why) => {
    const read = readNumber(text);
    expect(typeof read).toBe('object');
    expect((read as { problem: string }).problem).toContain(why);
  });
});

describe('numbers through every channel of the API', () => {
  let t: TestApp;
  let item: Record<string, any>;
  let product: Record<string, any>;
  const stock = () => t.app.db.connection.db!.collection('stock');

  beforeAll(async () => {
    t = await buildTestApp('numbers');
    // A route whose text parts hold numbers of every shape: a path parameter, a header, a number and a repeated integer.
    t.app.get(
      '/test/numbers/:k',
      {
        schema: {
          params: Type.Object({ k: Type.Integer() }),
          headers: Type.Object({ 'x-count': Type.Optional(Type.Integer({ minimum: 0 })) }),
          querystring: Type.Object(
            { n: Type.Optional(Type.Array(Type.Integer())), x: Type.Optional(Type.Number()) },
            { additionalProperties: false },
          ),
        },
      },
      async (request) => {
        return { k: request.params.k, ...request.query, count: Number(request.headers['x-count']) };
      },
    );
    await waitForDatabase(t.app);
    const s = shop(t.app);
    product = await s.product('NUM-1', { amount: 1500 });
    item = await s.stock('NUM-1', 'AMS-1', 22);
    await s.stock('NUM-1', 'BER-1', 0);
  });
  afterAll(() => t.app.close());

  async function refused(url: string, pointer: string, message: string) {
    const res = await t.app.inject({ url });
    expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.json().errors).toContainEqual({ in: 'query', pointer, message: expect.stringContaining(message) });
  }

  it.each([
    'Infinity',
    '%2BInfinity',
    '-Infinity',
    '1e400',
    '%20',
    '',
    '0x10',
    '1e-400',
    '5%20',
    '%205',
    '05',
    '1,5',
    '50abc',
  ])('a list limit of %j is a 400 pointing at /limit, never the whole collection', async (limit) => {
    await refused(
      `/v1/stock?limit=${limit}`,
      '/limit',
      limit === '1e400' ? 'too large' : limit === '1e-400' ? 'too close to 0' : 'decimal number',
    );
  });

  it('a limit past the maximum is a 400 however it is spelled', async () => {
    for (const limit of ['201', '2e2.5', '1e3', '200.5']) {
      const res = await t.app.inject({ url: `/v1/stock?limit=${limit}` });
      expect(res.statusCode, limit).toBe(400);
    }
  });

  it('a limit spelled as a decimal with an exponent or a zero fraction is read as the integer it is', async () => {
    for (const limit of ['1e1', '10.0', '1E%2B1']) {
      const res = await t.app.inject({ url: `/v1/stock?limit=${limit}` });
      expect(res.statusCode, limit).toBe(200);
    }
  });

  it.each([
    ['available', 'Infinity', 'decimal number'],
    ['available', '%20', 'decimal number'],
    ['available', '1e400', 'too large'],
    ['available[gt]', '1e400', 'too large'],
    ['available[lte]', '-1e400', 'too large'],
    ['available[gte]', '1e-400', 'too close to 0'],
    ['available[lt]', '0x10', 'decimal number'],
    ['available', '%2B5', 'decimal number'],
    ['available', '9007199254740993', 'more digits'],
  ])('a numeric filter %s=%s is a 400 pointing at it', async (name, value, message) => {
    await refused(`/v1/stock?${name}=${value}`, `/${name}`, message);
  });

  it('every refused value of a repeated parameter is named by its position', async () => {
    const res = await t.app.inject({ url: '/test/numbers/1?n=100&n=Infinity&n=%201&n=200' });
    expect(res.statusCode, res.body).toBe(400);
    const pointers = res.json().errors.map((error: { pointer: string }) => error.pointer);
    expect(pointers).toEqual(['/n/1', '/n/2']);
  });

  it('path parameters and headers are read by the same grammar', async () => {
    const path = await t.app.inject({ url: '/test/numbers/Infinity' });
    expect(path.statusCode).toBe(400);
    expect(path.json().errors).toContainEqual({
      in: 'params',
      pointer: '/k',
      message: expect.stringContaining('decimal number'),
    });
    const header = await t.app.inject({ url: '/test/numbers/1', headers: { 'x-count': '1e400' } });
    expect(header.statusCode).toBe(400);
    expect(header.json().errors).toContainEqual({
      in: 'headers',
      pointer: '/x-count',
      message: expect.stringContaining('too large'),
    });
    const fine = await t.app.inject({ url: '/test/numbers/7?n=1&n=2e1&x=-0', headers: { 'x-count': '3' } });
    expect(fine.statusCode, fine.body).toBe(200);
    expect(fine.json()).toEqual({ k: 7, n: [1, 20], x: 0, count: 3 });
  });

  it("a numeric filter past the field's own maximum is a 400 (the schema's range applies to every number read)", async () => {
    await refused('/v1/stock?available[gt]=2000000000', '/available[gt]', 'must be <=');
  });

  it('-0 in a filter is 0', async () => {
    const res = await t.app.inject({ url: '/v1/stock?available=-0' });
    expect(res.statusCode).toBe(200);
    expect(res.json().items.map((i: { warehouse: string }) => i.warehouse)).toEqual(['BER-1']);
  });

  it('a body number that underflows to 0 is a 400 pointing at it, and the item keeps its 22 units', async () => {
    const res = await t.app.inject({
      method: 'PATCH',
      url: `/v1/stock/${item.id}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      payload: '{"available":1e-400}',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toEqual([
      { in: 'body', pointer: '/available', message: 'is too close to 0 to be told from 0: "1e-400"' },
    ]);
    expect((await stock().findOne({ sku: 'NUM-1', warehouse: 'AMS-1' }))!.available).toBe(22);
  });

  it('a price that underflows to 0 is refused, not written as free', async () => {
    const body = `{"sku":"NUM-1","name":"n","price":{"amount":1e-400,"currency":"EUR"},"category":"test","status":"active"}`;
    const res = await t.app.inject({
      method: 'PUT',
      url: `/v1/products/${product.id}`,
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].pointer).toBe('/price/amount');
    expect((await t.app.inject({ url: `/v1/products/${product.id}` })).json().price.amount).toBe(1500);
  });

  it('every refused number of a body is listed with its pointer, inside arrays and batches too', async () => {
    const body =
      '{"operations":[{"op":"insert","collection":"stock","document":{"sku":"NUM-1","warehouse":"X-1","available":1e400,"reorderLevel":-1E-999}},' +
      '{"op":"insert","collection":"stock","document":{"sku":"NUM-1","warehouse":"X-2","available":123456789012345678901}}]}';
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toEqual([
      '/operations/0/document/available',
      '/operations/0/document/reorderLevel',
      '/operations/1/document/available',
    ]);
  });

  it('numbers inside strings and member names are text, not numbers', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/products',
      headers: { 'content-type': 'application/json' },
      payload:
        '{"sku":"NUM-STR-1","name":"1e400 and -0 and 1e-400","price":{"amount":100,"currency":"EUR"},"category":"test","status":"active","attributes":{"n1e400":"-0"}}',
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().name).toBe('1e400 and -0 and 1e-400');
  });

  it('-0 in a body is read as 0 and stored as the integer 0 (MongoDB refuses the double -0 where an integer belongs)', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/stock',
      headers: { 'content-type': 'application/json' },
      payload: '{"sku":"NUM-1","warehouse":"ZERO-1","available":-0,"reorderLevel":-0.0e2}',
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ available: 0, reorderLevel: 0 });
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/v1/stock/${created.json().id}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      payload: '{"available":-0}',
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(
      await stock().countDocuments({
        warehouse: 'ZERO-1',
        available: { $type: 'int' },
        reorderLevel: { $type: 'int' },
      }),
    ).toBe(1);
  });
});
