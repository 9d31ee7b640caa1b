import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { getPort } from './helpers/net.ts';
import { spawnService, type ServiceProcess } from './helpers/process.ts';
import { waitFor } from './helpers/app.ts';

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health/ready`)).status === 200;
  } catch {
    return false;
  }
}

describe('the embedded default (no MONGODB_URI)', () => {
  let dataDir: string;
  let service: ServiceProcess | undefined;

  afterEach(() => {
    service?.child.kill('SIGKILL');
  });
  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts its own replica set with data on disk, and keeps the data across a restart', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'storekeeper-embedded-'));
    const env = {
      PORT: String(await getPort()),
      DATA_DIR: dataDir,
      EMBEDDED_MONGODB_PORT: String(await getPort()),
    };
    const port = Number(env.PORT);

    service = spawnService('src/server.ts', env);
    const started = await service.waitForLine((line) => line.msg === 'embedded MongoDB is running; its data stays in dataDir');
    expect(started.dataDir).toBe(join(dataDir, 'mongodb'));
    await waitFor(() => ready(port), 60_000, 'readiness on the embedded database');

    // A document written while the service runs (through its replica set, as the service would).
    const uri = String(started.uri);
    expect(uri).toContain('replicaSet=storekeeper');
    const client = await new mongoose.mongo.MongoClient(uri).connect();
    await client.db('storekeeper').collection('restart_probe').insertOne({ _id: 'kept' as never, at: new Date() }, { writeConcern: { w: 'majority' } });
    await client.close();

    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);

    service = spawnService('src/server.ts', env);
    await service.waitForLine((line) => line.msg === 'embedded MongoDB is running; its data stays in dataDir');
    await waitFor(() => ready(port), 60_000, 'readiness after the restart');
    const again = await new mongoose.mongo.MongoClient(uri).connect();
    try {
      expect(await again.db('storekeeper').collection('restart_probe').findOne({ _id: 'kept' as never })).not.toBeNull();
    } finally {
      await again.close();
    }
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
  });
});
