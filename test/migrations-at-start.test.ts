import { spawnSync } from 'node:child_process';
import mongoose from 'mongoose';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { MIGRATION_FILES, testDatabaseName, waitFor } from './helpers/app.ts';
import { getPort } from './helpers/net.ts';
import { ROOT, spawnService, type ServiceProcess } from './helpers/process.ts';

async function collections(dbName: string): Promise<string[]> {
  const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  try {
    return (await client.db(dbName).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  } finally {
    await client.close();
  }
}

describe('pending migrations at start', () => {
  let service: ServiceProcess | undefined;
  afterEach(() => {
    service?.child.kill('SIGKILL');
  });

  it('with MIGRATIONS_ON_START=require, start-up refuses and names them; nothing is created', async () => {
    const dbName = testDatabaseName('require');
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        MONGODB_URI: inject('mongoUri'),
        MONGODB_DB: dbName,
        MIGRATIONS_ON_START: 'require',
        PORT: '0',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`migrations pending: ${MIGRATION_FILES.join(', ')}`);
    expect(await collections(dbName)).not.toContain('products');
  });

  it('with MIGRATIONS_ON_START=apply, the service migrates before it serves', async () => {
    const dbName = testDatabaseName('apply');
    const port = await getPort();
    service = spawnService('src/server.ts', {
      MONGODB_URI: inject('mongoUri'),
      MONGODB_DB: dbName,
      MIGRATIONS_ON_START: 'apply',
      PORT: String(port),
    });
    await service.waitForLine((line) => line.msg === `applied migrations: ${MIGRATION_FILES.join(', ')}`);
    expect(await collections(dbName)).toEqual(expect.arrayContaining(['customers', 'orders', 'products', 'stock']));
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.status === 200,
      60_000,
      'readiness',
    );
  });

  it('by default on a MONGODB_URI database, the service serves but is not ready while migrations are pending', async () => {
    const dbName = testDatabaseName('check');
    const port = await getPort();
    service = spawnService('src/server.ts', {
      MONGODB_URI: inject('mongoUri'),
      MONGODB_DB: dbName,
      PORT: String(port),
    });
    await service.waitForLine((line) => typeof line.msg === 'string' && line.msg.startsWith('Server listening'));
    let body: { type?: string; pendingMigrations?: string[] } = {};
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/health/ready`);
        body = (await res.json()) as typeof body;
        return res.status === 503 && body.type === 'urn:storekeeper:problem:migrations-pending';
      },
      60_000,
      'readiness to name the pending migration',
    );
    expect(body.pendingMigrations).toEqual(MIGRATION_FILES);
    expect(await collections(dbName)).not.toContain('products');
  });
});
