// Every operation of the contract, called through storekeeper/client against the real app
// listening on a port: each answer is asserted, and the last test fails if an operation of
// openapi/openapi.json was never called, so a route added to the contract needs a call here.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, unwrap, type StorekeeperClient } from '../../src/client/index.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { waitForFeed } from '../helpers/sse.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** Every operation of the contract, as `METHOD /path/{param}`, with a matcher for the URLs it takes. */
function contractOperations(): { name: string; method: string; pattern: RegExp; params: number }[] {
  const contract = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(contract.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((method) => METHODS.includes(method))
      .map((method) => ({
        name: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
        params: (path.match(/\{/g) ?? []).length,
      })),
  );
}

describe('storekeeper/client against the contract', () => {
  const operations = contractOperations();
  /** The statuses each operation answered, by operation name. */
  const answered = new Map<string, number[]>();
  let t: TestApp;
  let client: StorekeeperClient;

  /** Records which operation each request was; a literal path wins over a templated one (/changes over /{id}). */
  const recording = async (request: Request) => {
    const response = await fetch(request);
    const path = new URL(request.url).pathname;
    const operation = operations
      .filter((candidate) => candidate.method === request.method && candidate.pattern.test(path))
      .sort((a, b) => a.params - b.params)[0];
    if (operation) answered.set(operation.name, [...(answered.get(operation.name) ?? []), response.status]);
    return response;
  };

  beforeAll(async () => {
    t = await buildTestApp('client-contract');
    await waitForDatabase(t.app);
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    await waitForFeed(t.app);
    client = createClient({ baseUrl: base, apiKey: t.key, fetch: recording, userAgent: 'client-contract-test' });
  });
  afterAll(async () => {
    await t.app.close();
  });

  const product = (sku: string) => ({
    sku,
    name: `Client ${sku}`,
    price: { amount: 1250, currency: 'EUR' },
    category: 'client-test',
    status: 'active' as const,
  });

  it('answers health and metrics', async () => {
    const live = await unwrap(client.GET('/health/live'));
    expect(live.status).toBe('ok');
    const ready = await client.GET('/health/ready');
    expect(ready.response.status).toBe(200);
    const metrics = await unwrap(client.GET('/metrics', { parseAs: 'text' }));
    expect(metrics).toContain('storekeeper_');
  });

  it('creates, reads, lists, replaces, patches and deletes products', async () => {
    const created = await client.POST('/v1/products', { body: product('CLI-P1') });
    expect(created.response.status).toBe(201);
    expect(created.response.headers.get('location')).toBe(`/v1/products/${created.data!.id}`);
    const id = created.data!.id;
    expect(await unwrap(client.GET('/v1/products/{id}', { params: { path: { id } } }))).toEqual(created.data);
    const list = await unwrap(client.GET('/v1/products', { params: { query: { category: 'client-test' } } }));
    expect(list.items.map((item) => item.id)).toEqual([id]);
    const replaced = await unwrap(
      client.PUT('/v1/products/{id}', {
        params: { path: { id } },
        body: { ...product('CLI-P1'), name: 'Replaced', description: 'Whole.' },
      }),
    );
    expect(replaced).toMatchObject({ name: 'Replaced', description: 'Whole.', version: 2 });
    const patched = await unwrap(
      client.PATCH('/v1/products/{id}', { params: { path: { id } }, body: { description: null, tags: ['new'] } }),
    );
    expect(patched).toMatchObject({ name: 'Replaced', tags: ['new'], version: 3 });
    expect(patched).not.toHaveProperty('description');

    const other = await unwrap(client.POST('/v1/products', { body: product('CLI-GONE') }));
    const deleted = await client.DELETE('/v1/products/{id}', { params: { path: { id: other.id } } });
    expect(deleted.response.status).toBe(204);
    const gone = await client.GET('/v1/products/{id}', { params: { path: { id: other.id } } });
    expect(gone.response.status).toBe(404);
    expect(gone.error).toMatchObject({ type: 'urn:storekeeper:problem:not-found', status: 404 });
  });

  it('creates, reads, lists, replaces, patches and deletes customers', async () => {
    const created = await unwrap(
      client.POST('/v1/customers', { body: { email: 'client-one@example.com', name: 'Client One' } }),
    );
    const id = created.id;
    expect(await unwrap(client.GET('/v1/customers/{id}', { params: { path: { id } } }))).toEqual(created);
    const list = await unwrap(client.GET('/v1/customers', { params: { query: { 'email[prefix]': 'client-one@' } } }));
    expect(list.items.map((item) => item.id)).toEqual([id]);
    const replaced = await unwrap(
      client.PUT('/v1/customers/{id}', {
        params: { path: { id } },
        body: { email: 'client-one@example.com', name: 'Client Uno', marketingOptIn: true },
      }),
    );
    expect(replaced).toMatchObject({ name: 'Client Uno', marketingOptIn: true, version: 2 });
    const patched = await unwrap(
      client.PATCH('/v1/customers/{id}', { params: { path: { id } }, body: { phone: '+31201234567' } }),
    );
    expect(patched).toMatchObject({ name: 'Client Uno', phone: '+31201234567', version: 3 });

    const other = await unwrap(
      client.POST('/v1/customers', { body: { email: 'client-gone@example.com', name: 'Gone' } }),
    );
    const deleted = await client.DELETE('/v1/customers/{id}', { params: { path: { id: other.id } } });
    expect(deleted.response.status).toBe(204);
  });

  it('creates, reads, lists, replaces, patches and deletes stock items, restocks and moves stock', async () => {
    const created = await unwrap(
      client.POST('/v1/stock', { body: { sku: 'CLI-P1', warehouse: 'AMS-1', available: 10 } }),
    );
    const id = created.id;
    expect(created).toMatchObject({ available: 10, reserved: 0, shipped: 0 });
    expect(await unwrap(client.GET('/v1/stock/{id}', { params: { path: { id } } }))).toEqual(created);
    const list = await unwrap(client.GET('/v1/stock', { params: { query: { sku: 'CLI-P1' } } }));
    expect(list.items.map((item) => item.id)).toEqual([id]);
    const replaced = await unwrap(
      client.PUT('/v1/stock/{id}', {
        params: { path: { id } },
        body: { sku: 'CLI-P1', warehouse: 'AMS-1', available: 20, reorderLevel: 5 },
      }),
    );
    expect(replaced).toMatchObject({ available: 20, reorderLevel: 5, version: 2 });
    const patched = await unwrap(
      client.PATCH('/v1/stock/{id}', { params: { path: { id } }, body: { reorderLevel: 3 } }),
    );
    expect(patched).toMatchObject({ available: 20, reorderLevel: 3, version: 3 });

    const restocked = await client.POST('/v1/stock/restock', {
      body: { sku: 'CLI-P1', warehouse: 'AMS-1', quantity: 5 },
    });
    expect(restocked.response.status).toBe(200);
    expect(restocked.data).toMatchObject({ id, available: 25 });
    const opened = await client.POST('/v1/stock/restock', {
      body: { sku: 'CLI-P1', warehouse: 'RTM-1', quantity: 1 },
    });
    expect(opened.response.status).toBe(201);
    const moved = await unwrap(
      client.POST('/v1/stock/move', { body: { sku: 'CLI-P1', from: 'AMS-1', to: 'RTM-1', quantity: 2 } }),
    );
    expect(moved).toMatchObject({ from: { available: 23 }, to: { available: 3 } });

    const deleted = await client.DELETE('/v1/stock/{id}', { params: { path: { id: opened.data!.id } } });
    expect(deleted.response.status).toBe(204);
  });

  it('places orders and moves them through pay, ship, deliver and cancel', async () => {
    const customer = await unwrap(
      client.POST('/v1/customers', { body: { email: 'client-buyer@example.com', name: 'Buyer' } }),
    );
    const placement = { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: 'CLI-P1', quantity: 2 }] };
    const placed = await unwrap(client.POST('/v1/orders', { body: placement }));
    expect(placed).toMatchObject({
      status: 'placed',
      totals: { itemCount: 2, subtotal: { amount: 2500, currency: 'EUR' } },
    });
    const id = placed.id;
    expect(await unwrap(client.GET('/v1/orders/{id}', { params: { path: { id } } }))).toEqual(placed);
    const list = await unwrap(client.GET('/v1/orders', { params: { query: { customerId: customer.id } } }));
    expect(list.items.map((item) => item.id)).toEqual([id]);

    const paid = await unwrap(client.POST('/v1/orders/{id}/pay', { params: { path: { id } }, body: { note: 'card' } }));
    expect(paid.status).toBe('paid');
    const shipped = await unwrap(client.POST('/v1/orders/{id}/ship', { params: { path: { id } } }));
    expect(shipped.status).toBe('shipped');
    const delivered = await unwrap(client.POST('/v1/orders/{id}/deliver', { params: { path: { id } } }));
    expect(delivered.status).toBe('delivered');

    const second = await unwrap(client.POST('/v1/orders', { body: placement }));
    const cancelled = await unwrap(client.POST('/v1/orders/{id}/cancel', { params: { path: { id: second.id } } }));
    expect(cancelled.status).toBe('cancelled');
  });

  it('runs a batch', async () => {
    const answer = await unwrap(
      client.POST('/v1/batch', {
        body: { operations: [{ op: 'insert', collection: 'products', document: product('CLI-BATCH') }] },
      }),
    );
    expect(answer.results).toMatchObject([{ index: 0, op: 'insert', status: 201 }]);
  });

  it('opens every change feed', async () => {
    const feeds = [
      () => client.GET('/v1/products/changes', { parseAs: 'stream' }),
      () => client.GET('/v1/customers/changes', { parseAs: 'stream' }),
      () => client.GET('/v1/stock/changes', { parseAs: 'stream' }),
      () => client.GET('/v1/orders/changes', { parseAs: 'stream' }),
      () => client.GET('/v1/changes', { params: { query: { collections: 'products,orders' } }, parseAs: 'stream' }),
    ];
    for (const open of feeds) {
      const { data, response } = await open();
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/event-stream');
      const reader = data!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain(': connected');
      await reader.cancel();
    }
  });

  it('lists and reads the audit trail', async () => {
    const page = await unwrap(client.GET('/v1/audit', { params: { query: { collection: 'orders', limit: 5 } } }));
    expect(page.items.length).toBeGreaterThan(0);
    const [newest] = page.items;
    const event = await unwrap(client.GET('/v1/audit/{id}', { params: { path: { id: newest!.id } } }));
    expect(event).toEqual(newest);
    expect(event.collection).toBe('orders');
  });

  it('creates, lists, reads and revokes API keys', async () => {
    const created = await client.POST('/v1/keys', { body: { name: 'client-reader', scopes: ['products:read'] } });
    expect(created.response.status).toBe(201);
    expect(created.data!.key).toMatch(/^sk_/);
    const id = created.data!.id;
    const list = await unwrap(client.GET('/v1/keys'));
    expect(list.items.map((key) => key.id)).toContain(id);
    expect(await unwrap(client.GET('/v1/keys/{id}', { params: { path: { id } } }))).toMatchObject({
      id,
      name: 'client-reader',
      scopes: ['products:read'],
    });
    const revoked = await unwrap(client.DELETE('/v1/keys/{id}', { params: { path: { id } } }));
    expect(revoked.revokedAt).toEqual(expect.any(String));
  });

  it('called every operation of the contract', () => {
    const missed = operations.map((operation) => operation.name).filter((name) => !answered.has(name));
    expect(missed).toEqual([]);
    expect(operations.length).toBeGreaterThan(40);
  });
});
