// Runs the migrations of migrations/ from code, through migrate-mongo's own API, and holds the
// settings migrate-mongo-config.js builds on, so the service, the tests and the ops commands share
// one changelog and one lock collection.

import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { config, status, up, type MigrateMongoConfig } from 'migrate-mongo';
import mongoose, { type mongo } from 'mongoose';

/** Absolute, so it resolves the same from src/ (tsx, tests) and dist/ (the built service). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Seconds before the TTL index drops a lock left by a crashed run; the command line's `lockTtl` too. */
export const LOCK_TTL_SECONDS = 3600;

/**
 * migrate-mongo's settings; the command line's (src/cli/migrate-config.ts) are these with its own
 * lock on (`lockTtl: LOCK_TTL_SECONDS`). Off here (`lockTtl: 0`) because migrateUp takes the lock
 * itself (see withLock).
 */
export const MIGRATION_SETTINGS = {
  migrationsDir: MIGRATIONS_DIR,
  changelogCollectionName: 'migrations_changelog',
  lockCollectionName: 'migrations_lock',
  lockTtl: 0,
  migrationFileExtension: '.js',
  useFileHash: false,
  moduleSystem: 'esm',
} as const satisfies MigrateMongoConfig;

const NAMESPACE_EXISTS = 48;
const DUPLICATE_KEY = 11000;

export interface MigrationStatus {
  fileName: string;
  appliedAt: Date | 'PENDING';
}

/** Applies every pending migration, oldest first; returns the file names applied. */
export async function migrateUp(db: mongo.Db, client: mongo.MongoClient): Promise<string[]> {
  configure();
  await prepareBookkeeping(db);
  return withLock(db, () => up(db, client));
}

export async function migrationStatus(db: mongo.Db): Promise<MigrationStatus[]> {
  configure();
  const items = await status(db);
  // migrate-mongo 14 reports the date as its JSON string.
  return items.map(({ fileName, appliedAt }) => ({
    fileName,
    appliedAt: appliedAt === 'PENDING' ? 'PENDING' : new Date(appliedAt),
  }));
}

/** File names of the migrations not yet applied, oldest first. */
export async function pendingMigrations(db: mongo.Db): Promise<string[]> {
  return (await migrationStatus(db)).filter((item) => item.appliedAt === 'PENDING').map((item) => item.fileName);
}

/** A migration file: migrate-mongo's up and down, and whatever else it exports. */
export interface MigrationModule {
  up(db: mongo.Db, client: mongo.MongoClient): Promise<void>;
  down(db: mongo.Db, client: mongo.MongoClient): Promise<void>;
  [name: string]: unknown;
}

/**
 * One file of migrations/, to run its steps outside the changelog: the tests and benchmarks bring a
 * database to the state of a given migration with it, and call what a migration exports besides.
 */
export async function loadMigration(fileName: string): Promise<MigrationModule> {
  return (await import(pathToFileURL(join(MIGRATIONS_DIR, fileName)).href)) as MigrationModule;
}

/** The error migrateUp throws while another run holds the lock. */
export class MigrationLockedError extends Error {
  override readonly name = 'MigrationLockedError';
}

function configure(): void {
  // migrate-mongo keeps its configuration in a module-level variable: set it on every call, so a
  // caller that changed it in between cannot leave it stale.
  config.set({ ...MIGRATION_SETTINGS });
}

/**
 * Creates the changelog and lock collections one at a time, before anything writes to them:
 * concurrent implicit creations of one collection are more than some mongod builds survive.
 * The lock's indexes: the TTL index is the one migrate-mongo's command line builds (same key and
 * expiry, so its unawaited build there is a no-op), and a unique index on a field no lock
 * document has, which allows one lock document at most. The command line runs this too before
 * migrate-mongo does (src/cli/migrate-config.ts), which turns migrate-mongo's check-then-insert
 * lock into an exclusive one: the insert of a second run fails with a duplicate key.
 */
export async function prepareBookkeeping(db: mongo.Db): Promise<void> {
  const { changelogCollectionName, lockCollectionName } = MIGRATION_SETTINGS;
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  for (const name of [changelogCollectionName, lockCollectionName]) {
    if (existing.has(name)) continue;
    // Another process may have created it since the listing: that is as good.
    await db.createCollection(name).catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== NAMESPACE_EXISTS) throw error;
    });
  }
  const lock = db.collection(lockCollectionName);
  await lock.createIndex({ createdAt: 1 }, { expireAfterSeconds: LOCK_TTL_SECONDS }, {});
  await lock.createIndex({ singleLock: 1 }, { name: 'single_lock', unique: true }, {});
}

/**
 * migrate-mongo's lock checks for a lock document and then inserts one, two steps another run can
 * slip between, and it starts an index build it never awaits, which can outlive the call (and
 * fail when the client closes). Here taking the lock is the insert itself, refused by the unique
 * index while any lock exists, including one taken by the command line.
 */
async function withLock<T>(db: mongo.Db, run: () => Promise<T>): Promise<T> {
  const lock = db.collection<{ createdAt: Date }>(MIGRATION_SETTINGS.lockCollectionName);
  let taken: mongo.InsertOneResult<{ createdAt: Date }>;
  try {
    taken = await lock.insertOne({ createdAt: new Date() });
  } catch (error) {
    if ((error as { code?: unknown }).code !== DUPLICATE_KEY) throw error;
    throw new MigrationLockedError(
      `Could not migrate up, a lock is in place: another migration is running, or one crashed and its lock expires ` +
        `${LOCK_TTL_SECONDS} s after it was taken (delete it from ${MIGRATION_SETTINGS.lockCollectionName} to ` +
        `retry sooner).`,
      { cause: error },
    );
  }
  try {
    return await run();
  } finally {
    await lock.deleteOne({ _id: taken.insertedId });
  }
}

export type StartMode = 'apply' | 'require' | 'check';

/** How long a starting instance waits for another instance's migration run to finish. */
const LOCK_WAIT_MS = 120_000;

/**
 * What the service does about pending migrations before it serves: apply them (waiting while
 * another instance holds the lock), refuse to start, or only report them (readiness does).
 */
export async function prepareSchemaAtStart(
  uri: string,
  dbName: string,
  mode: StartMode,
  log: { info(message: string): void; warn(message: string): void },
): Promise<void> {
  if (mode === 'check') return;
  const client = await new mongoose.mongo.MongoClient(uri, {
    appName: 'storekeeper-migrate',
    writeConcern: { w: 'majority' },
  }).connect();
  try {
    const db = client.db(dbName);
    if (mode === 'require') {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new Error(
          `migrations pending: ${pending.join(', ')}; apply them with \`npm run migrate:up\` ` +
            `(MIGRATIONS_ON_START=require)`,
        );
      }
      return;
    }
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const applied = await migrateUp(db, client);
        log.info(applied.length > 0 ? `applied migrations: ${applied.join(', ')}` : 'migrations are up to date');
        return;
      } catch (error) {
        if (!(error instanceof MigrationLockedError) || Date.now() > deadline) throw error;
        log.warn('another run holds the migration lock; waiting for it');
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  } finally {
    await client.close();
  }
}
