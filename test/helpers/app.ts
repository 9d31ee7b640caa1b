// Builds the real app for a test file: the production factory, pointed at the run's replica set
// and at a database of the file's own, with logs captured as parsed JSON lines.

import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, inject } from 'vitest';
import mongoose from 'mongoose';
import type { InjectOptions } from 'fastify';
import { buildApp, type App } from '../../src/app.ts';
import { ApiKeyStore } from '../../src/data/api-keys.ts';
import { POSITIONS_COLLECTION } from '../../src/data/audit-stream.ts';
import { RATE_USAGE_COLLECTION } from '../../src/data/rate-usage.ts';
import { loadConfig } from '../../src/config.ts';
import { MIGRATIONS_DIR, migrateUp } from '../../src/data/migrations.ts';
import { createLogger } from '../../src/logger.ts';

export type LogLine = Record<string, unknown> & { level: number; msg?: string };

/** A log destination that keeps every line, parsed. */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as LogLine);
    }
    done();
  }

  text(): string {
    return this.raw.join('\n');
  }
}

/** A fresh database name, unique per call: test files never share data. */
/** The databases this test file named: dropped once its tests are done (test/setup/drop-databases.ts). */
const named = new Set<string>();

export function testDatabaseName(label: string): string {
  const name = `t_${label.replace(/[^A-Za-z0-9]/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  named.add(name);
  return name;
}

/** Drops every database this test file named that is still there. */
export async function dropNamedDatabases(): Promise<void> {
  if (named.size === 0) return;
  const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  try {
    for (const name of named) await client.db(name).dropDatabase();
    named.clear();
  } finally {
    await client.close();
  }
}

export interface TestApp {
  app: App;
  logs: LogCapture;
  dbName: string;
  /** A key holding every scope, with no rate limit: what app.inject sends unless told otherwise. */
  key: string;
  /** Creates another key in the test database. */
  createKey(
    scopes: string[],
    options?: { name?: string; rateLimitPerMinute?: number; expiresAt?: Date },
  ): Promise<{ id: string; key: string }>;
}

/** The env the test app is configured from; overrides replace or add variables. */
export function testEnv(dbName: string, overrides: Record<string, string> = {}): Record<string, string> {
  return { MONGODB_URI: inject('mongoUri'), MONGODB_DB: dbName, LOG_LEVEL: 'info', LOG_FORMAT: 'json', ...overrides };
}

/** The real app on a fresh, migrated database of its own, and a key with every scope. */
export async function buildTestApp(label: string, overrides: Record<string, string> = {}): Promise<TestApp> {
  const dbName = testDatabaseName(label);
  // The app creates no collections or indexes itself (migrations own them): every test database
  // starts as a migrated production database would.
  await migrateDatabase(dbName);
  const { key } = await createTestKey(dbName, ['*'], { name: 'test-admin', rateLimitPerMinute: 0 });
  return buildAppOn(dbName, key, overrides);
}

/** Another instance of the app on an existing test database, sending `key` by default. */
export async function buildAppOn(
  dbName: string,
  key: string,
  overrides: Record<string, string> = {},
): Promise<TestApp> {
  const config = loadConfig(testEnv(dbName, overrides));
  const logs = new LogCapture();
  const app = await buildApp({
    config: { ...config, mongo: { ...config.mongo, uri: config.mongo.uri! } },
    logger: createLogger(config.log, logs),
  });
  return {
    app: sendingKey(app, key),
    logs,
    dbName,
    key,
    createKey: (scopes, options) => createTestKey(dbName, scopes, options),
  };
}

/** Creates an API key in a test database through a short-lived client of its own. */
export async function createTestKey(
  dbName: string,
  scopes: string[],
  options: { name?: string; rateLimitPerMinute?: number; expiresAt?: Date } = {},
): Promise<{ id: string; key: string }> {
  const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  try {
    const created = await ApiKeyStore.of(client.db(dbName)).create({
      name: options.name ?? 'test',
      scopes,
      ...options,
    });
    return { id: created.id, key: created.key };
  } finally {
    await client.close();
  }
}

type InjectArgument = string | InjectOptions;

/**
 * Makes app.inject send `Authorization: Bearer <key>` unless the request names its own
 * authorization (or X-API-Key) header; a header given as undefined is left out, so
 * `{ authorization: undefined }` sends no key at all.
 */
function sendingKey(app: App, key: string): App {
  const inject = app.inject.bind<(options?: InjectArgument) => ReturnType<App['inject']>>(app);
  const withKey = (options?: InjectArgument) => {
    if (options === undefined) return inject();
    const given = typeof options === 'string' ? { url: options } : options;
    const headers: Record<string, unknown> = { ...(given.headers as Record<string, unknown> | undefined) };
    const named = Object.keys(headers).map((name) => name.toLowerCase());
    if (!named.includes('authorization') && !named.includes('x-api-key')) headers.authorization = `Bearer ${key}`;
    const sent = Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== undefined));
    return inject({ ...given, headers: sent } as InjectArgument);
  };
  Object.defineProperty(app, 'inject', { value: withKey, configurable: true, writable: true });
  return app;
}

/** The file names of migrations/, in the order they apply. */
export const MIGRATION_FILES = readdirSync(MIGRATIONS_DIR)
  .filter((file) => file.endsWith('.js'))
  .sort();

/** Applies every migration to a test database through a short-lived client of its own. */
export async function migrateDatabase(dbName: string): Promise<void> {
  const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  try {
    await migrateUp(client.db(dbName), client);
  } finally {
    await client.close();
  }
}

/** Waits until the app's MongoDB connection is up, so a test starts from a known state. */
export async function waitForDatabase(app: App, timeoutMs = 30_000): Promise<void> {
  await waitFor(() => app.db.state === 'connected', timeoutMs, 'MongoDB connection');
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Drops the test database through a short-lived client of its own. */
export async function dropDatabase(dbName: string): Promise<void> {
  const client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  try {
    await client.db(dbName).dropDatabase();
  } finally {
    await client.close();
  }
}

/**
 * A migrated database of the calling file's own, for a describe block that works on it with the
 * driver directly: migrated before its tests, dropped after them.
 */
export function useMigratedDatabase(label: string): { readonly name: string; readonly db: mongoose.mongo.Db } {
  const name = testDatabaseName(label);
  let client: mongoose.mongo.MongoClient | undefined;
  beforeAll(async () => {
    await migrateDatabase(name);
    client = await new mongoose.mongo.MongoClient(inject('mongoUri')).connect();
  });
  afterAll(async () => {
    await client?.close();
    await dropDatabase(name);
  });
  return {
    name,
    get db() {
      if (client === undefined) throw new Error('the migrated database is ready only inside tests');
      return client.db(name);
    },
  };
}

/**
 * Every collection of an app's database, sorted by _id, as canonical EJSON: to show a request
 * changed nothing, byte for byte. The audit trail is settled first (the entries of atomic writes
 * arrive through the change stream); the stream's own position is left out, as it moves whenever
 * the trail is settled, and so are the rate-limit counts the instances share, which every request
 * moves.
 */
export async function dumpDatabase(app: App): Promise<Map<string, string>> {
  await app.stores.audit.settled();
  const db = app.db.connection.db;
  if (db === undefined) throw new Error('the app is not connected');
  const names = (await db.listCollections({}, { nameOnly: true }).toArray())
    .map((c) => c.name)
    .filter((name) => !name.startsWith('system.') && name !== POSITIONS_COLLECTION && name !== RATE_USAGE_COLLECTION)
    .sort();
  const dumped = new Map<string, string>();
  for (const name of names)
    dumped.set(
      name,
      mongoose.mongo.BSON.EJSON.stringify(await db.collection(name).find().sort({ _id: 1 }).toArray(), {
        relaxed: false,
      }),
    );
  return dumped;
}
