// Builds the real app for a test file: the production factory, pointed at the run's replica set
// and at a database of the file's own, with logs captured as parsed JSON lines.

import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, inject } from 'vitest';
import mongoose from 'mongoose';
import { buildApp, type App } from '../../src/app.ts';
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
export function testDatabaseName(label: string): string {
  return `t_${label.replace(/[^A-Za-z0-9]/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`;
}

export interface TestApp {
  app: App;
  logs: LogCapture;
  dbName: string;
}

/** The env the test app is configured from; overrides replace or add variables. */
export function testEnv(dbName: string, overrides: Record<string, string> = {}): Record<string, string> {
  return { MONGODB_URI: inject('mongoUri'), MONGODB_DB: dbName, LOG_LEVEL: 'info', LOG_FORMAT: 'json', ...overrides };
}

export async function buildTestApp(label: string, overrides: Record<string, string> = {}): Promise<TestApp> {
  const dbName = testDatabaseName(label);
  // The app creates no collections or indexes itself (migrations own them): every test database
  // starts as a migrated production database would.
  await migrateDatabase(dbName);
  const config = loadConfig(testEnv(dbName, overrides));
  const logs = new LogCapture();
  const app = await buildApp({
    config: { ...config, mongo: { ...config.mongo, uri: config.mongo.uri! } },
    logger: createLogger(config.log, logs),
  });
  return { app, logs, dbName };
}

/** The file names of migrations/, in the order they apply. */
export const MIGRATION_FILES = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith('.js')).sort();

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
