// The ops commands' connection: MONGODB_URI, the embedded database that `npm start` already runs,
// or one started (and stopped again, also on failure) for the command's own duration.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { withCliDatabase } from '../../src/cli/database-connection.ts';
import { ConfigError } from '../../src/config.ts';
import { dropDatabase, testDatabaseName } from '../helpers/app.ts';
import { getPort } from '../helpers/net.ts';

const listens = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('withCliDatabase', () => {
  const databases: string[] = [];
  const directories: string[] = [];
  afterAll(async () => {
    for (const name of databases) await dropDatabase(name);
    for (const dir of directories) await rm(dir, { recursive: true, force: true });
  });
  const freshName = (label: string) => {
    const name = testDatabaseName(label);
    databases.push(name);
    return name;
  };
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'storekeeper-cli-'));
    directories.push(dir);
    return dir;
  };

  it('uses MONGODB_URI when it is set', async () => {
    const dbName = freshName('cli_uri');
    const lines: string[] = [];
    const info = await withCliDatabase(
      async (db, client, info) => {
        await db.collection('probe').insertOne({ at: new Date() });
        expect(db.databaseName).toBe(dbName);
        expect(client.options.writeConcern.w).toBe('majority');
        return info;
      },
      { env: { MONGODB_URI: inject('mongoUri'), MONGODB_DB: dbName }, log: (m) => lines.push(m) },
    );
    expect(info).toEqual({ uri: inject('mongoUri'), dbName, embedded: false });
    expect(lines.join('\n')).toContain(`(database ${dbName})`);
  });

  it('joins the embedded database that already runs on EMBEDDED_MONGODB_PORT, leaving DATA_DIR alone', async () => {
    // The run's replica set is an embedded one (same code path, same replica set name).
    const port = Number(new URL(inject('mongoUri')).port);
    const dataDir = join(await tempDir(), 'untouched');
    const dbName = freshName('cli_running');
    const info = await withCliDatabase(
      async (db, _client, info) => {
        await db.collection('probe').insertOne({ at: new Date() });
        return info;
      },
      { env: { EMBEDDED_MONGODB_PORT: String(port), DATA_DIR: dataDir, MONGODB_DB: dbName }, log: () => {} },
    );
    expect(info).toEqual({ uri: `mongodb://127.0.0.1:${port}/?replicaSet=storekeeper`, dbName, embedded: true });
    expect(existsSync(dataDir)).toBe(false);
    expect(await listens(port)).toBe(true);
  });

  it('otherwise starts the embedded database for the work and stops it afterwards, also when the work fails', async () => {
    const dataDir = await tempDir();
    const port = await getPort();
    const env = { DATA_DIR: dataDir, EMBEDDED_MONGODB_PORT: String(port) };

    const written = await withCliDatabase(
      async (db, _client, info) => {
        expect(info.embedded).toBe(true);
        expect(await listens(port)).toBe(true);
        await db.collection('probe').insertOne({ _id: 'kept' as never });
        return db.databaseName;
      },
      { env, log: () => {} },
    );
    expect(written).toBe('storekeeper');
    expect(await listens(port)).toBe(false);
    expect(existsSync(join(dataDir, 'mongodb'))).toBe(true);

    const failure = new Error('the work failed');
    await expect(
      withCliDatabase(
        async (db) => {
          // The data of the first start is still there: the same persistent data dir.
          expect(await db.collection('probe').findOne({ _id: 'kept' as never })).not.toBeNull();
          throw failure;
        },
        { env, log: () => {} },
      ),
    ).rejects.toBe(failure);
    expect(await listens(port)).toBe(false);
  });

  it('never shows the password of MONGODB_URI, not even when the connection fails', async () => {
    const port = await getPort();
    const lines: string[] = [];
    const attempt = withCliDatabase(async () => 'unreachable', {
      env: {
        MONGODB_URI: `mongodb://seeder:s3cret-pw@127.0.0.1:${port}/?replicaSet=rs0`,
        MONGODB_SERVER_SELECTION_TIMEOUT_MS: '300',
      },
      log: (m) => lines.push(m),
    });
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain('cannot reach MongoDB');
    expect(error?.message).not.toContain('s3cret-pw');
    expect(lines.join('\n')).toContain(`127.0.0.1:${port}`);
    expect(lines.join('\n')).not.toContain('s3cret-pw');
  });

  it('throws ConfigError for a bad environment before connecting to anything', async () => {
    await expect(
      withCliDatabase(async () => 1, { env: { MONGODB_URI: 'not a uri' }, log: () => {} }),
    ).rejects.toBeInstanceOf(ConfigError);
  });
});
