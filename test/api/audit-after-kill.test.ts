// The audit guarantee across a crash: the service is killed (SIGKILL, no shutdown) after a write
// committed and was answered but before its audit entry was stored (MongoDB refuses the entry's
// insert until then). The next start stores it: every committed write is audited exactly once,
// with the key and request that made it, and readable through /v1/audit.

import { afterEach, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import { Product } from '../../src/domain/entities/index.ts';
import { createTestKey, dropDatabase, migrateDatabase, testDatabaseName, waitFor } from '../helpers/app.ts';
import { getPort } from '../helpers/net.ts';
import { spawnService, type ServiceProcess } from '../helpers/process.ts';

const APP_NAME = 'storekeeper-audit-kill';

describe('a write whose audit entry was not yet stored when the service was killed', { timeout: 240_000 }, () => {
  const services: ServiceProcess[] = [];
  let client: mongoose.mongo.MongoClient | undefined;
  let dbName: string | undefined;

  afterEach(async () => {
    for (const service of services.splice(0)) {
      service.child.kill('SIGKILL');
      await service.closed;
    }
    await client?.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
    await client?.close();
    if (dbName !== undefined) await dropDatabase(dbName);
  });

  async function start(port: number): Promise<ServiceProcess> {
    const service = spawnService('src/server.ts', {
      MONGODB_URI: inject('mongoUri'),
      MONGODB_DB: dbName!,
      MONGODB_APP_NAME: APP_NAME,
      PORT: String(port),
    });
    services.push(service);
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.status === 200,
      120_000,
      'readiness',
    );
    return service;
  }

  it('gets its entry, exactly once, from the next start', async () => {
    dbName = testDatabaseName('audit_kill');
    await migrateDatabase(dbName);
    client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
    const db = client.db(dbName);
    const key = await createTestKey(dbName, ['*'], { name: 'audit-kill' });
    const port = await getPort();
    const first = await start(port);
    await first.waitForLine((line) => typeof line.msg === 'string' && line.msg.startsWith('audit stream started'));

    // MongoDB refuses the service's audit inserts, as a primary stepping down would.
    await client.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: 'alwaysOn',
      data: {
        failCommands: ['insert'],
        appName: `${APP_NAME}-audit`,
        namespace: `${dbName}.audit_events`,
        errorCode: 91,
      },
    });
    const created = await fetch(`http://127.0.0.1:${port}/v1/products`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json', 'x-request-id': 'kill-1' },
      body: JSON.stringify({ ...Product.example, sku: 'KILL-1' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(await db.collection('products').countDocuments({ sku: 'KILL-1' })).toBe(1);

    first.child.kill('SIGKILL');
    await first.closed;
    expect(await db.collection('audit_events').countDocuments({ documentId: id })).toBe(0);
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });

    await start(port);
    const listed = await fetch(`http://127.0.0.1:${port}/v1/audit?documentId=${id}`, {
      headers: { authorization: `Bearer ${key.key}` },
    });
    expect(listed.status).toBe(200);
    const { items } = (await listed.json()) as { items: Record<string, unknown>[] };
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      action: 'create',
      collection: 'products',
      documentId: id,
      documentVersion: 1,
      keyId: key.id,
      keyName: 'audit-kill',
      requestId: 'kill-1',
    });
    expect(await db.collection('audit_events').countDocuments({ documentId: id })).toBe(1);
  });
});
