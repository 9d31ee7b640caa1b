// A corpus of hostile requests against every route the app serves, read from the app itself (its
// route table, checked against the OpenAPI document), so a route added tomorrow is attacked the
// day it exists: operator injection through query strings, bodies and ids; server-side JavaScript
// ($where, $function, $accumulator, $expr); prototype pollution; ReDoS patterns; bodies nested
// 10,000 levels deep or over the body limit; wrong types; invalid ids; bytes that are not UTF-8;
// wrong content types; no key, or a hostile one. Each hostile part rides on an otherwise valid
// request where the route takes a body (the example of its OpenAPI schema), so a part that slipped
// through would have written something. Every answer must be a 4xx problem document, the process
// must still answer afterwards, and every collection must be byte-for-byte what it was.

import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Entity } from '../../src/domain/entity.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import { buildTestApp, dumpDatabase, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { shop } from '../helpers/shop.ts';

/** What a hostile request may be answered with. Nothing else: no 2xx, no 3xx, no 5xx. */
const ALLOWED = new Set([400, 401, 404, 405, 412, 413, 414, 415]);
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type Method = (typeof METHODS)[number];
const WITH_BODY = new Set<Method>(['POST', 'PUT', 'PATCH', 'DELETE']);

type Json = Record<string, unknown>;
interface Attack {
  label: string;
  request: InjectOptions;
}

// --- the routes -------------------------------------------------------------------------------

/**
 * Every route as `path -> methods`, parsed from Fastify's printed route tree: the hidden routes
 * too (Swagger UI's files, the 405 answers). The tree abbreviates a wildcard route's path (it
 * shows /docs/static/* as /docs/*), which is harmless here: every path gets every method anyway.
 */
function routeTable(printed: string): Map<string, Set<string>> {
  const table = new Map<string, Set<string>>();
  const pathAt: string[] = [];
  for (const line of printed.split('\n')) {
    const match = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = match[1]!.length / 4;
    const path = `${depth === 0 ? '' : pathAt[depth - 1]}${match[2]}`;
    pathAt.length = depth;
    pathAt[depth] = path;
    for (const method of match[3]?.split(', ') ?? []) {
      if (!table.has(path)) table.set(path, new Set());
      table.get(path)!.add(method);
    }
  }
  return table;
}

const entityOf = (path: string): Entity | undefined =>
  (ENTITIES as readonly Entity[]).find(
    (entity) => path.startsWith(`/v1/${entity.collection}/`) || path === `/v1/${entity.collection}`,
  );
/** The resource a /v1 path is about: its second segment (products, keys, audit...). */
const resourceOf = (path: string) => path.split('/')[2] ?? '';

// --- building hostile payloads ----------------------------------------------------------------

/** JSON text with a placeholder member's value replaced by raw JSON text (to place what JSON.stringify cannot write). */
const withRaw = (base: Json, raw: string) => JSON.stringify({ ...base, zz: '\u00a7' }).replace('"\u00a7"', raw);
const deepObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const JS_SOURCE = 'function () { while (true) {} }';

/** Paths of the string values in a body (where ids, SKUs and names sit), at most `limit`. */
function stringLeaves(value: unknown, limit = 6): (string | number)[][] {
  const found: (string | number)[][] = [];
  const visit = (node: unknown, path: (string | number)[]) => {
    if (found.length >= limit) return;
    if (typeof node === 'string') found.push(path);
    else if (Array.isArray(node)) node.forEach((item, index) => visit(item, [...path, index]));
    else if (node !== null && typeof node === 'object')
      for (const [key, item] of Object.entries(node)) visit(item, [...path, key]);
  };
  visit(value, []);
  return found;
}

function replacedAt(value: unknown, path: (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value))
    return value.map((item, index) => (index === head ? replacedAt(item, rest, replacement) : item));
  return { ...(value as Json), [head!]: replacedAt((value as Json)[head as string], rest, replacement) };
}

const wrongTypeFor = (value: unknown): unknown =>
  typeof value === 'string'
    ? 12345
    : typeof value === 'number'
      ? '1e9'
      : typeof value === 'boolean'
        ? 'yes'
        : Array.isArray(value)
          ? { $in: value }
          : value === null
            ? []
            : 'not an object';

/** Hostile bodies built on `base`, a valid body of the route (or {} where it takes none). */
function hostileBodies(base: Json): { label: string; payload: string | Buffer; contentType?: string }[] {
  const first = Object.keys(base)[0] ?? 'name';
  const json = (label: string, value: unknown) => ({ label, payload: JSON.stringify(value) });
  const raw = (label: string, payload: string | Buffer) => ({ label, payload });
  const bodies = [
    // Operators where values belong, at the top and at every string leaf.
    json('$ne in a field', { ...base, [first]: { $ne: null } }),
    json('$gt in a field', { ...base, [first]: { $gt: '' } }),
    json('$in with an empty match', { ...base, [first]: { $in: [null, ''] } }),
    json('$regex ReDoS in a field', { ...base, [first]: { $regex: '^(a+)+$', $options: 'si' } }),
    json('$where at the top', { ...base, $where: JS_SOURCE }),
    json('$where in a field', { ...base, [first]: { $where: 'sleep(10000) || true' } }),
    json('$function in a field', { ...base, [first]: { $function: { body: JS_SOURCE, args: [], lang: 'js' } } }),
    json('$expr with $function', {
      ...base,
      $expr: { $function: { body: 'function () { return true; }', args: [], lang: 'js' } },
    }),
    json('$accumulator', {
      ...base,
      [first]: {
        $accumulator: {
          init: 'function () { return 0; }',
          accumulate: JS_SOURCE,
          accumulateArgs: [],
          merge: JS_SOURCE,
          lang: 'js',
        },
      },
    }),
    json('$set update document', { $set: { ...base, status: 'archived' } }),
    json('$unset and $inc', { ...base, $unset: { [first]: '' }, $inc: { version: 1000, available: 1000 } }),
    ...stringLeaves(base).map((path) => json(`$ne at /${path.join('/')}`, replacedAt(base, path, { $ne: null }))),
    ...stringLeaves(base).map((path) =>
      json(`$where at /${path.join('/')}`, replacedAt(base, path, { $where: JS_SOURCE })),
    ),
    // Keys MongoDB or JavaScript would read as something else.
    json('dotted key', { ...base, 'price.amount': 0 }),
    json('dotted nested key', { ...base, attributes: { 'a.b': 1 } }),
    json('NUL in a key', { ...base, [`${first}\u0000`]: 'x' }),
    json('constructor member', { ...base, attributes: { constructor: 'x' } }),
    json('prototype member', { ...base, prototype: { polluted: true } }),
    raw('__proto__ at the top', withRaw(base, '1').replace('"zz":1', '"__proto__":{"polluted":true}')),
    raw('__proto__ nested', withRaw(base, '{"__proto__":{"polluted":true}}')),
    raw('__proto__ escaped', withRaw(base, '{"\\u005f_proto__":{"polluted":true}}')),
    raw('constructor.prototype', withRaw(base, '1').replace('"zz":1', '"constructor":{"prototype":{"polluted":true}}')),
    // Shapes no request needs.
    raw('objects 10,000 deep', deepObject(10_000)),
    raw('arrays 10,000 deep', deepArray(10_000)),
    raw('a field 10,000 deep', withRaw(base, deepObject(10_000))),
    json('5,000 items', { ...base, [first]: Array.from({ length: 5000 }, (_, i) => i) }),
    json('20,000 members', {
      ...base,
      attributes: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`a${i}`, i])),
    }),
    json('a 20,000-character string', { ...base, [first]: 'x'.repeat(20_000) }),
    json('over the body limit', { ...base, [first]: 'x'.repeat(1_100_000) }),
    raw('a lone surrogate', withRaw(base, '"\\ud800"').replace('"zz"', `"${first}"`)),
    // Wrong types.
    ...Object.keys(base).map((key) => json(`wrong type at /${key}`, { ...base, [key]: wrongTypeFor(base[key]) })),
    json('an array', [base]),
    json('a string', 'x'),
    json('a number', 123),
    json('a boolean', true),
    // Bytes that are not UTF-8, and text that is not JSON.
    raw(
      'invalid UTF-8',
      Buffer.concat([Buffer.from(withRaw(base, '"').slice(0, -1)), Buffer.from([0xff, 0xfe, 0x22, 0x7d])]),
    ),
    raw(
      'overlong UTF-8',
      Buffer.concat([Buffer.from(withRaw(base, '"').slice(0, -1)), Buffer.from([0xc0, 0xaf, 0x22, 0x7d])]),
    ),
    raw('truncated JSON', JSON.stringify(base).slice(0, -1)),
    raw('single quotes', "{'$where': 'x'}"),
    raw('NaN', 'NaN'),
    raw('two documents', `${JSON.stringify(base)}{"$where":"x"}`),
    raw('empty', ''),
  ];
  const text = JSON.stringify(base);
  return [
    ...bodies,
    // Media types the service does not read.
    { label: 'text/plain', payload: text, contentType: 'text/plain' },
    { label: 'form data', payload: 'sku[$ne]=x&$where=1', contentType: 'application/x-www-form-urlencoded' },
    {
      label: 'multipart',
      payload: '--b\r\nContent-Disposition: form-data; name="$where"\r\n\r\nx\r\n--b--',
      contentType: 'multipart/form-data; boundary=b',
    },
    { label: 'XML', payload: '<product><sku>x</sku></product>', contentType: 'application/xml' },
    { label: 'JSON Patch', payload: '[{"op":"remove","path":"/sku"}]', contentType: 'application/json-patch+json' },
    { label: 'latin1 charset', payload: text, contentType: 'application/json; charset=latin1' },
    { label: 'UTF-16', payload: Buffer.from(text, 'utf16le'), contentType: 'application/json; charset=utf-16' },
    { label: 'JavaScript', payload: `(${JS_SOURCE})()`, contentType: 'application/javascript' },
    { label: 'no Content-Type', payload: Buffer.from(text), contentType: '' },
  ];
}

/** Hostile query strings (raw, as a client would put them on the wire). */
const HOSTILE_QUERIES = [
  'price[$gt]=0',
  'sku[$ne]=x&status[$ne]=draft',
  `$where=${encodeURIComponent(JS_SOURCE)}`,
  `filter=${encodeURIComponent('{"$where":"sleep(10000)"}')}`,
  '__proto__[polluted]=1',
  'constructor[prototype][polluted]=1',
  'constructor.prototype.polluted=1',
  `name[regex]=${encodeURIComponent('^(a+)+$')}`,
  `sku[prefix]=${encodeURIComponent('(a+)+$'.repeat(12))}`,
  'email[prefix]=%0A',
  'sku=%FF',
  'q=%E0%A4%A',
  '%FF=1',
  'sku=%ZZ',
  'sku%00=1',
  `q[$search]=x&fields=${encodeURIComponent('$where')}`,
  'limit=-1&count=yes&sort=%24natural',
  'limit=1e9',
  `cursor=${encodeURIComponent('{"$gt":""}')}`,
];

/** Path ids that are no ids. */
const HOSTILE_IDS = [
  'not-an-id',
  '%24gt',
  encodeURIComponent('{"$gt":""}'),
  '%FF',
  '__proto__',
  'constructor',
  '%24where',
  '%2e%2e',
  'a'.repeat(200),
  '000000000000000000000000',
  '6650F0C2A1B2C3D4E5F60718',
  '6650f0c2a1b2c3d4e5f6071',
  '6650f0c2a1b2c3d4e5f60718%00',
];

describe('a corpus of hostile requests against every route', () => {
  let t: TestApp;
  /** A seeded document of each resource (collections, API keys, audit entries), by resource. */
  const seeded = new Map<string, Json & { id: string }>();
  /** The valid request under each hostile one that carries a body, by `METHOD path`. */
  const baselines = new Map<string, InjectOptions>();
  let before: Map<string, string>;
  const answers: { label: string; status: number; problem: boolean }[] = [];

  const dump = () => dumpDatabase(t.app);

  beforeAll(async () => {
    // Limits off, so that every answer is about the request itself rather than its rate.
    t = await buildTestApp('hostile_corpus', { RATE_LIMIT_PER_MINUTE: '0', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '0' });
    await waitForDatabase(t.app);
    // A small, realistic shop for the injections to have something to match.
    const s = shop(t.app);
    const mug = await s.product('MUG-BLUE', { name: 'Blue mug', amount: 900 });
    await s.product('LAMP-OLD', { name: 'Old lamp', status: 'draft' });
    const shirt = await t.app.inject({
      method: 'POST',
      url: '/v1/products',
      payload: {
        sku: 'TEE-GREEN-L',
        name: 'Green tee, L',
        price: { amount: 1999, currency: 'EUR' },
        category: 'apparel',
        tags: ['organic', 'sale'],
        attributes: { size: 'L', colours: ['green'], cotton: true },
        gtin: '4006381333931',
        status: 'active',
      },
    });
    expect(shirt.statusCode, shirt.body).toBe(201);
    const buyer = await s.customer({
      name: 'Grace Hopper',
      addresses: [{ line1: '1 Navy Way', city: 'Arlington', postalCode: '22202', country: 'US' }],
      marketingOptIn: true,
    });
    await s.customer({ name: 'Alan Turing' });
    const stock = await s.stock('MUG-BLUE', 'AMS-1', 25);
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/v1/stock/restock',
          payload: { sku: 'TEE-GREEN-L', warehouse: 'AMS-1', quantity: 10 },
        })
      ).statusCode,
    ).toBe(201);
    const order = await s.place(buyer.id, 'AMS-1', [
      { sku: 'MUG-BLUE', quantity: 2 },
      { sku: 'TEE-GREEN-L', quantity: 1 },
    ]);
    expect(order.statusCode, order.body).toBe(201);
    const paid = await s.place(buyer.id, 'AMS-1', [{ sku: 'MUG-BLUE', quantity: 1 }]);
    expect((await s.act(paid.json().id, 'pay')).statusCode).toBe(200);
    seeded.set('products', mug).set('customers', buyer).set('stock', stock).set('orders', order.json());
    // A key that a hostile request to the key routes could revoke, had it got through.
    seeded.set('keys', await t.createKey(['products:read'], { name: 'victim' }));
    before = await dump();
  });
  afterAll(() => t.app.close());

  it('answers every one with a 4xx problem document: no 2xx, no 5xx, no crash', { timeout: 600_000 }, async () => {
    await t.app.ready();
    const table = routeTable(t.app.printRoutes({ commonPrefix: false }));
    type BodySchema = { $ref?: string; anyOf?: BodySchema[] };
    const openapi = t.app.swagger() as {
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: { content: Record<string, { schema: BodySchema }> };
            parameters?: { in: string; name: string }[];
          }
        >
      >;
      components: { schemas: Record<string, { examples?: Json[] }> };
    };
    // The route table is complete: every operation of the contract is in it.
    for (const [path, operations] of Object.entries(openapi.paths)) {
      for (const method of Object.keys(operations))
        expect(table.get(path.replace(/\{(\w+)\}/g, ':$1'))?.has(method.toUpperCase()), `${method} ${path}`).toBe(true);
    }
    expect(table.size).toBeGreaterThanOrEqual(Object.keys(openapi.paths).length);

    const exampleOf = (ref: string | undefined) =>
      ref === undefined ? undefined : openapi.components.schemas[ref.split('/').pop()!]?.examples?.[0];
    /** A valid body for the route, from its OpenAPI example, fitted to the seeded document it names. */
    const baseBody = (path: string, method: Method): Json => {
      const content = openapi.paths[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()]?.requestBody?.content;
      const entity = entityOf(path);
      const schema = Object.values(content ?? {})[0]?.schema;
      const ref = schema?.$ref ?? schema?.anyOf?.find((member) => member.$ref !== undefined)?.$ref;
      const example =
        exampleOf(ref) ??
        (entity && method === 'PATCH' ? exampleOf(`#/components/schemas/${entity.schemaName}Input`) : undefined);
      if (example === undefined || typeof example !== 'object' || Array.isArray(example)) return {};
      const body: Json = { ...example };
      const document = entity && seeded.get(entity.collection);
      if (entity && document && path.endsWith('/:id')) {
        if (method !== 'PUT')
          return Object.fromEntries(Object.entries(body).filter(([field]) => !entity.immutable.includes(field)));
        for (const field of entity.immutable) body[field] = document[field];
      }
      return body;
    };
    const urlFor = (path: string, id?: string) =>
      path
        .replace(/:id/g, () => id ?? seeded.get(resourceOf(path))?.id ?? new mongoose.Types.ObjectId().toHexString())
        .replace('*', 'x')
        .replace(/:(\w+)/g, 'x');

    const attacks: Attack[] = [];
    for (const [path, served] of table) {
      for (const method of METHODS) {
        const routed = served.has(method);
        const base = WITH_BODY.has(method) ? baseBody(path, method) : {};
        const contentType = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
        const withBase = (): Partial<InjectOptions> =>
          Object.keys(base).length === 0
            ? {}
            : { payload: JSON.stringify(base), headers: { 'content-type': contentType } };
        if (routed && Object.keys(base).length > 0)
          baselines.set(`${method} ${path}`, { method, url: urlFor(path), ...withBase() });
        const at = (label: string, request: InjectOptions) =>
          attacks.push({ label: `${method} ${path} ${label}`, request: { method, ...request } });
        for (const query of HOSTILE_QUERIES) at(`?${query}`, { ...withBase(), url: `${urlFor(path)}?${query}` });
        if (path.includes(':id')) {
          for (const id of HOSTILE_IDS) at(`id ${id.slice(0, 30)}`, { ...withBase(), url: urlFor(path, id) });
        }
        if (method !== 'HEAD') {
          // Every hostile body where the method serves the path; a sample where it answers 404/405.
          // An empty body on a GET is no body at all: nothing hostile left to send.
          const bodies = hostileBodies(base).filter((body) => !(method === 'GET' && body.payload.length === 0));
          for (const body of routed ? bodies : bodies.slice(0, 6)) {
            const headers = body.contentType === '' ? {} : { 'content-type': body.contentType ?? contentType };
            at(`body: ${body.label}`, { url: urlFor(path), headers, payload: body.payload });
          }
        }
        // Where the route reads If-Match (a route without conditional writes ignores the header).
        const operation = openapi.paths[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
        if (
          !routed ||
          operation?.parameters?.some((parameter) => parameter.in === 'header' && parameter.name === 'if-match')
        ) {
          for (const ifMatch of ['{"$gt":""}', '"1" OR "1"="1"', 'W/"1"']) {
            const given = withBase();
            at(`If-Match ${ifMatch}`, {
              ...given,
              url: urlFor(path),
              headers: { ...given.headers, 'if-match': ifMatch },
            });
          }
        }
        // No key, or a hostile one, with a hostile query on top (open routes would answer without a key).
        for (const authorization of [undefined, 'Bearer {"$ne":null}', 'Basic YWRtaW46YWRtaW4=']) {
          at(`authorization ${authorization}`, { url: `${urlFor(path)}?$where=1`, headers: { authorization } });
        }
        at('x-api-key {"$gt":""}', {
          url: `${urlFor(path)}?$where=1`,
          headers: { authorization: undefined, 'x-api-key': '{"$gt":""}' },
        });
      }
    }

    const failures: string[] = [];
    for (const { label, request } of attacks) {
      let res: LightMyRequestResponse;
      try {
        res = await t.app.inject(request);
      } catch (error) {
        failures.push(`${label}: inject threw ${(error as Error).message}`);
        continue;
      }
      const problem = PROBLEM_CONTENT_TYPE.test(String(res.headers['content-type']));
      answers.push({ label, status: res.statusCode, problem });
      if (!ALLOWED.has(res.statusCode)) failures.push(`${label}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      else if (!problem) failures.push(`${label}: ${res.statusCode} as ${String(res.headers['content-type'])}`);
      else if (request.method !== 'HEAD') {
        const body = res.json();
        if (
          body.status !== res.statusCode ||
          !String(body.type).startsWith('urn:storekeeper:problem:') ||
          body.requestId !== res.headers['x-request-id']
        ) {
          failures.push(`${label}: not a proper problem document: ${res.body.slice(0, 200)}`);
        }
      }
    }

    const statuses = new Map<number, number>();
    for (const { status } of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const summary = [...statuses]
      .sort(([a], [b]) => a - b)
      .map(([status, count]) => `${status}×${count}`)
      .join(', ');
    console.log(
      `hostile corpus: ${attacks.length} requests to ${table.size} paths (${[...table.values()].reduce((n, m) => n + m.size, 0)} routes) with ${METHODS.length} methods each; answers ${summary}`,
    );

    expect(failures).toEqual([]);
    expect(answers).toHaveLength(attacks.length);
    // Nothing was logged as a failure of the service itself.
    expect(t.logs.lines.filter((line) => line.level >= 50).map((line) => line.msg)).toEqual([]);
    expect(({} as Json).polluted).toBeUndefined();
  });

  it('still answers afterwards, with the data it had', async () => {
    expect((await t.app.inject({ url: '/health/live' })).statusCode).toBe(200);
    const mug = await t.app.inject({ url: `/v1/products/${seeded.get('products')!.id}` });
    expect(mug.statusCode).toBe(200);
    expect(mug.json()).toEqual(seeded.get('products'));
    const list = await t.app.inject({ url: '/v1/products?sku[prefix]=MUG&fields=sku' });
    expect(list.json().items.map((item: Json) => item.sku)).toEqual(['MUG-BLUE']);
  });

  it('leaves the database byte-for-byte as it was', async () => {
    const after = await dump();
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [name, content] of before) expect(after.get(name), name).toBe(content);
    expect(before.get('products')).toContain('MUG-BLUE');
  });

  // Last, since it writes: the same requests without their hostile part are served, so what was
  // refused above was the hostile part, and the dump does see a write.
  it('control: the valid requests under the hostile ones are served, and the dump sees what they write', async () => {
    const served = new Map<string, number>();
    for (const [route, request] of baselines) served.set(route, (await t.app.inject(request)).statusCode);
    for (const route of [
      'POST /v1/products',
      'PUT /v1/products/:id',
      'PATCH /v1/products/:id',
      'POST /v1/customers',
      'PATCH /v1/stock/:id',
      'POST /v1/stock',
      'POST /v1/orders/:id/pay',
    ]) {
      expect(served.get(route), route).toBeGreaterThanOrEqual(200);
      expect(served.get(route), route).toBeLessThan(300);
    }
    const after = await dump();
    expect(after.get('products')).not.toBe(before.get('products'));
    expect(after.get('orders')).not.toBe(before.get('orders'));
  });
});
