// storekeeper/testing: a real shop for another project's tests, in one call. startShop starts
// MongoDB in memory as a single-node replica set (the embedded database's code path, in a temp
// dir), applies the migrations as production does, builds the app with buildApp from a
// configuration loadConfig reads (over a minimal environment, never the test process's), listens
// on 127.0.0.1 on a free port and creates an API key; reset() puts back what it left, comparing
// each collection with a snapshot taken at start. Free of any test runner: vitest, jest and
// node:test call it alike. Every shop has its own mongod (or database, on a given replica set),
// port, temp dir and key, so shops in one process (parallel test files) never meet.

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import mongoose, { type mongo } from 'mongoose';
import { buildApp, type App } from '../app.ts';
import { loadConfig } from '../config.ts';
import { ApiKeyStore } from '../data/api-keys.ts';
import { AUDIT_COLLECTION } from '../data/audit.ts';
import { IDEMPOTENCY_COLLECTION } from '../data/idempotency.ts';
import { prepareSchemaAtStart } from '../data/migrations.ts';
import { ENTITIES } from '../domain/entities/index.ts';
import { seed as seedDemoData, SEED_DEFAULTS } from '../cli/seed.ts';
import type { DemoOptions } from '../cli/demo-data.ts';
import { createClient, type StorekeeperClient } from '../client/index.ts';
import { createLogger } from '../logger.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../mongod/embedded.ts';
import { checkFixtures, writeFixtures, type Fixtures } from './fixtures.ts';

export {
  FixtureError,
  type CustomerInput,
  type FixtureProblem,
  type Fixtures,
  type OrderFixture,
  type OrderStatus,
  type ProductInput,
  type StockInput,
} from './fixtures.ts';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface StartShopOptions {
  /**
   * The demo data of `npm run seed` (deterministic: the same options, the same documents), written
   * as the seed command writes it. true: its defaults (1,000 products, 200 customers, seed 1).
   */
  seed?: boolean | Partial<DemoOptions>;
  /** Documents to start with, after the demo data; a fixture the declarations refuse fails startShop. */
  fixtures?: Fixtures;
  /** The scopes of the shop's API key (default every scope: `*`). */
  scopes?: string[];
  /**
   * Configuration variables of the service (see .env.example), e.g. `{ CACHE_MAX_MB: '0' }`. Where
   * the shop listens and which database it uses are startShop's own to choose.
   */
  env?: Record<string, string>;
  /** The service's JSON log lines: false (default) none; true: info and up on stderr; or where and from which level. */
  log?: boolean | { level?: LogLevel; destination?: Writable };
  /**
   * A replica set to use instead of starting one (a test runner's global setup may share one
   * across files): the shop gets a database of its own on it, dropped by stop().
   */
  mongodbUri?: string;
}

export interface Shop {
  /** The service's base URL, `http://127.0.0.1:<port>`. */
  url: string;
  /** An API key with the scopes asked for and no rate limit, as `Authorization: Bearer <apiKey>` takes it. */
  apiKey: string;
  /** The typed client (storekeeper/client) on `url` with `apiKey`. */
  client: StorekeeperClient;
  /** The shop's database, for assertions (what the service reads and writes). */
  db: mongo.Db;
  /**
   * Takes the shop's data back to where startShop left it: products, customers, stock, orders
   * and the audit trail hold the seed and fixtures again, as first written (same ids and
   * versions), and no Idempotency-Key records. Collections, validators, indexes, API keys and
   * migrations stay. Afterwards no read serves a document the reset removed.
   */
  reset(): Promise<void>;
  /** Closes the service and its mongod; idempotent. */
  stop(): Promise<void>;
}

/**
 * What a reset empties besides the audit trail: the documents, and the Idempotency-Key records,
 * whose replays would answer with documents the reset removed.
 */
const DATA_COLLECTIONS = [...ENTITIES.map((entity) => entity.collection), IDEMPOTENCY_COLLECTION];

/** Variables the shop sets itself: where it listens and which database it uses. */
const OWN_VARIABLES = ['HOST', 'PORT', 'MONGODB_URI', 'MONGODB_DB'];
const DATABASE = 'storekeeper';
// Under Wine a cold mongod and the streams' first answers take seconds on a busy machine.
const READY_TIMEOUT_MS = 60_000;

export async function startShop(options: StartShopOptions = {}): Promise<Shop> {
  const env = options.env ?? {};
  const taken = OWN_VARIABLES.filter((name) => name in env);
  if (taken.length > 0) throw new Error(`startShop: ${taken.join(', ')} are set by startShop itself, not by env`);
  // Checked before anything starts: a bad fixture costs no mongod.
  const fixtures = checkFixtures(options.fixtures ?? {});
  const seed = options.seed === undefined || options.seed === false ? undefined : seedOptions(options.seed);

  const log = logSettings(options.log);
  const logger = createLogger({ level: log.level, format: 'json' }, log.destination);
  const embedded =
    options.mongodbUri === undefined
      ? await startEmbeddedMongo({
          // The service's own setting for a mongod of one's own (MONGOD_BINARY).
          binary: { systemBinary: process.env.MONGOD_BINARY, log: (message) => logger.info(message) },
          log: (message) => logger.info(message),
        })
      : undefined;
  const uri = embedded?.uri ?? options.mongodbUri ?? '';
  const dbName = embedded === undefined ? `shop_${randomBytes(6).toString('hex')}` : DATABASE;

  let admin: mongo.MongoClient | undefined;
  let app: App | undefined;
  try {
    // As the service applies them at its start (MIGRATIONS_ON_START=apply).
    await prepareSchemaAtStart(uri, dbName, 'apply', {
      info: (message) => logger.info(message),
      warn: (message) => logger.warn(message),
    });
    admin = await new mongoose.mongo.MongoClient(uri, { appName: 'storekeeper-testing' }).connect();
    const db = admin.db(dbName);
    const key = await ApiKeyStore.of(db).create({
      name: 'startShop',
      scopes: options.scopes ?? ['*'],
      rateLimitPerMinute: 0,
    });

    const config = loadConfig({
      LOG_LEVEL: log.level,
      LOG_FORMAT: 'json',
      ...env,
      HOST: '127.0.0.1',
      PORT: '0',
      MONGODB_URI: uri,
      MONGODB_DB: dbName,
    });
    app = await buildApp({ config: { ...config, mongo: { ...config.mongo, uri } }, logger });
    await app.listen({ host: config.http.host, port: config.http.port });
    await untilReady(app);

    const context = {
      actor: { keyId: key.id, keyName: key.name, requestId: 'startShop-fixtures' },
      log: app.log,
    };
    if (seed !== undefined) await seedDemoData(db, seed);
    await writeFixtures(app, fixtures, context);
    const initial = await snapshot(app, db);
    const { port } = app.server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}`;
    const running = app;
    const client = admin;
    let stopping: Promise<void> | undefined;
    return {
      url,
      apiKey: key.key,
      client: createClient({ baseUrl: url, apiKey: key.key }),
      db,
      reset: () => reset(running, db, initial),
      stop: () => (stopping ??= close(running, client, embedded, embedded === undefined ? db : undefined)),
    };
  } catch (error) {
    await close(app, admin, embedded, embedded === undefined ? admin?.db(dbName) : undefined).catch(() => undefined);
    throw error;
  }
}

function seedOptions(seed: true | Partial<DemoOptions>): DemoOptions {
  return { ...SEED_DEFAULTS, ...(seed === true ? {} : seed) };
}

function logSettings(log: StartShopOptions['log']): { level: LogLevel | 'silent'; destination: Writable } {
  if (log === undefined || log === false) return { level: 'silent', destination: process.stderr };
  if (log === true) return { level: 'info', destination: process.stderr };
  return { level: log.level ?? 'info', destination: log.destination ?? process.stderr };
}

/**
 * Ready as a test needs it: MongoDB connected, the audit stream and the change feed running (the
 * feed's routes answer 503 before) and the document cache following the feed.
 */
async function untilReady(app: App): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  const { stores } = app;
  await stores.audit.settled();
  while (!(stores.feed?.running === true && (stores.cache?.live ?? true))) {
    if (performance.now() > deadline) throw new Error('startShop: the change feed did not start in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What startShop left in each collection a reset restores: every document, and its bytes to compare with. */
type Stored = { _id: mongo.ObjectId | string };
type Snapshot = { collection: string; documents: Map<string, { document: Stored; bytes: Buffer }> }[];

const { BSON } = mongoose.mongo;
const keyOf = (id: unknown) => BSON.EJSON.stringify({ id });

async function snapshot(app: App, db: mongo.Db): Promise<Snapshot> {
  // The fixtures' audit entries are part of the state a reset goes back to.
  await app.stores.audit.settled();
  return Promise.all(
    [...DATA_COLLECTIONS, AUDIT_COLLECTION].map(async (collection) => {
      const documents = new Map<string, { document: Stored; bytes: Buffer }>();
      for (const document of await db.collection<Stored>(collection).find().toArray())
        documents.set(keyOf(document._id), { document, bytes: Buffer.from(BSON.serialize(document)) });
      return { collection, documents };
    }),
  );
}

/**
 * Puts back what startShop left, touching only what changed since: in each collection, the
 * documents that differ from the snapshot (or are new) are deleted, and those of the snapshot that
 * are not there as they were are inserted again. Done in place, so each collection keeps its
 * options, validator and indexes; a test that wrote a few documents costs a few writes, whatever
 * the size of the seed.
 */
async function reset(app: App, db: mongo.Db, initial: Snapshot): Promise<void> {
  // The audit entries of writes made so far are stored first, or one could land after the reset.
  await app.stores.audit.settled();
  await Promise.all(
    initial.map(async ({ collection, documents }) => {
      // Ids are ObjectIds, but an Idempotency-Key record's is its scope (a string).
      const target = db.collection<Stored>(collection);
      const changed: (mongo.ObjectId | string)[] = [];
      const kept = new Set<string>();
      for (const current of await target.find().toArray()) {
        const key = keyOf(current._id);
        const original = documents.get(key);
        if (original !== undefined && original.bytes.equals(BSON.serialize(current))) kept.add(key);
        else changed.push(current._id);
      }
      if (changed.length > 0) await target.deleteMany({ _id: { $in: changed } });
      const missing = [...documents].filter(([key]) => !kept.has(key)).map(([, { document }]) => document);
      if (missing.length > 0) await target.insertMany(missing, { ordered: false });
    }),
  );
  // The cache hears of these deletions only through the feed, within its lag: a read right after
  // the reset could still be served a removed document.
  app.stores.cache?.clear();
}

async function close(
  app: App | undefined,
  client: mongo.MongoClient | undefined,
  embedded: EmbeddedMongo | undefined,
  ownDatabase: mongo.Db | undefined,
): Promise<void> {
  await app?.close();
  if (ownDatabase !== undefined) await ownDatabase.dropDatabase().catch(() => undefined);
  await client?.close();
  await embedded?.stop();
}
