// Abuse limits: per-key and per-IP rate limits with their headers, the cap on expensive requests
// running at once, security headers and CORS.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenBuckets } from '../../src/http/plugins/rate-limit.ts';
import { Slots } from '../../src/http/plugins/load-shedding.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';

describe('rate limits', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('rate_limits', { RATE_LIMIT_PER_MINUTE: '10', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '5' });
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  const read = (key: string) =>
    t.app.inject({ method: 'GET', url: '/v1/products?limit=1', headers: { authorization: `Bearer ${key}` } });

  it('a burst from one key is cut at its limit with 429 and Retry-After, while another key is unaffected', async () => {
    const [noisy, quiet] = [
      await t.createKey(['products:read'], { name: 'noisy' }),
      await t.createKey(['products:read'], { name: 'quiet' }),
    ];
    const burst = await Promise.all(Array.from({ length: 25 }, () => read(noisy.key)));
    const statuses = burst.map((res) => res.statusCode);
    expect(statuses.filter((status) => status === 200)).toHaveLength(10);
    expect(statuses.filter((status) => status === 429)).toHaveLength(15);

    const limited = burst.find((res) => res.statusCode === 429)!;
    expect(limited.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(limited.json()).toMatchObject({ type: 'urn:storekeeper:problem:rate-limited', status: 429 });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.headers['ratelimit-limit']).toBe('10');
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(limited.headers['ratelimit-policy']).toBe('10;w=60');

    // The other key has its whole budget, and says so.
    const other = await read(quiet.key);
    expect(other.statusCode).toBe(200);
    expect(other.headers['ratelimit-remaining']).toBe('9');
    const others = await Promise.all(Array.from({ length: 9 }, () => read(quiet.key)));
    expect(others.map((res) => res.statusCode)).toEqual(Array(9).fill(200));
  });

  it("a key's own limit replaces the default", async () => {
    const generous = await t.createKey(['products:read'], { rateLimitPerMinute: 20 });
    const statuses = (await Promise.all(Array.from({ length: 25 }, () => read(generous.key)))).map(
      (res) => res.statusCode,
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(20);
    const unlimited = await t.createKey(['products:read'], { rateLimitPerMinute: 0 });
    const all = (await Promise.all(Array.from({ length: 40 }, () => read(unlimited.key)))).map((res) => res.statusCode);
    expect(all.filter((status) => status === 200)).toHaveLength(40);
  });

  it('open routes and refused keys are limited per client IP', async () => {
    const fromIp = (
      ip: string,
      url: string,
      headers: Record<string, string | undefined> = { authorization: undefined },
    ) => t.app.inject({ method: 'GET', url, remoteAddress: ip, headers });
    const health = await Promise.all(Array.from({ length: 7 }, () => fromIp('10.0.0.1', '/health/live')));
    expect(health.map((res) => res.statusCode)).toEqual([200, 200, 200, 200, 200, 429, 429]);
    // Guessing keys costs the guesser's address too.
    const guesses = await Promise.all(
      Array.from({ length: 7 }, () => fromIp('10.0.0.2', '/v1/products', { authorization: 'Bearer sk_guess' })),
    );
    expect(guesses.map((res) => res.statusCode)).toEqual([401, 401, 401, 401, 401, 429, 429]);
    // Another address is not affected.
    expect((await fromIp('10.0.0.3', '/health/live')).statusCode).toBe(200);
  });
});

describe('token buckets', () => {
  it('refill at the rate per minute, up to the limit', () => {
    let now = 0;
    const buckets = new TokenBuckets(() => now);
    for (let i = 0; i < 60; i++) expect(buckets.take('a', 60).allowed).toBe(true);
    const refused = buckets.take('a', 60);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 1 });
    now += 1000;
    expect(buckets.take('a', 60).allowed).toBe(true);
    expect(buckets.take('a', 60).allowed).toBe(false);
    now += 120_000;
    expect(buckets.take('a', 60).remaining).toBe(59);
    // A bucket that has refilled is forgotten by the sweep.
    now += 120_000;
    buckets.sweep();
    expect(buckets.size).toBe(0);
  });
});

describe('the cap on expensive requests', () => {
  it('grants up to the capacity, queues the rest, and refuses a waiter whose time runs out', async () => {
    const slots = new Slots(2);
    expect(await slots.acquire(0)).toBe(true);
    expect(await slots.acquire(0)).toBe(true);
    const queued = slots.acquire(60_000);
    const timedOut = await slots.acquire(1);
    expect(timedOut).toBe(false);
    slots.release();
    expect(await queued).toBe(true);
    expect(slots.busy).toBe(2);
    slots.release();
    slots.release();
    expect(slots.busy).toBe(0);
  });

  it('answers 503 with Retry-After when every slot stays busy', async () => {
    const t = await buildTestApp('load_shedding', { MAX_CONCURRENT_QUERIES: '1' });
    try {
      await waitForDatabase(t.app);
      // A list holds its slot while the request is handled: hold the handler with a hook.
      let releaseFirst!: () => void;
      const held = new Promise<void>((resolve) => (releaseFirst = resolve));
      let first = true;
      t.app.addHook('preSerialization', async () => {
        if (first) {
          first = false;
          await held;
        }
      });
      const slow = t.app.inject({ method: 'GET', url: '/v1/products?limit=1' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await t.app.inject({ method: 'GET', url: '/v1/products?limit=1' });
      expect(refused.statusCode).toBe(503);
      expect(refused.json()).toMatchObject({ type: 'urn:storekeeper:problem:overloaded' });
      expect(refused.headers['retry-after']).toBe('1');
      // Reads by id are not expensive: they are never held back.
      expect((await t.app.inject({ method: 'GET', url: '/v1/products/6650f0c2a1b2c3d4e5f60718' })).statusCode).toBe(
        404,
      );
      releaseFirst();
      expect((await slow).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: '/v1/products?limit=1' })).statusCode).toBe(200);
    } finally {
      await t.app.close();
    }
  });
});

describe('security headers and CORS', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('security_headers', { CORS_ORIGINS: 'https://admin.example.com' });
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('sends helmet headers and a strict CSP with API answers, errors included', async () => {
    const answers = [
      await t.app.inject({ method: 'GET', url: '/v1/products' }),
      await t.app.inject({ method: 'GET', url: '/v1/products', headers: { authorization: undefined } }),
      await t.app.inject({ method: 'GET', url: '/no/such/route' }),
    ];
    expect(answers.map((res) => res.statusCode)).toEqual([200, 401, 404]);
    for (const res of answers) {
      expect(res.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it("leaves the docs with Swagger UI's own CSP", async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(String(res.headers['content-security-policy'])).not.toContain("default-src 'none'");
    // helmet's other headers still apply.
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['cross-origin-resource-policy']).toBe('same-site');
  });

  it('answers preflights for the configured origin only, and exposes the headers clients need', async () => {
    const preflight = (origin: string) =>
      t.app.inject({
        method: 'OPTIONS',
        url: '/v1/products',
        headers: {
          authorization: undefined,
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type',
        },
      });
    const allowed = await preflight('https://admin.example.com');
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://admin.example.com');
    expect(String(allowed.headers['access-control-allow-headers'])).toContain('authorization');
    const other = await preflight('https://evil.example.com');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();

    const read = await t.app.inject({
      method: 'GET',
      url: '/v1/products',
      headers: { origin: 'https://admin.example.com' },
    });
    expect(read.headers['access-control-allow-origin']).toBe('https://admin.example.com');
    expect(String(read.headers['access-control-expose-headers'])).toContain('etag');
  });
});
