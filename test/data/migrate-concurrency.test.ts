// Two migrate-mongo command lines started at the same moment on one database: exactly one
// migrates, the other stops on the lock, and the bookkeeping ends clean.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import mongoose from 'mongoose';
import { config as migrateMongoConfig, up } from 'migrate-mongo';
import { CLI_MIGRATION_SETTINGS } from '../../src/cli/migrate-config.ts';
import { LOCK_TTL_SECONDS, MIGRATIONS_DIR, prepareBookkeeping } from '../../src/data/migrations.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import { dropDatabase, testDatabaseName } from '../helpers/app.ts';
import { migrateMongo, npmRun, type CommandResult } from '../helpers/commands.ts';
import { ROOT } from '../helpers/process.ts';

const { changelogCollectionName, lockCollectionName } = CLI_MIGRATION_SETTINGS;
// migrate-mongo's own check found the other run's lock, or its insert hit the unique index.
const RAW_LOCK_MESSAGE = /Could not migrate up, a lock is in place|Could not create a lock: E11000 duplicate key error/;
const ROUNDS = 3;
const BARRIER = pathToFileURL(join(ROOT, 'test/fixtures/connect-barrier.js')).href;

describe('concurrent migrate-mongo runs', () => {
  const client = new mongoose.mongo.MongoClient(inject('mongoUri'));
  let migrationFiles: string[];
  const databases: string[] = [];
  const directories: string[] = [];
  const freshName = (label: string) => {
    const name = testDatabaseName(label);
    databases.push(name);
    return name;
  };

  beforeAll(async () => {
    await client.connect();
    migrationFiles = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.js')).sort();
  });
  afterAll(async () => {
    await client.close();
    for (const name of databases) await dropDatabase(name);
    for (const dir of directories) await rm(dir, { recursive: true, force: true });
  });

  /**
   * Prepares the database with one status run, then races two `up` runs. The status run is
   * there because this machine's mongod (the Windows build under Wine) crashes when two
   * connections create the same collection at the same moment, which two first-ever runs would
   * do with the changelog and lock collections; real MongoDB lets one creation win and the other
   * get NamespaceExists, which the preparation accepts.
   */
  async function race(dbName: string, start: (env: Record<string, string>) => Promise<CommandResult>) {
    const env = { MONGODB_URI: inject('mongoUri'), MONGODB_DB: dbName };
    const status = await npmRun('migrate:status', [], env);
    expect(status.code, status.stderr).toBe(0);

    // Started together, two processes can still reach migrate-mongo a second apart (two cores,
    // mongod under Wine), later than one run takes; the barrier makes them overlap every time.
    const barrier = await mkdtemp(join(tmpdir(), 'storekeeper-barrier-'));
    directories.push(barrier);
    const raceEnv = {
      ...env,
      NODE_OPTIONS: `--import ${BARRIER}`,
      CONNECT_BARRIER_DIR: barrier,
      CONNECT_BARRIER_PARTIES: '2',
    };
    const results = await Promise.all([start(raceEnv), start(raceEnv)]);
    // Both got as far as migrate-mongo's connect, so the race was run, not skipped.
    expect(await readdir(barrier)).toHaveLength(2);
    const winners = results.filter((result) => result.code === 0);
    const losers = results.filter((result) => result.code !== 0);
    expect(winners, results.map((r) => `exit ${r.code}: ${r.stderr}`).join('\n')).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(losers[0]!.code).not.toBeNull();
    for (const file of migrationFiles) expect(winners[0]!.stdout).toContain(`MIGRATED UP: ${file}`);
    expect(losers[0]!.stdout).not.toContain('MIGRATED UP');
    await expectMigratedOnce(dbName);
    return losers[0]!;
  }

  async function expectMigratedOnce(dbName: string) {
    const db = client.db(dbName);
    const changelog = await db
      .collection(changelogCollectionName)
      .find({}, { projection: { _id: 0, fileName: 1 } })
      .toArray();
    expect(changelog.map((entry) => entry.fileName).sort()).toEqual(migrationFiles);
    for (const entity of ENTITIES) {
      const [info] = await db.listCollections({ name: entity.collection }).toArray();
      expect(
        (info as { options?: { validator?: Record<string, unknown> } } | undefined)?.options?.validator,
        entity.collection,
      ).toHaveProperty('$jsonSchema');
    }
    expect(await db.collection(lockCollectionName).countDocuments()).toBe(0);
    // A crashed run's lock is removed by this TTL index, not waited for here (MongoDB's TTL
    // monitor runs once a minute); the unique one makes a second lock document impossible.
    const indexes = await db.collection(lockCollectionName).listIndexes().toArray();
    expect(indexes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: { createdAt: 1 }, expireAfterSeconds: LOCK_TTL_SECONDS }),
        expect.objectContaining({ name: 'single_lock', unique: true }),
      ]),
    );
  }

  for (let round = 1; round <= ROUNDS; round++) {
    it(
      `lets exactly one of two \`migrate-mongo up\` migrate (round ${round} of ${ROUNDS}, a fresh database)`,
      { timeout: 120_000 },
      async () => {
        const loser = await race(freshName(`migrate_race_${round}`), (env) => migrateMongo(['up'], env));
        expect(loser.stderr).toMatch(RAW_LOCK_MESSAGE);
      },
    );
  }

  it('has `npm run migrate:up` say in words that another run holds the lock', { timeout: 120_000 }, async () => {
    const dbName = freshName('migrate_race_npm');
    const loser = await race(dbName, (env) => npmRun('migrate:up', [], env));
    expect(loser.code).toBe(1);
    expect(loser.stderr).toContain(
      `storekeeper migrate:up: another migration run holds the lock (a document in ${lockCollectionName}, database ${dbName}), so this run changed nothing.`,
    );
    expect(loser.stderr).toContain(`MongoDB removes its lock ${LOCK_TTL_SECONDS} s (lockTtl) after it was taken`);
    expect(loser.stderr).toContain('npm run migrate:unlock -- --force');
    expect(loser.stderr).toMatch(RAW_LOCK_MESSAGE);
    expect(loser.stderr).not.toMatch(/^\s+at /m);
  });

  it('refuses migrate-mongo’s lock insert while another lock exists, even when its check saw none', async () => {
    // The window the process race may or may not hit: both runs check, find no lock, and insert.
    // Here the check is made blind, and the other run's lock is already in place.
    const db = client.db(freshName('migrate_blind_check'));
    await prepareBookkeeping(db);
    const lock = db.collection(lockCollectionName);
    await lock.insertOne({ createdAt: new Date() });
    const unawaited: Promise<unknown>[] = [];
    const blind = new Proxy(db, {
      get(target, property) {
        if (property !== 'collection') return bound(target, property);
        return (name: string) => {
          const collection = target.collection(name);
          if (name !== lockCollectionName) return collection;
          return new Proxy(collection, {
            get: (inner, key) => {
              if (key === 'find') return () => ({ toArray: async () => [] });
              // migrate-mongo starts this index build without awaiting it; kept, so the test can
              // let it finish before the client closes under it.
              if (key === 'createIndex') {
                const createIndex = bound(inner, key) as (...args: unknown[]) => Promise<string>;
                return (...args: unknown[]) => {
                  const build = createIndex(...args);
                  unawaited.push(build);
                  return build;
                };
              }
              return bound(inner, key);
            },
          });
        };
      },
    });

    migrateMongoConfig.set({ ...CLI_MIGRATION_SETTINGS });
    await expect(up(blind, client)).rejects.toThrow(
      /Could not create a lock: E11000 duplicate key error .* index: single_lock/,
    );
    expect(unawaited.length).toBeGreaterThan(0);
    await Promise.all(unawaited);
    expect(await lock.countDocuments()).toBe(1);
    expect(await db.collection(changelogCollectionName).countDocuments()).toBe(0);
    expect(await db.listCollections({ name: ENTITIES[0].collection }).toArray()).toEqual([]);
  });
});

function bound(target: object, property: string | symbol): unknown {
  const value: unknown = Reflect.get(target, property, target);
  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
}
