import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

describe('GET /metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('metrics');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('counts requests by route pattern (not by URL) and status, in the Prometheus text format', async () => {
    await t.app.inject('/health/live');
    await t.app.inject('/health/live');
    await t.app.inject('/v1/products/6650f0c2a1b2c3d4e5f60718');
    await t.app.inject('/v1/products/6650f0c2a1b2c3d4e5f60719');
    await t.app.inject('/nowhere/at/all');

    const res = await t.app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.body;
    expect(text).toContain('storekeeper_http_requests_total{method="GET",route="/health/live",status="200"} 2');
    expect(text).toContain('storekeeper_http_requests_total{method="GET",route="/v1/products/:id",status="404"} 2');
    expect(text).not.toContain('6650f0c2a1b2c3d4e5f60718');
    expect(text).toMatch(
      /storekeeper_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/health\/live"\} \d+/,
    );
  });

  it("reports MongoDB as up, transaction retries by kind, and the process's own resources", async () => {
    const text = (await t.app.inject('/metrics')).body;
    expect(text).toContain('storekeeper_mongodb_up 1');
    expect(text).toMatch(/storekeeper_transaction_retries_total\{kind="transient"\} \d+/);
    expect(text).toMatch(/storekeeper_process_resident_memory_bytes \d+/);
    expect(text).toMatch(/storekeeper_process_cpu_seconds_total \d/);
  });

  it('counts transactions by outcome and Idempotency-Key events, as they happen', async () => {
    const value = (text: string, series: string) =>
      Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    const before = (await t.app.inject('/metrics')).body;
    const product = {
      sku: 'METRICS-1',
      name: 'Metered',
      price: { amount: 100, currency: 'EUR' },
      category: 'test',
      status: 'active',
    };
    const headers = { 'idempotency-key': `metrics-${process.pid}` };

    expect((await t.app.inject({ method: 'POST', url: '/v1/products', headers, payload: product })).statusCode).toBe(
      201,
    );
    expect(
      (await t.app.inject({ method: 'POST', url: '/v1/products', headers, payload: product })).headers[
        'idempotency-replayed'
      ],
    ).toBe('true');

    const after = (await t.app.inject('/metrics')).body;
    expect(
      value(after, 'storekeeper_transactions_total{outcome="committed"}') -
        value(before, 'storekeeper_transactions_total{outcome="committed"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(after, 'storekeeper_idempotency_total{event="claimed"}') -
        value(before, 'storekeeper_idempotency_total{event="claimed"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(after, 'storekeeper_idempotency_total{event="replayed"}') -
        value(before, 'storekeeper_idempotency_total{event="replayed"}'),
    ).toBeGreaterThanOrEqual(1);
    for (const outcome of ['refused', 'not-written', 'unknown'])
      expect(after).toMatch(new RegExp(`storekeeper_transactions_total\\{outcome="${outcome}"\\} \\d+`));
    for (const event of ['rebuilt', 'taken-over', 'expired', 'in-progress', 'reused'])
      expect(after).toMatch(new RegExp(`storekeeper_idempotency_total\\{event="${event}"\\} \\d+`));
  });
});
