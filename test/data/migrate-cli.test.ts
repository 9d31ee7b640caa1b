// The ops side: migrate-mongo's own command line with migrate-mongo-config.js, which reads the
// service's configuration (MONGODB_URI, or the embedded database) and the runner's settings, so
// both read and write one changelog.

import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import mongoose from 'mongoose';
import { LOCK_TTL_SECONDS, MIGRATION_SETTINGS, MIGRATIONS_DIR } from '../../src/data/migrations.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { listens, migrateMongo } from '../helpers/commands.ts';
import { getPort } from '../helpers/net.ts';

const FIRST = '20261125000000-create-collections.js';
const PENDING_ROW = new RegExp(`${FIRST.replace(/\./g, '\\.')}\\s*│\\s*PENDING`);
const APPLIED_ROW = new RegExp(`${FIRST.replace(/\./g, '\\.')}\\s*│\\s*\\d{4}-\\d\\d-\\d\\dT`);

describe('migrate-mongo command line', () => {
  const migrated = testDatabaseName('migrate_cli');
  const pending = testDatabaseName('migrate_cli_pending');
  const joined = testDatabaseName('migrate_cli_joined');
  const directories: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'storekeeper-migrate-cli-'));
    directories.push(dir);
    return dir;
  };

  let migrations: string[];
  beforeAll(async () => {
    migrations = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.js')).sort();
    await migrateDatabase(migrated);
  });
  afterAll(async () => {
    for (const name of [migrated, pending, joined]) await dropDatabase(name);
    for (const dir of directories) await rm(dir, { recursive: true, force: true });
  });

  it('creates a migration without any database', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    // Nothing listens on the embedded port and nothing may be started: create never connects.
    const port = await getPort();
    const result = await migrateMongo(['create', 'add-gtin', '--migrations-dir', dir], {
      DATA_DIR: dataDir,
      EMBEDDED_MONGODB_PORT: String(port),
    });
    expect(result.code, result.stderr).toBe(0);
    const [created] = await readdir(dir);
    expect(created).toMatch(/^\d{14}-add-gtin\.js$/);
    expect(result.stdout).toContain(`Created: ${dir}/${created}`);
    expect(existsSync(dataDir)).toBe(false);
    expect(await listens(port)).toBe(false);
  });

  it('refuses a bad environment, naming the variable, before connecting to anything', async () => {
    const result = await migrateMongo(['status'], { MONGODB_URI: 'not a uri' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('MONGODB_URI must be a MongoDB connection string');
  });

  it('reads the changelog the programmatic runner wrote, and finds nothing to do', async () => {
    const env = { MONGODB_URI: inject('mongoUri'), MONGODB_DB: migrated };
    const status = await migrateMongo(['status'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(APPLIED_ROW);

    const up = await migrateMongo(['up'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).not.toContain('MIGRATED UP');
  });

  it('lists the migration as pending on a database never migrated, and prepares the lock', async () => {
    const status = await migrateMongo(['status'], { MONGODB_URI: inject('mongoUri'), MONGODB_DB: pending });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(PENDING_ROW);

    // Only the bookkeeping is created, the same as the runner's: the exclusive lock's unique index
    // and the TTL index that removes a crashed run's lock (MongoDB's TTL monitor runs once a
    // minute, so the expiry itself is not waited for here).
    const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
    try {
      const db = client.db(pending);
      const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
      expect(names).toEqual([MIGRATION_SETTINGS.changelogCollectionName, MIGRATION_SETTINGS.lockCollectionName].sort());
      const indexes = await db.collection(MIGRATION_SETTINGS.lockCollectionName).listIndexes().toArray();
      expect(indexes).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ key: { createdAt: 1 }, expireAfterSeconds: LOCK_TTL_SECONDS }),
          expect.objectContaining({ name: 'single_lock', key: { singleLock: 1 }, unique: true }),
        ]),
      );
    } finally {
      await client.close();
    }
  });

  it('joins the embedded database that already runs on EMBEDDED_MONGODB_PORT when MONGODB_URI is unset', async () => {
    // The run's replica set is an embedded one (same code path, same replica set name).
    const port = Number(new URL(inject('mongoUri')).port);
    const dataDir = join(await tempDir(), 'untouched');
    const status = await migrateMongo(['status'], {
      EMBEDDED_MONGODB_PORT: String(port),
      DATA_DIR: dataDir,
      MONGODB_DB: joined,
    });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stderr).toContain(`the embedded database already runs on 127.0.0.1:${port}`);
    expect(status.stdout).toMatch(PENDING_ROW);
    expect(existsSync(dataDir)).toBe(false);
    expect(await listens(port)).toBe(true);
  });

  it(
    'otherwise starts the embedded database for each command and stops it before exiting',
    { timeout: 240_000 },
    async () => {
      const dataDir = await tempDir();
      const port = await getPort();
      const env = { DATA_DIR: dataDir, EMBEDDED_MONGODB_PORT: String(port) };
      const run = async (command: string) => {
        const result = await migrateMongo([command], env);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain(
          `nothing listens on 127.0.0.1:${port}: starting the embedded database on ${join(dataDir, 'mongodb')}`,
        );
        expect(result.stderr).toContain('embedded database stopped');
        // Stopped, not orphaned: nothing listens the moment the command has exited.
        expect(await listens(port)).toBe(false);
        return result.stdout;
      };

      expect(await run('status')).toMatch(PENDING_ROW);
      const up = await run('up');
      for (const file of migrations) expect(up).toContain(`MIGRATED UP: ${file}`);
      // The data dir persists between commands, like `npm start`'s.
      expect(await run('status')).toMatch(APPLIED_ROW);
      expect(await run('down')).toContain(`MIGRATED DOWN: ${migrations.at(-1)}`);
    },
  );
});
