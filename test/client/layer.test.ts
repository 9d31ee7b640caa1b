// The layer storekeeper/client adds over openapi-fetch, against the real app listening on a
// port behind a small front server (./front.ts) that can stand in for it with a 503 or a 429,
// or run a write and lose its answer: typed problems, merge patches, one Idempotency-Key across
// a call's retries, Retry-After (the waits asked of an injected sleep, not measured), the bounds
// on retries, which answers are never retried, cursor pages and ETag revalidation.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createClient,
  header,
  isProblem,
  ProblemError,
  unwrap,
  type ClientOptions,
  type StorekeeperClient,
} from '../../src/client/index.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { Front } from './front.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('storekeeper/client, the layer over openapi-fetch', () => {
  let t: TestApp;
  let front: Front;
  /** The waits the client asked for, in ms, in order: the injected sleep only records them. */
  let sleeps: number[] = [];
  let client: StorekeeperClient;
  let sku = 0;

  const clientWith = (retry: ClientOptions['retry'] = {}) =>
    createClient({
      baseUrl: front.url,
      apiKey: t.key,
      userAgent: 'client-layer-test/1.0',
      retry: { sleep: async (ms) => void sleeps.push(ms), ...retry },
    });

  const newProduct = (fields: { category?: string; name?: string } = {}) =>
    unwrap(
      client.POST('/v1/products', {
        body: {
          sku: `LAYER-${++sku}`,
          name: fields.name ?? `Layer ${sku}`,
          price: { amount: 900, currency: 'EUR' },
          category: fields.category ?? 'layer',
          status: 'active',
        },
      }),
    );

  /** What the front server saw: method, path and status of each request. */
  const traffic = () => front.seen.map((seen) => `${seen.method} ${seen.url.split('?')[0]} ${seen.status}`);

  beforeAll(async () => {
    t = await buildTestApp('client-layer');
    await waitForDatabase(t.app);
    front = await Front.before(await t.app.listen({ port: 0, host: '127.0.0.1' }));
  });
  beforeEach(() => {
    front.reset();
    sleeps = [];
    client = clientWith();
  });
  afterAll(async () => {
    await front.close();
    await t.app.close();
  });

  describe('problems', () => {
    it('throws a 409 insufficient-stock with its shortages typed, and does not retry it', async () => {
      const product = await newProduct();
      await unwrap(client.POST('/v1/stock', { body: { sku: product.sku, warehouse: 'AMS-1', available: 1 } }));
      const customer = await unwrap(
        client.POST('/v1/customers', { body: { email: 'layer-buyer@example.com', name: 'Buyer' } }),
      );
      front.reset();

      const placing = unwrap(
        client.POST('/v1/orders', {
          body: { customerId: customer.id, warehouse: 'AMS-1', lines: [{ sku: product.sku, quantity: 3 }] },
        }),
      );
      const error: unknown = await placing.catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ProblemError);
      if (!isProblem(error, 'insufficient-stock')) throw new Error('expected insufficient-stock');
      expect(error.status).toBe(409);
      expect(error.type).toBe('urn:storekeeper:problem:insufficient-stock');
      expect(error.title).toBe('Insufficient Stock');
      expect(error.detail).toContain(product.sku);
      expect(error.shortages).toEqual([{ sku: product.sku, warehouse: 'AMS-1', requested: 3, available: 1 }]);
      expect(error.requestId).toBe(error.headers.get('x-request-id'));
      expect(isProblem(error, 'limit-exceeded')).toBe(false);
      expect(traffic()).toEqual(['POST /v1/orders 409']);
      expect(sleeps).toEqual([]);
    });

    it("gives a raw call's error as a ProblemError carrying the document's members", async () => {
      const { error, response } = await client.POST('/v1/products', {
        body: { sku: 'LAYER-BAD', name: 'Bad', price: { amount: -1, currency: 'EUR' }, category: 'layer' },
      });
      expect(response.status).toBe(400);
      expect(error).toBeInstanceOf(ProblemError);
      if (!isProblem(error, 'validation-failed')) throw new Error('expected validation-failed');
      expect(error.errors).toContainEqual(expect.objectContaining({ in: 'body', pointer: '/price/amount' }));
      expect(error.problem).toMatchObject({ status: 400, errors: error.errors });
    });

    it('throws a 412 for a write under a stale If-Match, naming precondition-failed', async () => {
      const product = await newProduct();
      await client.patchDocument('products', product.id, { name: 'Moved on' });
      const stale = await client.patchDocument('products', product.id, { name: 'Late' }, { ifMatch: product }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(isProblem(stale, 'precondition-failed')).toBe(true);
      expect((stale as ProblemError).status).toBe(412);
      expect(await client.getDocument('products', product.id)).toMatchObject({ name: 'Moved on', version: 2 });
    });

    it("sends the caller's own Idempotency-Key, replays it, and throws 422 idempotency-key-reused for another body", async () => {
      const body = { email: 'layer-keyed@example.com', name: 'Keyed' };
      const key = 'layer-own-key-1';
      const first = await client.POST('/v1/customers', { params: { header: { 'idempotency-key': key } }, body });
      const again = await client.POST('/v1/customers', { params: { header: { 'idempotency-key': key } }, body });
      expect(first.response.status).toBe(201);
      expect(again.response.status).toBe(201);
      expect(header(again.response, 'Idempotency-Replayed')).toBe('true');
      expect(again.data).toEqual(first.data);
      const reused = await client.POST('/v1/customers', {
        params: { header: { 'idempotency-key': key } },
        body: { ...body, name: 'Another' },
      });
      expect(reused.response.status).toBe(422);
      expect(isProblem(reused.error, 'idempotency-key-reused')).toBe(true);
      expect(front.seen.map((seen) => seen.headers['idempotency-key'])).toEqual([key, key, key]);
    });
  });

  it('sends PATCH as a merge patch, where null removes a member', async () => {
    const product = await unwrap(
      client.POST('/v1/products', {
        body: {
          sku: 'LAYER-MERGE',
          name: 'Merge',
          description: 'Goes away.',
          price: { amount: 100, currency: 'EUR' },
          category: 'layer',
        },
      }),
    );
    front.reset();
    const patched = await unwrap(
      client.PATCH('/v1/products/{id}', {
        params: { path: { id: product.id } },
        body: { description: null, price: { amount: 150 } },
      }),
    );
    expect(front.seen[0]?.headers['content-type']).toBe('application/merge-patch+json');
    expect(JSON.parse(front.seen[0]!.body)).toEqual({ description: null, price: { amount: 150 } });
    expect(patched).toMatchObject({ name: 'Merge', price: { amount: 150, currency: 'EUR' }, version: 2 });
    expect(patched).not.toHaveProperty('description');
  });

  it('sends the API key, the User-Agent, and one Idempotency-Key per POST call', async () => {
    await newProduct();
    await newProduct();
    const [one, two] = front.seen;
    expect(one?.headers.authorization).toBe(`Bearer ${t.key}`);
    expect(one?.headers['user-agent']).toBe('client-layer-test/1.0');
    expect(one?.headers['idempotency-key']).toMatch(UUID);
    expect(two?.headers['idempotency-key']).toMatch(UUID);
    expect(two?.headers['idempotency-key']).not.toBe(one?.headers['idempotency-key']);
  });

  describe('retries', () => {
    it('retries a POST whose answer was lost (503 outcome-unknown) with the same key, and gets its one answer', async () => {
      front.plan({ kind: 'lose', status: 503, code: 'outcome-unknown', retryAfter: 1 });
      const created = await client.POST('/v1/products', {
        body: { sku: 'LAYER-LOST', name: 'Lost answer', price: { amount: 700, currency: 'EUR' }, category: 'lost' },
      });
      expect(created.response.status).toBe(201);
      expect(header(created.response, 'Idempotency-Replayed')).toBe('true');
      expect(traffic()).toEqual(['POST /v1/products 503', 'POST /v1/products 201']);
      const [first, retry] = front.seen;
      expect(first?.headers['idempotency-key']).toMatch(UUID);
      expect(retry?.headers['idempotency-key']).toBe(first?.headers['idempotency-key']);
      expect(retry?.body).toBe(first?.body);
      expect(sleeps).toEqual([1000]);
      const stored = await unwrap(client.GET('/v1/products', { params: { query: { category: 'lost' } } }));
      expect(stored.items.map((item) => item.id)).toEqual([created.data!.id]);
    });

    it('retries a 503 service-unavailable after its Retry-After, with the same key', async () => {
      front.plan({ kind: 'refuse', status: 503, code: 'service-unavailable', retryAfter: 7 });
      const product = await newProduct();
      expect(product.sku).toMatch(/^LAYER-/);
      expect(traffic()).toEqual(['POST /v1/products 503', 'POST /v1/products 201']);
      expect(front.seen[1]?.headers['idempotency-key']).toBe(front.seen[0]?.headers['idempotency-key']);
      expect(sleeps).toEqual([7000]);
    });

    it('retries a 429 and a 409 idempotency-in-progress after their Retry-After', async () => {
      front.plan(
        { kind: 'refuse', status: 429, code: 'rate-limited', retryAfter: 2 },
        { kind: 'refuse', status: 409, code: 'idempotency-in-progress', retryAfter: 1 },
      );
      await newProduct();
      expect(traffic()).toEqual(['POST /v1/products 429', 'POST /v1/products 409', 'POST /v1/products 201']);
      expect(sleeps).toEqual([2000, 1000]);
    });

    it('stops after its attempts and answers the last 503 as a problem', async () => {
      client = clientWith({ attempts: 3 });
      const refusal = { kind: 'refuse', status: 503, code: 'service-unavailable', retryAfter: 1 } as const;
      front.plan(refusal, refusal, refusal);
      const error: unknown = await newProduct().catch((caught: unknown) => caught);
      expect(isProblem(error, 'service-unavailable')).toBe(true);
      expect(front.seen).toHaveLength(3);
      expect(sleeps).toEqual([1000, 1000]);
    });

    it('does not wait past maxDelayMs: a Retry-After beyond what is left ends the retries', async () => {
      client = clientWith({ attempts: 5, maxDelayMs: 5000 });
      const refusal = { kind: 'refuse', status: 503, code: 'service-unavailable', retryAfter: 3 } as const;
      front.plan(refusal, refusal);
      const error: unknown = await newProduct().catch((caught: unknown) => caught);
      expect(isProblem(error, 'service-unavailable')).toBe(true);
      expect(front.seen).toHaveLength(2);
      expect(sleeps).toEqual([3000]);
    });

    it('never retries a PATCH without If-Match whose outcome is unknown; retries one under If-Match, which cannot apply twice', async () => {
      const product = await newProduct();
      front.reset();
      front.plan({ kind: 'lose', status: 503, code: 'outcome-unknown', retryAfter: 1 });
      const unknown: unknown = await client
        .patchDocument('products', product.id, { name: 'Maybe' })
        .catch((caught: unknown) => caught);
      expect(isProblem(unknown, 'outcome-unknown')).toBe(true);
      expect(traffic()).toEqual([`PATCH /v1/products/${product.id} 503`]);
      expect(sleeps).toEqual([]);

      // The lost PATCH did commit (version 2). Under If-Match the retry finds the version moved:
      // a 412, never a second application.
      front.reset();
      front.plan({ kind: 'lose', status: 503, code: 'outcome-unknown', retryAfter: 1 });
      const guarded: unknown = await client
        .patchDocument('products', product.id, { name: 'Once' }, { ifMatch: '"2"' })
        .catch((caught: unknown) => caught);
      expect(traffic()).toEqual([`PATCH /v1/products/${product.id} 503`, `PATCH /v1/products/${product.id} 412`]);
      expect(front.seen.map((seen) => seen.headers['if-match'])).toEqual(['"2"', '"2"']);
      expect(isProblem(guarded, 'precondition-failed')).toBe(true);
      expect(sleeps).toEqual([1000]);
      expect(await client.getDocument('products', product.id)).toMatchObject({ name: 'Once', version: 3 });
    });

    it('treats no answer as an unknown outcome: a POST is sent again under its key, a PATCH without If-Match is not', async () => {
      /** Sends the first request, then drops its answer as a reset connection would. */
      const losingFirst = () => {
        let lost = false;
        return async (request: Request) => {
          if (lost) return fetch(request);
          lost = true;
          await (await fetch(request)).arrayBuffer();
          throw new TypeError('fetch failed (the test dropped the answer)');
        };
      };
      const retry = { sleep: async (ms: number) => void sleeps.push(ms) };
      const posting = createClient({ baseUrl: front.url, apiKey: t.key, fetch: losingFirst(), retry });
      const created = await posting.POST('/v1/customers', {
        body: { email: 'layer-reset@example.com', name: 'Reset' },
      });
      expect(created.response.status).toBe(201);
      expect(header(created.response, 'Idempotency-Replayed')).toBe('true');
      expect(front.seen.map((seen) => seen.headers['idempotency-key'])).toEqual([
        front.seen[0]?.headers['idempotency-key'],
        front.seen[0]?.headers['idempotency-key'],
      ]);
      expect(sleeps).toEqual([200]);

      const patching = createClient({ baseUrl: front.url, apiKey: t.key, fetch: losingFirst(), retry });
      await expect(patching.patchDocument('customers', created.data!.id, { name: 'Once' })).rejects.toThrow(
        /fetch failed/,
      );
      expect(front.seen).toHaveLength(3);
      expect(sleeps).toEqual([200]);
    });

    it('retries a PATCH without If-Match when the 503 says nothing was written', async () => {
      const product = await newProduct();
      front.reset();
      front.plan({ kind: 'refuse', status: 503, code: 'service-unavailable', retryAfter: 1 });
      const patched = await client.patchDocument('products', product.id, { name: 'Second time' });
      expect(patched).toMatchObject({ name: 'Second time', version: 2 });
      expect(front.seen).toHaveLength(2);
    });
  });

  describe('pages', () => {
    it('follows next across pages, and all() yields every item once', async () => {
      const created = [];
      for (const name of ['Paged a', 'Paged b', 'Paged c', 'Paged d', 'Paged e'])
        created.push(await newProduct({ category: 'paged', name }));
      front.reset();
      const sizes = [];
      for await (const page of client.pages('/v1/products', { category: 'paged', sort: 'name', limit: 2 }))
        sizes.push(page.items.length);
      expect(sizes).toEqual([2, 2, 1]);
      expect(front.seen.map((seen) => new URL(seen.url, front.url).searchParams.has('cursor'))).toEqual([
        false,
        true,
        true,
      ]);
      const names = [];
      for await (const item of client.all('/v1/products', { category: 'paged', sort: 'name', limit: 2 }))
        names.push(item.name);
      expect(names).toEqual(['Paged a', 'Paged b', 'Paged c', 'Paged d', 'Paged e']);
      expect(names).toHaveLength(created.length);
    });

    it('refuses a next link to another origin or another path', async () => {
      for (const next of ['http://elsewhere.example/v1/products?cursor=x', '/v1/keys?cursor=x']) {
        const lying = createClient({
          baseUrl: 'http://127.0.0.1:9',
          apiKey: 'sk_unused',
          fetch: async (request) =>
            new Response(JSON.stringify({ items: [], next: request.url.includes('cursor') ? null : next }), {
              headers: { 'content-type': 'application/json' },
            }),
        });
        const following = async () => {
          for await (const page of lying.pages('/v1/products')) expect(page.items).toEqual([]);
        };
        await expect(following()).rejects.toThrow(/refusing to follow a next link/);
      }
    });
  });

  it('revalidates a document with its ETag: a 304 gives back the body kept, and a write drops it', async () => {
    const product = await newProduct();
    front.reset();
    const first = await client.getDocument('products', product.id);
    const second = await client.getDocument('products', product.id);
    expect(second).toEqual(first);
    expect(traffic()).toEqual([`GET /v1/products/${product.id} 200`, `GET /v1/products/${product.id} 304`]);
    expect(front.seen[0]?.headers['if-none-match']).toBeUndefined();
    expect(front.seen[1]?.headers['if-none-match']).toBe('"1"');

    await client.patchDocument('products', product.id, { name: 'Changed' }, { ifMatch: first });
    expect(front.seen[2]?.headers['if-match']).toBe('"1"');
    expect(await client.getDocument('products', product.id)).toMatchObject({ name: 'Changed', version: 2 });
    expect(front.seen[3]?.headers['if-none-match']).toBeUndefined();
    expect(front.seen[3]?.status).toBe(200);
  });

  it('throws not-found for a document that is gone', async () => {
    const product = await newProduct();
    await client.getDocument('products', product.id);
    expect(await client.deleteDocument('products', product.id)).toBeUndefined();
    const error: unknown = await client.getDocument('products', product.id).catch((caught: unknown) => caught);
    expect(isProblem(error, 'not-found')).toBe(true);
  });
});
