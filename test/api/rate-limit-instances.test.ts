// Rate limits across instances: two instances on one database share what each admitted every
// SYNC_INTERVAL_MS, so one key bursting over both is held to its limit, within the overshoot the
// README states: one request per instance once the instances have exchanged the key (on top of
// what the bucket refills meanwhile), and at most the limit again when its burst reaches both
// before either has served it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYNC_INTERVAL_MS, TokenBuckets } from '../../src/http/plugins/rate-limit.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

const LIMIT = 20;
const INSTANCES = 2;

describe('rate limits across instances', () => {
  let one: TestApp;
  let two: TestApp;

  beforeAll(async () => {
    one = await buildTestApp('rate_limit_instances');
    two = await buildAppOn(one.dbName, one.key);
    await Promise.all([waitForDatabase(one.app), waitForDatabase(two.app)]);
    // Both have exchanged at least once: each knows the other is there.
    await new Promise((resolve) => setTimeout(resolve, SYNC_INTERVAL_MS * 12));
  });
  afterAll(async () => {
    await Promise.all([one.app.close(), two.app.close()]);
  });

  /** What a bucket refilled since `started` (LIMIT per minute): admitted rightly on top of the limit. */
  const refilled = (started: number) => Math.ceil(((Date.now() - started) * LIMIT) / 60_000);
  const settle = () => new Promise((resolve) => setTimeout(resolve, SYNC_INTERVAL_MS * 4));

  /** `perInstance` requests with `key` on each instance at once; the statuses. */
  async function burst(key: string, perInstance: number): Promise<number[]> {
    const send = (t: TestApp) =>
      t.app.inject({ method: 'GET', url: '/v1/products', headers: { authorization: `Bearer ${key}` } });
    const answers = await Promise.all(Array.from({ length: perInstance }, () => [send(one), send(two)]).flat());
    return answers.map((answer) => answer.statusCode);
  }

  it('a key both instances have served is held to its limit, plus one request per instance', async () => {
    const { key } = await one.createKey(['products:read'], { rateLimitPerMinute: LIMIT });
    const started = Date.now();
    expect(await burst(key, 1)).toEqual([200, 200]);
    await settle();
    const statuses = await burst(key, LIMIT);
    const admitted = statuses.filter((status) => status === 200).length + 2;
    expect(statuses.every((status) => status === 200 || status === 429)).toBe(true);
    expect(admitted).toBeGreaterThanOrEqual(LIMIT);
    expect(admitted).toBeLessThanOrEqual(LIMIT + refilled(started) + INSTANCES);
  });

  it('a key used up on one instance is refused by the other once they have exchanged', async () => {
    const { key } = await one.createKey(['products:read'], { rateLimitPerMinute: LIMIT });
    const use = (t: TestApp) =>
      t.app.inject({ method: 'GET', url: '/v1/products', headers: { authorization: `Bearer ${key}` } });
    // The other has served it once: it holds a bucket for it, and reads what the first one used.
    expect((await use(two)).statusCode).toBe(200);
    // The first one uses up the rest, in bursts: between exchanges it takes its share of what is left.
    const started = Date.now();
    let admitted = 1;
    for (let round = 0; round < 10 && admitted < LIMIT; round++) {
      const answers = await Promise.all(Array.from({ length: LIMIT }, () => use(one)));
      admitted += answers.filter((answer) => answer.statusCode === 200).length;
      await settle();
    }
    expect(admitted).toBeGreaterThanOrEqual(LIMIT);
    expect(admitted).toBeLessThanOrEqual(LIMIT + refilled(started) + INSTANCES);
    await settle();
    // What the other admits now is what the bucket refilled meanwhile, not a fresh limit of its own.
    const after = await Promise.all(Array.from({ length: LIMIT }, () => use(two)));
    const more = after.filter((answer) => answer.statusCode === 200).length;
    expect(admitted + more).toBeLessThanOrEqual(LIMIT + refilled(started) + INSTANCES);
    const refused = after.find((answer) => answer.statusCode === 429);
    expect(refused).toBeDefined();
    expect(Number(refused!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('a burst that reaches both before either has served the key passes by at most the limit again', async () => {
    const { key } = await one.createKey(['products:read'], { rateLimitPerMinute: LIMIT });
    const statuses = await burst(key, LIMIT);
    const admitted = statuses.filter((status) => status === 200).length;
    expect(admitted).toBeGreaterThanOrEqual(LIMIT / INSTANCES);
    expect(admitted).toBeLessThanOrEqual(LIMIT * 2);
  });

  it('counts refusals by scope on /metrics', async () => {
    const metrics = await one.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/storekeeper_rate_limited_total\{scope="key"\} [1-9]/);
    expect(metrics.body).toMatch(/storekeeper_rate_limited_total\{scope="anonymous"\} 0/);
  });
});

describe('token buckets shared between instances', () => {
  const takeAll = (buckets: TokenBuckets, identity: string) => {
    let taken = 0;
    while (buckets.take(identity, LIMIT).allowed) taken++;
    return taken;
  };

  it("take their share of what is left, are charged with the others' use, and are whole again without exchanges", () => {
    const now = 0;
    const buckets = new TokenBuckets(() => now);
    expect(buckets.take('key:a', LIMIT).allowed).toBe(true);
    expect(buckets.unshared()).toEqual(new Map([['key:a', 1]]));
    // Another instance took 3 and serves the key too: 16 left, 8 of them here until the next exchange.
    buckets.shared(new Map([['key:a', { others: 3, peers: 1 }]]), 2);
    expect(takeAll(buckets, 'key:a')).toBe(8);
    // A key new here, with two instances about: half of it until its first exchange.
    expect(takeAll(buckets, 'key:b')).toBe(LIMIT / 2);
    // MongoDB does not answer: each instance limits alone, so no share waits for an exchange.
    buckets.alone();
    expect(takeAll(buckets, 'key:a')).toBe(8);
    expect(takeAll(buckets, 'key:b')).toBe(LIMIT / 2);
  });
});
