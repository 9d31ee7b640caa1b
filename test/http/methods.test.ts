// 405 Method Not Allowed on every known path: each method a path does not answer is a 405 problem
// whose Allow lists exactly the methods it does answer, decided before the body is read, and
// paths nothing answers stay 404.

import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';

const ID = new mongoose.Types.ObjectId().toHexString();
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const;

/** A concrete URL of every kind of path the service serves. */
const PATHS = [
  ...['products', 'customers', 'stock', 'orders'].flatMap((collection) => [
    `/v1/${collection}`,
    `/v1/${collection}/${ID}`,
  ]),
  ...['pay', 'ship', 'deliver', 'cancel'].map((action) => `/v1/orders/${ID}/${action}`),
  '/v1/stock/restock',
  '/v1/stock/move',
  '/v1/batch',
  '/v1/keys',
  `/v1/keys/${ID}`,
  '/v1/audit',
  `/v1/audit/${ID}`,
  '/health/live',
  '/health/ready',
  '/metrics',
  '/docs',
  '/docs/json',
];

describe('405 with Allow on every known path', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('methods', { RATE_LIMIT_PER_MINUTE: '0', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '0' });
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it.each([
    ['TRACE', '/v1/products', 'GET, HEAD, POST'],
    ['PUT', '/v1/batch', 'POST'],
    ['GET', '/v1/batch', 'POST'],
    ['PUT', '/v1/customers', 'GET, HEAD, POST'],
    ['PATCH', `/v1/orders/${ID}`, 'GET, HEAD'],
    ['PATCH', '/v1/keys', 'GET, HEAD, POST'],
    ['POST', `/v1/audit/${ID}`, 'GET, HEAD'],
    ['PUT', '/v1/keys', 'GET, HEAD, POST'],
    ['POST', '/health/live', 'GET, HEAD'],
    ['DELETE', '/metrics', 'GET, HEAD'],
    ['OPTIONS', `/v1/orders/${ID}/pay`, 'POST'],
  ])('%s %s answers 405 with Allow: %s', async (method, url, allow) => {
    const res = await t.app.inject({ method, url });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe(allow);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.json()).toMatchObject({
      type: 'urn:storekeeper:problem:method-not-allowed',
      title: 'Method Not Allowed',
      status: 405,
      detail: `${method} is not allowed on ${url}; allowed: ${allow}.`,
      instance: url,
      requestId: res.headers['x-request-id'],
    });
  });

  it('every method on every known path is either served or a 405 whose Allow lists exactly the served ones', async () => {
    const mismatches: string[] = [];
    for (const url of PATHS) {
      const served: string[] = [];
      const allows = new Set<string>();
      for (const method of METHODS) {
        const res = await t.app.inject({ method, url });
        // A 404 of a served route says the document is missing; one of the router says the route is.
        if (res.statusCode === 404 && method !== 'HEAD' && String(res.json().detail).startsWith('Route '))
          mismatches.push(`${method} ${url}: no route`);
        if (res.statusCode === 405) allows.add(String(res.headers.allow));
        else served.push(method);
      }
      if (allows.size > 1) mismatches.push(`${url}: Allow differs between methods: ${[...allows].join(' | ')}`);
      const [allow] = [...allows];
      if (allow !== undefined && allow !== served.join(', '))
        mismatches.push(`${url}: Allow is ${allow}, served are ${served.join(', ')}`);
    }
    expect(mismatches).toEqual([]);
  });

  it('answers 405 before the body is read or the key checked: a body of any type, no key', async () => {
    const res = await t.app.inject({
      method: 'PUT',
      url: `/v1/orders/${ID}`,
      headers: { 'content-type': 'text/plain', authorization: undefined },
      payload: '{',
    });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  it('a path nothing serves stays a 404, whatever the method', async () => {
    for (const method of METHODS) {
      const res = await t.app.inject({ method, url: '/v1/nothing' });
      expect(res.statusCode, method).toBe(404);
    }
    expect((await t.app.inject({ method: 'PUT', url: `/v1/products/${ID}/extra` })).statusCode).toBe(404);
  });

  it('the contract lists none of the refused methods', async () => {
    const spec = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(spec.paths['/v1/batch'] ?? {})).toEqual(['post']);
    expect(Object.keys(spec.paths['/v1/orders/{id}'] ?? {})).toEqual(['get']);
  });
});

describe('405 with CORS on', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('methods_cors', { CORS_ORIGINS: 'https://admin.example.com' });
  });
  afterAll(() => t.app.close());

  it('an unknown path stays 404 although preflights (OPTIONS) are answered on every path', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/no/such/route' })).statusCode).toBe(404);
    const res = await t.app.inject({ method: 'PUT', url: '/v1/batch' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST, OPTIONS');
  });
});
