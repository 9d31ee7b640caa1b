// Every route against every scope: a key holding only the scope a route needs (or every scope)
// is served; a key holding any other single scope gets 403; no key gets 401; open routes answer
// without one. The expected scope of each route is written out here, independently of how the
// service derives it, and the table must name every route the OpenAPI document lists, so a new
// route fails this test until its access is decided.

import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES } from '../../src/domain/access.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';
import { shop, type Shop } from '../helpers/shop.ts';
import { waitForFeed } from '../helpers/sse.ts';

type Prepare = () => Promise<InjectOptions>;

interface RouteCase {
  /** The one scope that grants the route, or 'open'. */
  scope: string;
  /** A fresh, valid request (setting up what it needs with the all-scope key). */
  prepare: Prepare;
  /** Its answer is a stream that ends only when the client leaves: served is taken as it starts, then left. */
  stream?: boolean;
}

let t: TestApp;
let s: Shop;
let serial = 0;
const next = () => ++serial;

const json = (method: InjectOptions['method'], url: string, payload?: unknown): InjectOptions => ({
  method,
  url,
  ...(payload !== undefined && { payload: payload as object }),
});
const productBody = (sku: string) => ({
  sku,
  name: `Product ${sku}`,
  price: { amount: 1000, currency: 'EUR' },
  category: 'test',
});
const newProduct = async () => (await s.product(`MX-${next()}`)).id;
const newCustomer = async () => (await s.customer()).id;
const newStock = async () => {
  const sku = `MX-${next()}`;
  await s.product(sku);
  return { sku, id: (await s.stock(sku, 'AMS-1', 10)).id };
};
/** An order placed and moved through `actions`, ready for the next action. */
const orderAfter = async (...actions: string[]) => {
  const { sku } = await newStock();
  const placed = await s.place(await newCustomer(), 'AMS-1', [{ sku, quantity: 1 }]);
  expect(placed.statusCode, placed.body).toBe(201);
  const id = placed.json().id as string;
  for (const action of actions) expect((await s.act(id, action)).statusCode).toBe(200);
  return id;
};

const ROUTES: Record<string, RouteCase> = {
  'GET /health/live': { scope: 'open', prepare: async () => json('GET', '/health/live') },
  'GET /health/ready': { scope: 'open', prepare: async () => json('GET', '/health/ready') },
  'GET /metrics': { scope: 'operations:read', prepare: async () => json('GET', '/metrics') },

  'GET /v1/products': { scope: 'products:read', prepare: async () => json('GET', '/v1/products?limit=5') },
  'POST /v1/products': {
    scope: 'products:write',
    prepare: async () => json('POST', '/v1/products', productBody(`MX-${next()}`)),
  },
  'GET /v1/products/{id}': {
    scope: 'products:read',
    prepare: async () => json('GET', `/v1/products/${await newProduct()}`),
  },
  'PUT /v1/products/{id}': {
    scope: 'products:write',
    prepare: async () => {
      const product = await s.product(`MX-${next()}`);
      return json('PUT', `/v1/products/${product.id}`, { ...productBody(product.sku), name: 'Replaced' });
    },
  },
  'PATCH /v1/products/{id}': {
    scope: 'products:write',
    prepare: async () => ({
      ...json('PATCH', `/v1/products/${await newProduct()}`, { name: 'Patched' }),
      headers: { 'content-type': 'application/merge-patch+json' },
    }),
  },
  'DELETE /v1/products/{id}': {
    scope: 'products:write',
    prepare: async () => json('DELETE', `/v1/products/${await newProduct()}`),
  },

  'GET /v1/customers': { scope: 'customers:read', prepare: async () => json('GET', '/v1/customers?limit=5') },
  'POST /v1/customers': {
    scope: 'customers:write',
    prepare: async () => json('POST', '/v1/customers', { email: `mx-${next()}@example.com`, name: 'A Buyer' }),
  },
  'GET /v1/customers/{id}': {
    scope: 'customers:read',
    prepare: async () => json('GET', `/v1/customers/${await newCustomer()}`),
  },
  'PUT /v1/customers/{id}': {
    scope: 'customers:write',
    prepare: async () => {
      const customer = await s.customer();
      return json('PUT', `/v1/customers/${customer.id}`, { email: customer.email, name: 'Replaced' });
    },
  },
  'PATCH /v1/customers/{id}': {
    scope: 'customers:write',
    prepare: async () => ({
      ...json('PATCH', `/v1/customers/${await newCustomer()}`, { name: 'Patched' }),
      headers: { 'content-type': 'application/merge-patch+json' },
    }),
  },
  'DELETE /v1/customers/{id}': {
    scope: 'customers:write',
    prepare: async () => json('DELETE', `/v1/customers/${await newCustomer()}`),
  },

  'GET /v1/stock': { scope: 'stock:read', prepare: async () => json('GET', '/v1/stock?limit=5') },
  'POST /v1/stock': {
    scope: 'stock:write',
    prepare: async () => {
      const sku = `MX-${next()}`;
      await s.product(sku);
      return json('POST', '/v1/stock', { sku, warehouse: 'AMS-1', available: 3 });
    },
  },
  'GET /v1/stock/{id}': { scope: 'stock:read', prepare: async () => json('GET', `/v1/stock/${(await newStock()).id}`) },
  'PUT /v1/stock/{id}': {
    scope: 'stock:write',
    prepare: async () => {
      const { sku, id } = await newStock();
      return json('PUT', `/v1/stock/${id}`, { sku, warehouse: 'AMS-1', available: 7 });
    },
  },
  'PATCH /v1/stock/{id}': {
    scope: 'stock:write',
    prepare: async () => ({
      ...json('PATCH', `/v1/stock/${(await newStock()).id}`, { available: 4 }),
      headers: { 'content-type': 'application/merge-patch+json' },
    }),
  },
  'DELETE /v1/stock/{id}': {
    scope: 'stock:write',
    prepare: async () => json('DELETE', `/v1/stock/${(await newStock()).id}`),
  },
  'POST /v1/stock/restock': {
    scope: 'stock:write',
    prepare: async () =>
      json('POST', '/v1/stock/restock', { sku: (await newStock()).sku, warehouse: 'AMS-1', quantity: 2 }),
  },
  'POST /v1/stock/move': {
    scope: 'stock:write',
    prepare: async () =>
      json('POST', '/v1/stock/move', { sku: (await newStock()).sku, from: 'AMS-1', to: 'BER-1', quantity: 2 }),
  },

  'GET /v1/orders': { scope: 'orders:read', prepare: async () => json('GET', '/v1/orders?limit=5') },
  'POST /v1/orders': {
    scope: 'orders:write',
    prepare: async () =>
      json('POST', '/v1/orders', {
        customerId: await newCustomer(),
        warehouse: 'AMS-1',
        lines: [{ sku: (await newStock()).sku, quantity: 1 }],
      }),
  },
  'GET /v1/orders/{id}': { scope: 'orders:read', prepare: async () => json('GET', `/v1/orders/${await orderAfter()}`) },
  'POST /v1/orders/{id}/pay': {
    scope: 'orders:write',
    prepare: async () => json('POST', `/v1/orders/${await orderAfter()}/pay`),
  },
  'POST /v1/orders/{id}/ship': {
    scope: 'orders:write',
    prepare: async () => json('POST', `/v1/orders/${await orderAfter('pay')}/ship`),
  },
  'POST /v1/orders/{id}/deliver': {
    scope: 'orders:write',
    prepare: async () => json('POST', `/v1/orders/${await orderAfter('pay', 'ship')}/deliver`),
  },
  'POST /v1/orders/{id}/cancel': {
    scope: 'orders:write',
    prepare: async () => json('POST', `/v1/orders/${await orderAfter()}/cancel`),
  },

  'GET /v1/audit': { scope: 'audit:read', prepare: async () => json('GET', '/v1/audit?limit=5') },
  'GET /v1/audit/{id}': {
    scope: 'audit:read',
    prepare: async () => {
      await newProduct();
      const [entry] = (await t.app.inject({ method: 'GET', url: '/v1/audit?limit=1' })).json().items;
      return json('GET', `/v1/audit/${entry.id}`);
    },
  },

  'GET /v1/keys': { scope: 'keys:admin', prepare: async () => json('GET', '/v1/keys') },
  'POST /v1/keys': {
    scope: 'keys:admin',
    prepare: async () => json('POST', '/v1/keys', { name: `matrix ${next()}`, scopes: ['products:read'] }),
  },
  'GET /v1/keys/{id}': {
    scope: 'keys:admin',
    prepare: async () => json('GET', `/v1/keys/${(await t.createKey(['products:read'])).id}`),
  },
  'DELETE /v1/keys/{id}': {
    scope: 'keys:admin',
    prepare: async () => json('DELETE', `/v1/keys/${(await t.createKey(['products:read'])).id}`),
  },

  ...Object.fromEntries(
    ['products', 'customers', 'stock', 'orders'].map((collection) => [
      `GET /v1/${collection}/changes`,
      { scope: `${collection}:read`, prepare: async () => json('GET', `/v1/${collection}/changes`), stream: true },
    ]),
  ),
  // The feed of several collections needs the read scope of each it names.
  'GET /v1/changes': {
    scope: 'orders:read',
    prepare: async () => json('GET', '/v1/changes?collections=orders'),
    stream: true,
  },

  // The batch route needs the write scope of each collection its operations touch.
  'POST /v1/batch': {
    scope: 'products:write',
    prepare: async () =>
      json('POST', '/v1/batch', {
        operations: [{ op: 'insert', collection: 'products', document: productBody(`MX-${next()}`) }],
      }),
  },
};

describe('the scope matrix: every route, every scope', () => {
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    t = await buildTestApp('scope_matrix');
    await waitForDatabase(t.app);
    await t.app.ready();
    await waitForFeed(t.app);
    s = shop(t.app);
    for (const scope of SCOPES)
      keys[scope] = (await t.createKey([scope], { name: `only ${scope}`, rateLimitPerMinute: 0 })).key;
  });
  afterAll(() => t.app.close());

  it('names every route of the OpenAPI document, and only those', async () => {
    const spec = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(spec.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(Object.keys(ROUTES).sort()).toEqual(documented.sort());
  });

  it('documents the security of every protected route, and only of those', () => {
    const spec = t.app.swagger() as unknown as {
      paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>;
    };
    for (const [route, { scope }] of Object.entries(ROUTES)) {
      const [method, path] = route.split(' ') as [string, string];
      const operation = spec.paths[path]![method.toLowerCase()]!;
      if (scope === 'open') {
        // No requirement, said explicitly: an absent security would leave readers to guess.
        expect(operation.security, route).toEqual([]);
      } else {
        expect(operation.security, route).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
        expect(Object.keys(operation.responses), route).toEqual(expect.arrayContaining(['401', '403', '429']));
      }
    }
  });

  it.each(Object.entries(ROUTES))('%s', async (route, { scope, prepare, stream }) => {
    const seen: string[] = [];
    const send = async (label: string, request: InjectOptions, authorization: string | undefined, served = false) => {
      const streamed = served && stream === true;
      const res = await t.app.inject({
        ...request,
        headers: { ...request.headers, authorization },
        ...(streamed && { payloadAsStream: true }),
      });
      if (streamed) res.stream().destroy();
      seen.push(`${label}: ${res.statusCode}`);
      return res;
    };

    // Refusals happen before anything runs, so one prepared request serves them all.
    const refused = await prepare();
    const anonymous = await send('no key', refused, undefined);
    if (scope === 'open') {
      expect(anonymous.statusCode, route).toBeLessThan(300);
    } else {
      expect(anonymous.statusCode, route).toBe(401);
      expect(anonymous.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
      expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer realm="storekeeper"/);
    }
    for (const other of SCOPES.filter((candidate) => candidate !== scope)) {
      const res = await send(other, refused, `Bearer ${keys[other]}`);
      if (scope === 'open') {
        expect(res.statusCode, `${route} with ${other}`).toBeLessThan(300);
        continue;
      }
      expect(res.statusCode, `${route} with ${other}`).toBe(403);
      expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:insufficient-scope', missingScopes: [scope] });
    }
    if (scope !== 'open') {
      const granted = await send(scope, await prepare(), `Bearer ${keys[scope]}`, true);
      expect(granted.statusCode, `${route} with ${scope}: ${granted.body}`).toBeGreaterThanOrEqual(200);
      expect(granted.statusCode, `${route} with ${scope}: ${granted.body}`).toBeLessThan(300);
    }
    const all = await send('every scope', await prepare(), `Bearer ${t.key}`, true);
    expect(all.statusCode, `${route} with every scope: ${all.body}`).toBeLessThan(300);
    // No key, each of the scopes, and the key with every scope.
    expect(seen).toHaveLength(SCOPES.length + 2);
  });
});
