import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { migrateUp } from '../../src/data/migrations.ts';
import { getPort } from '../helpers/net.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../src/mongod/embedded.ts';
import { MIGRATION_FILES, buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('health, with MongoDB up', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('health');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('liveness answers 200 while the process runs', async () => {
    const res = await t.app.inject('/health/live');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok' });
  });

  it('readiness answers 200 with the ping latency when MongoDB answers', async () => {
    const res = await t.app.inject('/health/ready');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.status).toBe('ready');
    expect(body.checks.migrations).toEqual({ status: 'up-to-date' });
    expect(body.checks.mongodb.status).toBe('up');
    expect(body.checks.mongodb.latencyMs).toBeGreaterThanOrEqual(0);
  });
});

describe('health, with MongoDB unreachable and then back', () => {
  // A mongod of its own, so the run's shared replica set is never stopped.
  let port: number;
  let dataDir: string;
  let mongo: EmbeddedMongo | undefined;
  let t: TestApp;

  beforeAll(async () => {
    port = await getPort();
    dataDir = await mkdtemp(join(tmpdir(), 'storekeeper-health-'));
    // Nothing listens on `port` yet: the service must start anyway and answer 503s.
    t = await buildTestApp('health_down', {
      MONGODB_URI: `mongodb://127.0.0.1:${port}/?replicaSet=storekeeper`,
      MONGODB_SERVER_SELECTION_TIMEOUT_MS: '300',
      MONGODB_CONNECT_TIMEOUT_MS: '300',
      READINESS_TIMEOUT_MS: '300',
      RETRY_AFTER_SECONDS: '7',
    });
    await t.app.ready();
  });

  afterAll(async () => {
    await t.app.close();
    await mongo?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('readiness answers 503 with Retry-After while MongoDB is unreachable; liveness stays 200', async () => {
    const ready = await t.app.inject('/health/ready');
    expect(ready.statusCode).toBe(503);
    expect(ready.headers['retry-after']).toBe('7');
    expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(ready.json()).toMatchObject({ type: 'urn:storekeeper:problem:service-unavailable', status: 503 });
    expect((await t.app.inject('/health/live')).statusCode).toBe(200);
  });

  it('recovers by itself once MongoDB starts, names pending migrations until they are applied, and recovers after MongoDB restarts', async () => {
    mongo = await startEmbeddedMongo({ dataDir, port });
    // Connected, but the new database has no schema yet: still not ready, and it says why.
    await waitFor(
      async () => (await t.app.inject('/health/ready')).json().type === 'urn:storekeeper:problem:migrations-pending',
      60_000,
      'readiness to report pending migrations',
    );
    const pending = await t.app.inject('/health/ready');
    expect(pending.statusCode).toBe(503);
    expect(pending.headers['retry-after']).toBe('7');
    expect(pending.json().pendingMigrations).toEqual(MIGRATION_FILES);

    const client = await new mongoose.mongo.MongoClient(mongo.uri).connect();
    await migrateUp(client.db(t.dbName), client);
    await client.close();
    const ready = await t.app.inject('/health/ready');
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks.migrations).toEqual({ status: 'up-to-date' });

    await mongo.stop();
    await waitFor(
      async () => (await t.app.inject('/health/ready')).statusCode === 503,
      60_000,
      'readiness to notice MongoDB stopped',
    );

    mongo = await startEmbeddedMongo({ dataDir, port });
    await waitFor(
      async () => (await t.app.inject('/health/ready')).statusCode === 200,
      60_000,
      'readiness after MongoDB restarted',
    );
    expect(t.logs.lines.some((line) => line.msg === 'MongoDB unreachable; retrying')).toBe(true);
  });
});
