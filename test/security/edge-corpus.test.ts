// A corpus of requests at the service's runtime edges, read from the app itself (its OpenAPI
// document names the list routes, their numeric parameters and every route that takes a body), so
// a route added tomorrow is covered the day it exists:
// - numbers that are no numbers, or not the number their text says, in every numeric query
//   parameter and limit of every list, and in every number of every write route's body;
// - malformations only Node's HTTP parser sees, and clients too slow to send their request, over
//   raw sockets against a listening app;
// - cursors of every list, altered in every character, re-encoded with other content, or taken
//   from another list;
// - stock movements onto counters at their limit.
// Every answer must be a 4xx problem document (never a 5xx), and every collection must be byte
// for byte what it was: a refused request writes nothing, idempotency records and audit entries
// included.

import type { InjectOptions } from 'fastify';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, dumpDatabase, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { shop } from '../helpers/shop.ts';

const MAX_UNITS = 1_000_000_000;
const REQUEST_TIMEOUT_MS = 2_000;

type Json = Record<string, unknown>;

interface Operation {
  operationId?: string;
  parameters?: { in: string; name: string; schema?: { type?: string; items?: { type?: string }; enum?: string[] } }[];
  requestBody?: { content: Record<string, { schema: { $ref?: string; anyOf?: { $ref?: string }[] } }> };
}

interface Spec {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { examples?: unknown[] }> };
}

/** Query values that are no number, or not the number they spell. */
const QUERY_NUMBERS = [
  'Infinity',
  '-Infinity',
  '%2BInfinity',
  'NaN',
  '1e400',
  '-1e400',
  '1E%2B999',
  '1e-400',
  '-1e-400',
  `1${'0'.repeat(400)}`,
  `0.${'0'.repeat(400)}1`,
  '9007199254740993',
  '%20',
  '',
  '%205',
  '5%20',
  '5%09',
  '%2B5',
  '0x10',
  '0b1',
  '0o7',
  '05',
  '.5',
  '5.',
  '1e',
  '--1',
  '1,5',
  '1_000',
  '%E2%88%9E',
  '%D9%A1',
  'abc',
  '1%00',
];
/** Limits that are numbers, and still no page size. */
const LIMITS = ['0', '-0', '-1', '201', '1e3', '2.5', '1e-1'];
/** Number tokens JSON.parse would read as something else than they say. */
const BODY_NUMBERS = [
  '1e400',
  '-1e400',
  '1E+999',
  '1e-400',
  '-1e-400',
  '-1.5e-999999',
  `1${'0'.repeat(400)}`,
  `0.${'0'.repeat(400)}1`,
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890',
];

/** Raw HTTP/1.1 requests only the parser sees, for a path; each must be refused with a problem. */
function malformed(path: string): { label: string; bytes: string }[] {
  const get = (head: string) => `${head}\r\n\r\n`;
  return [
    {
      label: 'TE with CL',
      bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    },
    { label: 'CL not a number', bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n` },
    { label: 'CL negative', bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n` },
    { label: 'CL with +', bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab` },
    {
      label: 'two CLs',
      bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc`,
    },
    {
      label: 'CL past 2^53',
      bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n`,
    },
    { label: 'CR in a value', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: a\rb`) },
    { label: 'LF in a value', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: a\nb`) },
    { label: 'NUL in a value', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b`) },
    { label: 'NUL in a name', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nX\u0000A: b`) },
    { label: 'obs-fold', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b`) },
    { label: 'space before colon', bytes: get(`GET ${path} HTTP/1.1\r\nHost : x`) },
    { label: 'method not a token', bytes: get(`G@T ${path} HTTP/1.1\r\nHost: x`) },
    { label: 'unknown method', bytes: get(`FETCH ${path} HTTP/1.1\r\nHost: x`) },
    { label: 'lower-case method', bytes: get(`get ${path} HTTP/1.1\r\nHost: x`) },
    { label: 'HTTP/1.2', bytes: get(`GET ${path} HTTP/1.2\r\nHost: x`) },
    { label: 'HTTP/2.0', bytes: get(`GET ${path} HTTP/2.0\r\nHost: x`) },
    { label: 'HTTP/0.9', bytes: `GET ${path}\r\n\r\n` },
    { label: 'not HTTP', bytes: get(`GET ${path} HTTX/1.1\r\nHost: x`) },
    { label: 'HTTP/2 preface', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' },
    { label: 'no Host', bytes: get(`GET ${path} HTTP/1.1`) },
    { label: 'Expect 200-ok', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nExpect: 200-ok`) },
    { label: 'header overflow', bytes: get(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20_000)}`) },
    {
      label: 'bad chunk size',
      bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    },
    {
      label: 'TE gzip',
      bytes: `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n{}`,
    },
  ];
}

/** Paths of the numbers in a value. */
function numberLeaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (typeof value === 'number') return [path];
  if (Array.isArray(value)) return value.flatMap((item, index) => numberLeaves(item, [...path, index]));
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([key, item]) => numberLeaves(item, [...path, key]));
  return [];
}

function replacedAt(value: unknown, path: (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value))
    return value.map((item, index) => (index === head ? replacedAt(item, rest, replacement) : item));
  return { ...(value as Json), [head!]: replacedAt((value as Json)[head as string], rest, replacement) };
}

/** JSON text of `base` with the value at `path` written as a raw number token. */
const withToken = (base: unknown, path: (string | number)[], token: string) =>
  JSON.stringify(replacedAt(base, path, '\u00a7')).replace('"\u00a7"', token);

/** A cursor's content re-encoded after `change`, with its signature kept: what a client can do without the secret. */
function reencoded(cursor: string, change: (content: Json) => unknown): string {
  const [payload, signature] = cursor.split('.');
  const content = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Json;
  return `${Buffer.from(JSON.stringify(change(content))).toString('base64url')}.${signature}`;
}

function tamperedCursors(cursor: string): string[] {
  const values: unknown[] = [
    0,
    -1,
    1e308,
    '',
    'zzz',
    true,
    null,
    [],
    {},
    { $gt: '' },
    { d: '1970-01-01T00:00:00.000Z' },
    { o: '000000000000000000000000' },
    { s: { $ne: null } },
  ];
  const changes: ((content: Json) => unknown)[] = [
    ...values.map((value) => (c: Json) => ({ ...c, v: value })),
    ...values.map((value) => (c: Json) => ({ ...c, v: { s: value } })),
    ...[
      '000000000000000000000000',
      'ffffffffffffffffffffffff',
      new mongoose.Types.ObjectId().toHexString(),
      7,
      null,
    ].map((id) => (c: Json) => ({ ...c, i: id })),
    (c: Json) => ({ ...c, h: 'AAAAAAAAAAAAAAAA' }),
    (c: Json) => ({ ...c, extra: 1 }),
    (c: Json) => ({ ...c, $where: '1' }),
    (c: Json) => ({ h: c.h, v: c.v }),
    (c: Json) => [c],
  ];
  const flipped = Array.from(cursor).map(
    (character, index) =>
      `${cursor.slice(0, index)}${character === 'A' ? 'B' : character === '.' ? '-' : 'A'}${cursor.slice(index + 1)}`,
  );
  const [payload, signature] = cursor.split('.');
  return [
    ...changes.map((change) => reencoded(cursor, change)),
    ...flipped,
    cursor.slice(0, -1),
    `${cursor}A`,
    `${cursor}==`,
    payload!,
    `${cursor}.${signature}`,
    `${payload}.`,
    `.${signature}`,
    payload!.replace(/[A-Za-z]/, (letter) =>
      letter === letter.toLowerCase() ? letter.toUpperCase() : letter.toLowerCase(),
    ) + `.${signature}`,
  ];
}

describe('a corpus of requests at the runtime edges', () => {
  let t: TestApp;
  let port: number;
  let before: Map<string, string>;
  const seeded = new Map<string, string>();
  const answers: { label: string; status: number }[] = [];
  const failures: string[] = [];
  let rawCount = 0;

  const dump = () => dumpDatabase(t.app);

  beforeAll(async () => {
    t = await buildTestApp('edge_corpus', {
      RATE_LIMIT_PER_MINUTE: '0',
      RATE_LIMIT_ANONYMOUS_PER_MINUTE: '0',
      REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    });
    await waitForDatabase(t.app);
    const s = shop(t.app);
    // Two of everything a list pages through, so every list has a cursor to tamper with.
    const mug = await s.product('EDGE-MUG', { amount: 900 });
    await s.product('EDGE-LAMP', { amount: 4500 });
    const buyer = await s.customer();
    await s.customer();
    const shelf = await s.stock('EDGE-MUG', 'AMS-1', 50);
    await s.stock('EDGE-LAMP', 'AMS-1', 50);
    // Counters at their limit: a full shelf, and an item whose reservations are at the limit.
    await s.stock('EDGE-MUG', 'FULL-1', MAX_UNITS);
    await s.stock('EDGE-LAMP', 'RSV-1', 10);
    const order = await s.place(buyer.id, 'AMS-1', [{ sku: 'EDGE-MUG', quantity: 2 }]);
    expect(order.statusCode, order.body).toBe(201);
    expect((await s.place(buyer.id, 'AMS-1', [{ sku: 'EDGE-LAMP', quantity: 1 }])).statusCode).toBe(201);
    await t.app.db.connection
      .db!.collection('stock')
      .updateOne({ sku: 'EDGE-LAMP', warehouse: 'RSV-1' }, { $set: { reserved: MAX_UNITS } });
    seeded.set('products', mug.id).set('customers', buyer.id).set('stock', shelf.id).set('orders', order.json().id);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as { port: number }).port;
    before = await dump();
  });
  afterAll(() => t.app.close());

  function record(label: string, status: number, contentType: unknown, body: string, requestIdHeader: unknown) {
    answers.push({ label, status });
    if (status < 400 || status >= 500) {
      failures.push(`${label}: ${status} ${body.slice(0, 200)}`);
      return;
    }
    if (!PROBLEM_CONTENT_TYPE.test(String(contentType))) {
      failures.push(`${label}: ${status} as ${String(contentType)}`);
      return;
    }
    let problem: Json;
    try {
      problem = JSON.parse(body) as Json;
    } catch {
      failures.push(`${label}: ${status} with a body that is not JSON: ${body.slice(0, 200)}`);
      return;
    }
    if (
      problem.status !== status ||
      !String(problem.type).startsWith('urn:storekeeper:problem:') ||
      typeof problem.title !== 'string' ||
      typeof problem.requestId !== 'string' ||
      problem.requestId !== requestIdHeader
    ) {
      failures.push(`${label}: not a proper problem document: ${body.slice(0, 200)}`);
    }
  }

  async function send(label: string, request: InjectOptions) {
    try {
      const res = await t.app.inject(request);
      record(label, res.statusCode, res.headers['content-type'], res.body, res.headers['x-request-id']);
    } catch (error) {
      failures.push(`${label}: inject threw ${(error as Error).message}`);
    }
  }

  it('answers every one with a 4xx problem document: no 2xx, no 5xx', { timeout: 600_000 }, async () => {
    const spec = t.app.swagger() as unknown as Spec;
    const idOf = (path: string) => seeded.get(path.split('/')[2] ?? '') ?? new mongoose.Types.ObjectId().toHexString();
    const urlOf = (path: string) => path.replace(/\{id\}/g, () => idOf(path));

    // Numbers in every numeric query parameter and limit of every list.
    const lists = Object.entries(spec.paths).flatMap(([path, operations]) => {
      const list = operations.get;
      return list?.parameters?.some((parameter) => parameter.in === 'query' && parameter.name === 'cursor')
        ? [{ path, list }]
        : [];
    });
    expect(lists.map(({ path }) => path).sort()).toEqual([
      '/v1/audit',
      '/v1/customers',
      '/v1/orders',
      '/v1/products',
      '/v1/stock',
    ]);
    for (const { path, list } of lists) {
      const numeric = (list.parameters ?? []).filter(
        (parameter) =>
          parameter.in === 'query' &&
          ['integer', 'number'].some(
            (type) => parameter.schema?.type === type || parameter.schema?.items?.type === type,
          ),
      );
      expect(
        numeric.map((parameter) => parameter.name),
        path,
      ).toContain('limit');
      for (const parameter of numeric) {
        const texts = parameter.name === 'limit' ? [...QUERY_NUMBERS, ...LIMITS] : QUERY_NUMBERS;
        for (const text of texts)
          await send(`GET ${path}?${parameter.name}=${text.slice(0, 20)}`, {
            url: `${path}?${encodeURIComponent(parameter.name)}=${text}`,
          });
      }
    }

    // Numbers in every number of every write route's body (or beside its members where it holds none).
    const exampleOf = (ref: string | undefined) =>
      ref === undefined ? undefined : spec.components.schemas[ref.split('/').pop()!]?.examples?.[0];
    for (const [path, operations] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const content = operation.requestBody?.content;
        if (content === undefined) continue;
        const [mediaType, { schema }] = Object.entries(content)[0]!;
        const ref = schema.$ref ?? schema.anyOf?.find((member) => member.$ref !== undefined)?.$ref;
        const input =
          path.startsWith('/v1/') && method === 'patch'
            ? exampleOf(
                `#/components/schemas/${String(ref)
                  .split('/')
                  .pop()!
                  .replace(/Patch$/, 'Input')}`,
              )
            : undefined;
        const base = (exampleOf(ref) ?? input ?? {}) as Json;
        const leaves = numberLeaves(base);
        const places = leaves.length > 0 ? leaves : [['zz']];
        for (const place of places) {
          for (const token of BODY_NUMBERS) {
            const label = `${method.toUpperCase()} ${path} /${place.join('/')}=${token.slice(0, 20)}`;
            const headers = {
              'content-type': mediaType,
              ...(method === 'post' && { 'idempotency-key': `edge-${answers.length}` }),
            };
            await send(label, {
              method: method.toUpperCase(),
              url: urlOf(path),
              headers,
              payload: withToken(base, place, token),
            });
          }
        }
        // The body as a whole a number JSON.parse would change.
        await send(`${method.toUpperCase()} ${path} body 1e400`, {
          method: method.toUpperCase(),
          url: urlOf(path),
          headers: { 'content-type': mediaType },
          payload: '1e400',
        });
      }
    }

    // Cursors of every list, tampered with, and each list's cursor on the others.
    const cursors = new Map<string, string>();
    for (const { path } of lists) {
      const page = await t.app.inject({ url: `${path}?limit=1` });
      expect(page.statusCode, page.body).toBe(200);
      const next = page.json().next as string | null;
      expect(next, path).not.toBeNull();
      cursors.set(path, new URL(next!, 'http://x').searchParams.get('cursor')!);
    }
    for (const [path, cursor] of cursors) {
      for (const tampered of tamperedCursors(cursor))
        await send(`GET ${path} tampered cursor`, { url: `${path}?limit=1&cursor=${encodeURIComponent(tampered)}` });
      for (const [other, foreign] of cursors)
        if (other !== path)
          await send(`GET ${path} cursor of ${other}`, {
            url: `${path}?limit=1&cursor=${encodeURIComponent(foreign)}`,
          });
      await send(`GET ${path} cursor with another sort`, {
        url: `${path}?limit=1&sort=createdAt&cursor=${encodeURIComponent(cursor)}`,
      });
    }

    // Stock movements onto counters at their limit.
    const movements: [string, string, Json][] = [
      [
        'restock one unit onto a full shelf',
        '/v1/stock/restock',
        { sku: 'EDGE-MUG', warehouse: 'FULL-1', quantity: 1 },
      ],
      [
        'restock the most units onto a full shelf',
        '/v1/stock/restock',
        { sku: 'EDGE-MUG', warehouse: 'FULL-1', quantity: MAX_UNITS },
      ],
      [
        'move one unit onto a full shelf',
        '/v1/stock/move',
        { sku: 'EDGE-MUG', from: 'AMS-1', to: 'FULL-1', quantity: 1 },
      ],
      [
        'reserve onto full reservations',
        '/v1/orders',
        { customerId: seeded.get('customers'), warehouse: 'RSV-1', lines: [{ sku: 'EDGE-LAMP', quantity: 1 }] },
      ],
    ];
    for (const [label, url, payload] of movements) {
      const res = await t.app.inject({ method: 'POST', url, payload });
      record(label, res.statusCode, res.headers['content-type'], res.body, res.headers['x-request-id']);
      expect(res.json().type, label).toBe('urn:storekeeper:problem:limit-exceeded');
    }

    // Malformations only the parser sees, over raw sockets, on paths of every kind.
    for (const path of [
      '/v1/products',
      `/v1/orders/${seeded.get('orders')}/cancel`,
      '/v1/stock/restock',
      '/v1/batch',
      '/health/live',
    ]) {
      for (const { label, bytes } of malformed(path)) {
        rawCount++;
        const answer = await rawRequest(port, bytes);
        record(
          `raw ${label} ${path}`,
          answer.status,
          answer.headers['content-type'],
          answer.body,
          answer.headers['x-request-id'],
        );
        if (!answer.closed) failures.push(`raw ${label} ${path}: the connection was left open`);
      }
    }
    // Clients too slow to send their request.
    const slow = [
      { label: 'nothing sent', pieces: [''] },
      {
        label: 'headers dripped',
        pieces: ['POST /v1/stock/restock HTTP/1.1\r\nHost: x\r\n', ...'X-Slow: abcdefghij'.split('')],
      },
      {
        label: 'body never complete',
        pieces: [
          `POST /v1/stock/restock HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.key}\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n{"sku":`,
          '"EDGE-MUG"',
        ],
      },
    ];
    for (const { label, pieces } of slow) {
      rawCount++;
      const answer = await rawRequest(port, '', { pieces, pauseMs: 400, waitMs: 20_000 });
      record(
        `raw slow: ${label}`,
        answer.status,
        answer.headers['content-type'],
        answer.body,
        answer.headers['x-request-id'],
      );
      if (!answer.closed || answer.elapsedMs > 8_000)
        failures.push(`raw slow: ${label}: cut after ${answer.elapsedMs} ms (closed: ${answer.closed})`);
    }

    const statuses = new Map<number, number>();
    for (const { status } of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const summary = [...statuses]
      .sort(([a], [b]) => a - b)
      .map(([status, count]) => `${status}×${count}`)
      .join(', ');
    console.log(
      `edge corpus: ${answers.length} requests (${rawCount} over raw sockets) to ${lists.length} lists and every route with a body; answers ${summary}`,
    );

    expect(failures).toEqual([]);
    expect(answers.length).toBeGreaterThan(2000);
    expect(
      t.logs.lines
        .filter((line) => line.level >= 50)
        .map((line) => `${line.msg} ${JSON.stringify(line.err ?? '')}`.slice(0, 300)),
    ).toEqual([]);
  });

  it('leaves every collection byte for byte as it was, idempotency records and audit entries included', async () => {
    const after = await dump();
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [name, content] of before) expect(after.get(name), name).toBe(content);
    expect([...before.keys()]).toEqual(expect.arrayContaining(['idempotency_records', 'audit_events', 'stock']));
  });

  // Last, since it writes: the corpus's valid neighbours are served, so the dump does see writes.
  it('control: a valid restock and a valid page after a cursor are served, and the dump sees the write', async () => {
    const restock = await t.app.inject({
      method: 'POST',
      url: '/v1/stock/restock',
      headers: { 'idempotency-key': 'edge-control' },
      payload: { sku: 'EDGE-MUG', warehouse: 'AMS-1', quantity: 1 },
    });
    expect(restock.statusCode, restock.body).toBe(200);
    const first = await t.app.inject({ url: '/v1/products?limit=1' });
    expect((await t.app.inject({ url: first.json().next })).statusCode).toBe(200);
    const after = await dump();
    expect(after.get('stock')).not.toBe(before.get('stock'));
    expect(after.get('idempotency_records')).not.toBe(before.get('idempotency_records'));
  });
});
