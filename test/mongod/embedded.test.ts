// The embedded replica set against a real mongod: persistent data survives a restart on the same dir
// and port, and the in-memory flavour leaves nothing behind.
import { access, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveMongodBinary } from '../../src/mongod/binary.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../src/mongod/embedded.ts';

const { MongoClient } = mongoose.mongo;

// Provisioning on a fresh offline machine may install wine64 (about 700 MB) and fetch mongod.exe
// once; everything later reuses the cache, so only this hook needs a long timeout.
const PROVISION_TIMEOUT_MS = 20 * 60_000;

const log = (message: string): void => console.log(`[mongod] ${message}`);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

async function withClient<T>(uri: string, work: (client: InstanceType<typeof MongoClient>) => Promise<T>): Promise<T> {
  const client = await MongoClient.connect(uri);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  await resolveMongodBinary({ log });
}, PROVISION_TIMEOUT_MS);

describe('startEmbeddedMongo with a persistent data dir', () => {
  let root: string;
  const running: EmbeddedMongo[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'storekeeper-embedded-test-'));
  });

  afterAll(async () => {
    await Promise.allSettled(running.map((mongo) => mongo.stop()));
    await rm(root, { recursive: true, force: true });
  });

  async function start(dataDir: string, port: number): Promise<EmbeddedMongo> {
    const mongo = await startEmbeddedMongo({ dataDir, port, log });
    running.push(mongo);
    return mongo;
  }

  it('keeps documents across a restart on the same dir and port, and comes back PRIMARY', async () => {
    const dataDir = join(root, 'data');
    const port = await freePort();

    const first = await start(dataDir, port);
    expect(first.dataDir).toBe(dataDir);
    expect(first.uri).toContain('replicaSet=storekeeper');
    await withClient(first.uri, (client) =>
      client
        .db('embedded_test')
        .collection('notes')
        .insertOne({ _id: 'kept', text: 'survives a restart' } as never),
    );
    await first.stop();
    expect(await exists(dataDir)).toBe(true);

    const second = await start(dataDir, port);
    await withClient(second.uri, async (client) => {
      const doc = await client
        .db('embedded_test')
        .collection('notes')
        .findOne({ _id: 'kept' } as never);
      expect(doc).toMatchObject({ text: 'survives a restart' });
      const hello = await client.db('admin').command({ hello: 1 });
      expect(hello.isWritablePrimary).toBe(true);
      expect(hello.setName).toBe('storekeeper');
    });
    await second.stop();
    expect(await exists(dataDir)).toBe(true);
  });

  it('refuses clearly when another mongod already runs on the data dir', async () => {
    const dataDir = join(root, 'shared');
    const owner = await start(dataDir, await freePort());

    const second = startEmbeddedMongo({ dataDir, port: await freePort(), log });
    await expect(second).rejects.toThrow(/another mongod is already running on the data dir/);

    await owner.stop();
  });

  it('refuses a port that is already taken instead of moving to another one', async () => {
    const blocker = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const start = startEmbeddedMongo({ dataDir: join(root, 'taken-port'), port, log });
      await expect(start).rejects.toThrow(`port ${port} on 127.0.0.1 is already in use`);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('needs a port for persistent data', async () => {
    await expect(startEmbeddedMongo({ dataDir: join(root, 'no-port'), log })).rejects.toThrow(/needs a fixed port/);
  });
});

describe('startEmbeddedMongo without a data dir', () => {
  it('runs in a temp dir that stop() removes', async () => {
    const mongo = await startEmbeddedMongo({ log });
    try {
      expect(await exists(mongo.dataDir)).toBe(true);
      const hello = await withClient(mongo.uri, (client) => client.db('admin').command({ hello: 1 }));
      expect(hello.isWritablePrimary).toBe(true);
    } finally {
      await mongo.stop();
    }
    expect(await exists(mongo.dataDir)).toBe(false);
  });
});
