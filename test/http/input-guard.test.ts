import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { Product } from '../../src/domain/entities/index.ts';
import { escapeRegExp } from '../../src/data/query.ts';
import { INPUT_LIMITS } from '../../src/http/plugins/input-guard.ts';
import { LIST_MAX_FILTERS, LIST_MAX_VALUES } from '../../src/http/schemas/documents.ts';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

type FieldError = { in: string; pointer: string; message: string };

const JSON_TYPE = { 'content-type': 'application/json' };
const MERGE_PATCH = { 'content-type': 'application/merge-patch+json' };

let sequence = 0;
const productInput = (overrides: Record<string, unknown> = {}) => ({
  ...Product.example,
  sku: `GUARD-${String(++sequence).padStart(4, '0')}`,
  ...overrides,
});

type IndexScan = { indexName: string; indexBounds: Record<string, string[]> };

/** Every IXSCAN stage in query plans. */
function indexScans(plans: unknown[]): IndexScan[] {
  const found: IndexScan[] = [];
  const pending = [...plans];
  while (pending.length > 0) {
    const node = pending.pop();
    if (node === null || typeof node !== 'object') continue;
    if ((node as { stage?: unknown }).stage === 'IXSCAN') found.push(node as IndexScan);
    pending.push(...Object.values(node));
  }
  return found;
}

/** A JSON text nested `depth` levels deep ({"a":{"a":...}}), written out since JSON.stringify would recurse. */
const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

describe('the input guard and the JSON body parser', () => {
  let t: TestApp;
  let productId: string;

  const send = (options: InjectOptions) => t.app.inject(options);
  /** The answer's field errors, after checking it is a 400 problem. */
  const refusal = async (options: InjectOptions, type = 'validation-failed'): Promise<FieldError[]> => {
    const res = await send(options);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toMatch(PROBLEM);
    expect(res.json()).toMatchObject({
      type: `urn:storekeeper:problem:${type}`,
      status: 400,
      requestId: res.headers['x-request-id'],
    });
    return res.json().errors ?? [];
  };
  const statusOf = async (options: InjectOptions) => {
    const res = await send(options);
    if (res.statusCode >= 400) expect(res.headers['content-type'], res.body).toMatch(PROBLEM);
    return res.statusCode;
  };
  const products = async () =>
    (await t.app.db.connection.db!.collection('products').find().sort({ _id: 1 }).toArray()).length;

  beforeAll(async () => {
    t = await buildTestApp('input_guard');
    await waitForDatabase(t.app);
    const created = await send({
      method: 'POST',
      url: '/v1/products',
      payload: productInput({ sku: 'GUARD-BASE', name: 'Base product' }),
    });
    expect(created.statusCode, created.body).toBe(201);
    productId = created.json().id;
  });
  afterAll(() => t.app.close());

  describe('keys in bodies', () => {
    it('refuses operator, dotted, NUL and prototype keys at any depth, naming each with its JSON Pointer', async () => {
      const before = await products();
      const errors = await refusal({
        method: 'POST',
        url: '/v1/products',
        payload: productInput({
          price: { amount: 100, currency: 'EUR', $where: 'function () { return true; }' },
          attributes: { 'a.b': 1, prototype: 'x', 'odd/~name\u0000': 2 },
          tags: [{ $ne: null }],
        }),
      });
      expect(errors).toEqual([
        { in: 'body', pointer: '/price/$where', message: 'starts with $, which MongoDB would read as an operator' },
        { in: 'body', pointer: '/tags/0/$ne', message: 'starts with $, which MongoDB would read as an operator' },
        { in: 'body', pointer: '/attributes/a.b', message: 'contains a dot, which MongoDB would read as a path' },
        {
          in: 'body',
          pointer: '/attributes/prototype',
          message: 'is prototype, a name that reaches object prototypes',
        },
        { in: 'body', pointer: '/attributes/odd~1~0name\u0000', message: 'contains a NUL character' },
      ]);
      expect(await products()).toBe(before);
    });

    it('refuses a constructor member even where the schema would allow the name (product attributes)', async () => {
      const errors = await refusal({
        method: 'POST',
        url: '/v1/products',
        payload: productInput({ attributes: { constructor: 'x' } }),
      });
      expect(errors).toEqual([
        {
          in: 'body',
          pointer: '/attributes/constructor',
          message: 'is constructor, a name that reaches object prototypes',
        },
      ]);
    });

    it('refuses them inside a batch operation and a merge patch too, pointing into the request', async () => {
      const batch = await refusal({
        method: 'POST',
        url: '/v1/batch',
        payload: {
          operations: [
            { op: 'insert', collection: 'products', document: productInput({ name: { $regex: '(a+)+$' } }) },
          ],
        },
      });
      expect(batch).toEqual([
        {
          in: 'body',
          pointer: '/operations/0/document/name/$regex',
          message: 'starts with $, which MongoDB would read as an operator',
        },
      ]);
      const patch = await refusal({
        method: 'PATCH',
        url: `/v1/products/${productId}`,
        headers: MERGE_PATCH,
        payload: JSON.stringify({ $set: { status: 'archived' } }),
      });
      expect(patch.map((e) => e.pointer)).toEqual(['/$set']);
      const stored = await send({ url: `/v1/products/${productId}` });
      expect(stored.json().status).toBe('active');
    });
  });

  describe('limits', () => {
    it(`refuses nesting deeper than ${INPUT_LIMITS.depth} levels, even 100,000 deep, without exhausting the stack`, async () => {
      const tooDeep = [{ in: 'body', pointer: '', message: `nests deeper than ${INPUT_LIMITS.depth} levels` }];
      expect(
        await refusal({ method: 'POST', url: '/v1/products', headers: JSON_TYPE, payload: nested(10_000) }),
      ).toEqual(tooDeep);
      expect(
        await refusal({
          method: 'POST',
          url: '/v1/batch',
          headers: JSON_TYPE,
          payload: `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        }),
      ).toEqual(tooDeep);
      // Brackets inside strings are text, not nesting.
      const brackets = await refusal({
        method: 'POST',
        url: '/v1/products',
        payload: productInput({ price: 'x', description: `${'[{'.repeat(100)}"\\` }),
      });
      expect(brackets).toEqual([{ in: 'body', pointer: '/price', message: 'must be object' }]);
      // At the limit the guard lets it through: what answers is the schema.
      const atLimit = await refusal({
        method: 'POST',
        url: '/v1/products',
        headers: JSON_TYPE,
        payload: nested(INPUT_LIMITS.depth),
      });
      expect(atLimit.some((e) => e.message.includes('nests deeper'))).toBe(false);
    });

    it(`refuses arrays over ${INPUT_LIMITS.arrayLength} items, strings over ${INPUT_LIMITS.stringLength} characters and names over ${INPUT_LIMITS.keyLength}`, async () => {
      const long = await refusal({
        method: 'POST',
        url: '/v1/products',
        payload: productInput({
          tags: Array.from({ length: INPUT_LIMITS.arrayLength + 1 }, (_, i) => `t${i}`),
          description: 'x'.repeat(INPUT_LIMITS.stringLength + 1),
          attributes: { [`a${'b'.repeat(INPUT_LIMITS.keyLength)}`]: 1 },
        }),
      });
      expect(long).toEqual([
        {
          in: 'body',
          pointer: '/description',
          message: `is ${INPUT_LIMITS.stringLength + 1} characters long; at most ${INPUT_LIMITS.stringLength} are allowed`,
        },
        {
          in: 'body',
          pointer: '/tags',
          message: `has ${INPUT_LIMITS.arrayLength + 1} items; at most ${INPUT_LIMITS.arrayLength} are allowed`,
        },
        {
          in: 'body',
          pointer: `/attributes/a${'b'.repeat(INPUT_LIMITS.keyLength)}`,
          message: `is a name of ${INPUT_LIMITS.keyLength + 1} characters; at most ${INPUT_LIMITS.keyLength} are allowed`,
        },
      ]);
      // Within the limits, the schema's own, tighter rules answer.
      const schema = await refusal({
        method: 'POST',
        url: '/v1/products',
        payload: productInput({ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }),
      });
      expect(schema).toEqual([{ in: 'body', pointer: '/tags', message: 'must NOT have more than 20 items' }]);
    });

    it(`refuses more than ${INPUT_LIMITS.keys} members in one body`, async () => {
      const attributes = Object.fromEntries(Array.from({ length: INPUT_LIMITS.keys + 1 }, (_, i) => [`a${i}`, i]));
      const errors = await refusal({ method: 'POST', url: '/v1/products', payload: productInput({ attributes }) });
      expect(errors).toEqual([
        { in: 'body', pointer: '', message: `has more than ${INPUT_LIMITS.keys} members in all` },
      ]);
    });

    it('refuses strings that are not well-formed Unicode (a lone surrogate)', async () => {
      const errors = await refusal({
        method: 'POST',
        url: '/v1/products',
        headers: JSON_TYPE,
        payload: JSON.stringify(productInput()).replace('"name":"', '"name":"\\ud800'),
      });
      expect(errors).toEqual([
        { in: 'body', pointer: '/name', message: 'is not well-formed Unicode (it has a lone surrogate)' },
      ]);
    });

    it('answers 413 past BODY_LIMIT_BYTES', async () => {
      const res = await send({
        method: 'POST',
        url: '/v1/products',
        payload: productInput({ description: 'x'.repeat(1_100_000) }),
      });
      expect(res.statusCode).toBe(413);
      expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:payload-too-large' });
    });
  });

  describe('JSON parsing', () => {
    it('refuses invalid UTF-8 (instead of storing U+FFFD), and reads valid UTF-8 as sent', async () => {
      const body = Buffer.from(JSON.stringify(productInput({ name: 'Caf__' })));
      const at = body.indexOf('__');
      body[at] = 0xc3; // a lead byte of two...
      body[at + 1] = 0x28; // ...followed by no continuation byte
      const res = await send({ method: 'POST', url: '/v1/products', headers: JSON_TYPE, payload: body });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:malformed-body',
        detail: 'The body is not valid UTF-8.',
      });
      const overlong = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
      expect(await statusOf({ method: 'POST', url: '/v1/products', headers: JSON_TYPE, payload: overlong })).toBe(400);

      const valid = await send({
        method: 'POST',
        url: '/v1/products',
        headers: { 'content-type': 'application/json; charset=UTF-8' },
        payload: Buffer.concat([
          Buffer.from([0xef, 0xbb, 0xbf]),
          Buffer.from(JSON.stringify(productInput({ name: 'Café ☕ 🍵' }))),
        ]),
      });
      expect(valid.statusCode, valid.body).toBe(201);
      expect(valid.json().name).toBe('Café ☕ 🍵');
    });

    it('answers malformed JSON and an empty JSON body with 400 malformed-body', async () => {
      for (const payload of ['{"name": "x",', "{'name': 1}", 'NaN', '{} {}', '', '   ']) {
        const res = await send({ method: 'POST', url: '/v1/products', headers: JSON_TYPE, payload });
        expect(res.statusCode, payload).toBe(400);
        expect(res.json().type, payload).toBe('urn:storekeeper:problem:malformed-body');
      }
    });

    it('refuses __proto__ and constructor.prototype members, escaped or not, and pollutes nothing', async () => {
      const cases: [string, string][] = [
        ['{"name":"x","__proto__":{"polluted":true}}', '/__proto__'],
        ['{"attributes":{"constructor":{"prototype":{"polluted":true}}}}', '/attributes/constructor/prototype'],
        ['{"tags":[{"\\u005f_proto__":{"polluted":true}}]}', '/tags/0/__proto__'],
      ];
      for (const [payload, pointer] of cases) {
        for (const headers of [JSON_TYPE, MERGE_PATCH]) {
          const method = headers === JSON_TYPE ? 'POST' : 'PATCH';
          const url = method === 'POST' ? '/v1/products' : `/v1/products/${productId}`;
          const errors = await refusal({ method, url, headers, payload }, 'malformed-body');
          expect(errors, payload).toEqual([{ in: 'body', pointer, message: 'is a member name this service refuses' }]);
        }
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('answers 415 to every media type but JSON (and merge patch) in UTF-8, and to a body on a route that takes none', async () => {
      const body = JSON.stringify(productInput());
      const refused: InjectOptions[] = [
        { method: 'POST', url: '/v1/products', headers: { 'content-type': 'text/plain' }, payload: body },
        {
          method: 'POST',
          url: '/v1/products',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: 'sku[$ne]=x',
        },
        {
          method: 'POST',
          url: '/v1/products',
          headers: { 'content-type': 'multipart/form-data; boundary=x' },
          payload: '--x\r\n\r\n--x--',
        },
        { method: 'POST', url: '/v1/products', headers: { 'content-type': 'application/xml' }, payload: '<product/>' },
        {
          method: 'POST',
          url: '/v1/products',
          headers: { 'content-type': 'application/json-patch+json' },
          payload: '[]',
        },
        {
          method: 'POST',
          url: '/v1/products',
          headers: { 'content-type': 'application/json; charset=latin1' },
          payload: body,
        },
        {
          method: 'POST',
          url: '/v1/products',
          headers: { 'content-type': 'application/json; charset=utf-16' },
          payload: Buffer.from(body, 'utf16le'),
        },
        { method: 'POST', url: '/v1/products', payload: Buffer.from(body) }, // no Content-Type
        { method: 'PATCH', url: `/v1/products/${productId}`, headers: JSON_TYPE, payload: '{"name":"x"}' },
        { method: 'GET', url: '/v1/products', headers: JSON_TYPE, payload: '{"$where":"sleep(1000)"}' },
        { method: 'GET', url: `/v1/products/${productId}`, headers: { 'content-type': 'text/plain' }, payload: 'x' },
        { method: 'DELETE', url: `/v1/products/${productId}`, headers: JSON_TYPE, payload: '{}' },
      ];
      for (const request of refused)
        expect(await statusOf(request), `${request.method} ${JSON.stringify(request.headers)}`).toBe(415);
      // The product is still there: the DELETE with a body did nothing.
      expect(await statusOf({ url: `/v1/products/${productId}` })).toBe(200);
      // A route with an optional body takes none at all, without a Content-Type.
      expect(await statusOf({ method: 'POST', url: '/v1/orders/6650f0c2a1b2c3d4e5f60718/pay' })).toBe(404);
    });
  });

  describe('query strings and URLs', () => {
    it('refuses query strings that are not valid percent-encoded UTF-8', async () => {
      for (const query of ['name[prefix]=%FF', 'sku=%E0%A4%A', 'sku=%ZZ', 'name[prefix]=%ED%A0%80', 'sku=%C0%AF']) {
        const errors = await refusal({ url: `/v1/products?${query}` });
        expect(errors, query).toEqual([
          { in: 'query', pointer: `/${query.split('=')[0]}`, message: 'is not valid percent-encoded UTF-8' },
        ]);
      }
      expect(await refusal({ url: '/v1/products?%FF=1' })).toEqual([
        { in: 'query', pointer: '', message: 'the name of parameter 1 is not valid percent-encoded UTF-8' },
      ]);
    });

    it('refuses parameter names outside the query language on every list route, whatever the schema says', async () => {
      for (const collection of ['products', 'customers', 'stock', 'orders']) {
        const errors = await refusal({
          url: `/v1/${collection}?price[$gt]=0&sku[$ne]=x&$where=1&__proto__[x]=1&constructor.prototype=1&filter=1`,
        });
        expect(
          errors.map((e) => e.pointer),
          collection,
        ).toEqual(['/price[$gt]', '/sku[$ne]', '/$where', '/__proto__[x]', '/constructor.prototype']);
        // A well-formed name the collection does not declare is the schema's to refuse.
        expect(await refusal({ url: `/v1/${collection}?filter=1` }), collection).toEqual([
          { in: 'query', pointer: '/filter', message: 'is not an allowed property' },
        ]);
      }
    });

    it('refuses any query parameter on a route that declares none', async () => {
      expect(await refusal({ method: 'DELETE', url: `/v1/products/${productId}?dryRun=true` })).toEqual([
        { in: 'query', pointer: '/dryRun', message: 'is not a parameter of this route' },
      ]);
      expect(await statusOf({ url: `/v1/products/${productId}` })).toBe(200);
      expect(await statusOf({ url: '/health/live?verbose=1' })).toBe(400);
      // Unknown routes stay 404s, whatever they are sent.
      expect(await statusOf({ url: '/v1/nothing?$where=1' })).toBe(404);
    });

    it(`caps a list at ${LIST_MAX_FILTERS} filters and ${LIST_MAX_VALUES} values per list operator`, async () => {
      const ten = [
        'status=active',
        'category=apparel',
        'tags=organic',
        'price.amount[gte]=1',
        'price.amount[lte]=999999',
        'price.currency=EUR',
        'createdAt[gte]=2020-01-01T00:00:00Z',
        'updatedAt[gte]=2020-01-01T00:00:00Z',
        'sku[prefix]=GUARD',
        'name[prefix]=Base',
      ];
      expect(ten).toHaveLength(LIST_MAX_FILTERS);
      const page = await send({ url: `/v1/products?${ten.join('&')}` });
      expect(page.statusCode, page.body).toBe(200);
      expect(page.json().items.map((item: { sku: string }) => item.sku)).toEqual(['GUARD-BASE']);
      expect(await refusal({ url: `/v1/products?${ten.join('&')}&gtin[exists]=false` })).toEqual([
        {
          in: 'query',
          pointer: '',
          message: `has ${LIST_MAX_FILTERS + 1} filters; at most ${LIST_MAX_FILTERS} are allowed`,
        },
      ]);
      const values = (n: number) => Array.from({ length: n }, (_, i) => `S-${String(i).padStart(3, '0')}`).join(',');
      expect(await statusOf({ url: `/v1/products?sku[in]=${values(LIST_MAX_VALUES)}` })).toBe(200);
      expect(await refusal({ url: `/v1/products?sku[in]=${values(LIST_MAX_VALUES + 1)}` })).toEqual([
        { in: 'query', pointer: '/sku[in]', message: `must NOT have more than ${LIST_MAX_VALUES} items` },
      ]);
    });

    it('answers URLs refused before routing with problem documents: a path that is not UTF-8 (400), an overlong id (414)', async () => {
      for (const [url, status] of [
        ['/v1/products/%FF', 400],
        ['/v1/%E0%A4%A', 400],
        [`/v1/products/${'a'.repeat(200)}`, 414],
      ] as const) {
        const res = await send({ url });
        expect(res.statusCode, url).toBe(status);
        expect(res.headers['content-type']).toMatch(PROBLEM);
        expect(res.json()).toMatchObject({ status, requestId: res.headers['x-request-id'] });
      }
      for (const id of [
        'not-an-id',
        '%24gt',
        encodeURIComponent('{"$gt":""}'),
        '__proto__',
        '6650F0C2A1B2C3D4E5F60718',
      ]) {
        const errors = await refusal({ url: `/v1/products/${id}` });
        expect(
          errors.every((e) => e.in === 'params' && e.pointer === '/id'),
          id,
        ).toBe(true);
      }
    });
  });

  describe('the prefix filter', () => {
    const names = ['(a+)+$ literally', 'a+b (c)', 'aab', '.*', 'x'.repeat(5), `${'a'.repeat(40)}!`, 'Base product'];
    beforeAll(async () => {
      for (const [i, name] of names.entries()) {
        if (name === 'Base product') continue;
        const res = await send({
          method: 'POST',
          url: '/v1/products',
          payload: productInput({ sku: `PFX-${i}`, name }),
        });
        expect(res.statusCode, res.body).toBe(201);
      }
      for (const email of ['ada@example.com', 'Ada.Lovelace@Example.org', 'adb@example.com', 'ada+x@example.com']) {
        const res = await send({ method: 'POST', url: '/v1/customers', payload: { email, name: 'Prefix test' } });
        expect(res.statusCode, res.body).toBe(201);
      }
    });
    /** The values of `field` in the page the URL answers, sorted. */
    const matching = async (url: string, field: string): Promise<string[]> => {
      const res = await send({ url });
      expect(res.statusCode, res.body).toBe(200);
      return res
        .json()
        .items.map((item: Record<string, string>) => item[field])
        .sort();
    };
    const sorted = (values: string[]) => [...values].sort();

    it('matches regular expression syntax literally: metacharacters and ReDoS patterns are just text', async () => {
      const by = (prefix: string) =>
        matching(`/v1/products?name[prefix]=${encodeURIComponent(prefix)}&fields=name`, 'name');
      expect(await by('(a+)+$')).toEqual(['(a+)+$ literally']);
      expect(await by('a+b')).toEqual(['a+b (c)']);
      expect(await by('.*')).toEqual(['.*']);
      expect(await by('a')).toEqual(sorted([`${'a'.repeat(40)}!`, 'a+b (c)', 'aab']));
      // The classic catastrophic pattern against its classic victim: answered, with nothing matched.
      expect(await by('(a|aa)+$')).toEqual([]);
      expect(await by(`(a+)+${'a'.repeat(40)}`)).toEqual([]);
      expect(await matching('/v1/products?sku[prefix]=PFX-&fields=sku', 'sku')).toEqual([
        'PFX-0',
        'PFX-1',
        'PFX-2',
        'PFX-3',
        'PFX-4',
        'PFX-5',
      ]);
      expect(await matching('/v1/products?sku[prefix]=pfx-&fields=sku', 'sku')).toEqual([]);
    });

    it('escapes so that any text matches only itself', () => {
      for (const text of [
        '(a+)+$',
        '[^x]*',
        'a|b',
        '\\d+',
        '^$',
        '{1,2}',
        'a.b?c',
        '/x/',
        'tab\there',
        'ünï ☕',
        '#-&~`"\'',
      ]) {
        const pattern = new RegExp(`^${escapeRegExp(text)}`, 'u');
        expect(escapeRegExp(text), text).not.toMatch(/[()[\]{}|^$*+?.]/);
        expect(pattern.test(`${text} and more`), text).toBe(true);
        expect(pattern.test(`>${text}`), text).toBe(false);
      }
    });

    it('on customers e-mails, compares as the collection does: regardless of case, through the unique index', async () => {
      const by = (prefix: string) =>
        matching(`/v1/customers?email[prefix]=${encodeURIComponent(prefix)}&fields=email`, 'email');
      expect(await by('ADA')).toEqual(sorted(['Ada.Lovelace@Example.org', 'ada+x@example.com', 'ada@example.com']));
      expect(await by('ada.')).toEqual(['Ada.Lovelace@Example.org']);
      expect(await by('ada+')).toEqual(['ada+x@example.com']);
      expect(await by('.*')).toEqual([]);
      // The plans MongoDB weighs include a scan of a bounded range of the e-mail index; a regex,
      // which ignores collations, could only scan all of it (bounds [CollationKey(0x), {})).
      const customers = t.app.stores.repositoryOf('customers');
      const explained = (await customers.explainList({
        filters: [{ field: 'email', op: 'prefix', value: 'ada' }],
        sort: { field: 'createdAt', direction: -1 },
        limit: 50,
        count: false,
      })) as {
        queryPlanner: { winningPlan: unknown; rejectedPlans: unknown[] };
      };
      const emailScans = indexScans([
        explained.queryPlanner.winningPlan,
        ...explained.queryPlanner.rejectedPlans,
      ]).filter((scan) => scan.indexName === 'email_unique');
      expect(emailScans.length).toBeGreaterThan(0);
      for (const scan of emailScans) {
        expect(scan.indexBounds.email).toHaveLength(1);
        expect(scan.indexBounds.email![0]).toMatch(/^\[CollationKey\(0x[0-9a-f]+\), CollationKey\(0x[0-9a-f]+\)\)$/);
      }
    });

    it('refuses a prefix that is empty, longer than 64 characters, or has control characters', async () => {
      for (const value of ['', 'a'.repeat(65), 'a%00b', 'a%0Ab']) {
        const errors = await refusal({ url: `/v1/products?name[prefix]=${value}` });
        expect([...new Set(errors.map((e) => e.pointer))], value).toEqual(['/name[prefix]']);
      }
    });
  });
});
