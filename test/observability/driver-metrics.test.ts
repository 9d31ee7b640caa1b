// The driver's monitoring as /metrics shows it, against the run's replica set: command durations by
// command and collection, the pool's wait queue while a command holds its only connection,
// server-selection failures when no mongod answers, and error answers by problem type.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import { buildAppOn, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { getPort } from '../helpers/net.ts';

/** The value of one series in a scrape, or NaN when it is absent. */
function value(text: string, series: string): number {
  const escaped = series.replace(/[{}"\\.[\]()*+?^$|]/g, '\\$&');
  return Number(new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

const scrape = async (t: TestApp) => {
  const res = await t.app.inject('/metrics');
  expect(res.statusCode).toBe(200);
  return res.body;
};

describe('MongoDB driver metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('driver-metrics');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('times a list under the find command of its collection, and its pool, primary and problem types', async () => {
    const findCount = 'storekeeper_mongodb_command_duration_seconds_count{command="find",collection="products"}';
    const before = value(await scrape(t), findCount);

    expect((await t.app.inject('/v1/products?limit=5')).statusCode).toBe(200);
    expect((await t.app.inject('/v1/products/6650f0c2a1b2c3d4e5f60718')).statusCode).toBe(404);

    const text = await scrape(t);
    expect(value(text, findCount) - (Number.isNaN(before) ? 0 : before)).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(
      /^storekeeper_mongodb_command_duration_seconds_bucket\{command="find",collection="products",le="\+Inf"\} \d+$/m,
    );
    // Label values come from fixed lists: no collection name outside them, no database name.
    expect(text).not.toContain(t.dbName);
    expect(value(text, 'storekeeper_mongodb_pool_connections{pool="main"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'storekeeper_mongodb_pool_wait_queue{pool="main"}')).toBe(0);
    expect(value(text, 'storekeeper_mongodb_primary')).toBe(1);
    expect(value(text, 'storekeeper_mongodb_server_selection_failures_total')).toBe(0);
    expect(
      value(
        text,
        'storekeeper_http_problems_total{method="GET",route="/v1/products/:id",status="404",problem="not-found"}',
      ),
    ).toBe(1);
    for (const name of [
      'storekeeper_mongodb_pool_checked_out',
      'storekeeper_mongodb_pool_wait_seconds_count',
      'storekeeper_mongodb_topology_changes_total',
      'storekeeper_mongodb_primary_changes_total',
      'storekeeper_expensive_requests_running',
      'storekeeper_expensive_requests_queued',
      'storekeeper_load_shed_total',
    ])
      expect(text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? \\d+`, 'm'));
  });

  it('counts command failures by class', async () => {
    const customer = { email: 'failure-class@example.com', name: 'Failure Class' };
    expect((await t.app.inject({ method: 'POST', url: '/v1/customers', payload: customer })).statusCode).toBe(201);
    expect((await t.app.inject({ method: 'POST', url: '/v1/customers', payload: customer })).statusCode).toBe(409);
    const text = await scrape(t);
    expect(text).toMatch(/^storekeeper_mongodb_command_failures_total\{command="\w+",class="duplicate-key"\} [1-9]/m);
  });
});

describe('command monitoring off (MONGODB_COMMAND_MONITORING=false)', () => {
  let t: TestApp;
  beforeAll(async () => {
    const seed = await buildTestApp('unmonitored');
    await seed.app.close();
    t = await buildAppOn(seed.dbName, seed.key, { MONGODB_COMMAND_MONITORING: 'false' });
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('times no command but keeps the pool and the primary', async () => {
    expect((await t.app.inject('/v1/products?limit=5')).statusCode).toBe(200);
    const text = await scrape(t);
    expect(text).not.toMatch(/^storekeeper_mongodb_command_duration_seconds_count\{/m);
    expect(value(text, 'storekeeper_mongodb_pool_connections{pool="main"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'storekeeper_mongodb_primary')).toBe(1);
  });
});

describe('the pool while a command holds its only connection', () => {
  const appName = `pool-wait-${process.pid}`;
  let t: TestApp;
  let admin: mongoose.mongo.MongoClient;
  beforeAll(async () => {
    const seed = await buildTestApp('pool-wait');
    await seed.app.close();
    t = await buildAppOn(seed.dbName, seed.key, {
      MONGODB_MAX_POOL_SIZE: '1',
      MONGODB_MIN_POOL_SIZE: '0',
      MONGODB_WAIT_QUEUE_TIMEOUT_MS: '30000',
      MONGODB_APP_NAME: appName,
    });
    await waitForDatabase(t.app);
    admin = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  });
  afterAll(async () => {
    await admin.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
    await admin.close();
    await t.app.close();
  });

  it('reports operations waiting for a connection, then their wait', async () => {
    // The key is looked up once, before the pool is held: scrapes then wait for nothing.
    const waitCount = 'storekeeper_mongodb_pool_wait_seconds_count{pool="main"}';
    const before = value(await scrape(t), waitCount);
    await admin.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 1 },
      data: {
        failCommands: ['find'],
        appName,
        blockConnection: true,
        blockTimeMS: 1500,
        namespace: `${t.dbName}.products`,
      },
    });

    const lists = [1, 2, 3].map(() => t.app.inject('/v1/products?limit=1'));
    await waitFor(() => (t.app.db.monitor.pools.get('main')?.waiting ?? 0) >= 1, 30_000, 'a waiting operation');
    expect(value(await scrape(t), 'storekeeper_mongodb_pool_wait_queue{pool="main"}')).toBeGreaterThanOrEqual(1);

    for (const res of await Promise.all(lists)) expect(res.statusCode, res.body).toBe(200);
    const after = await scrape(t);
    expect(value(after, 'storekeeper_mongodb_pool_wait_queue{pool="main"}')).toBe(0);
    expect(value(after, waitCount)).toBeGreaterThan(before);
  });
});

describe('no mongod to answer', () => {
  it('counts server-selection failures and knows no primary', async () => {
    const port = await getPort();
    const t = await buildAppOn('unreachable', 'no-key', {
      MONGODB_URI: `mongodb://127.0.0.1:${port}/?directConnection=true`,
      MONGODB_SERVER_SELECTION_TIMEOUT_MS: '200',
      MONGODB_CONNECT_TIMEOUT_MS: '200',
    });
    try {
      const { monitor } = t.app.db;
      await waitFor(() => monitor.serverSelectionFailures >= 1, 30_000, 'a server-selection failure');
      expect(monitor.primary).toBeUndefined();
      expect(monitor.pools.get('main')?.size ?? 0).toBe(0);
    } finally {
      await t.app.close();
    }
  });
});
