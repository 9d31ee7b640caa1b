// The ops side: migrate-mongo's own command line with migrate-mongo-config.js, which must agree
// with the settings src/data/migrations.ts uses, so both read and write one changelog.

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { LOCK_TTL_SECONDS, MIGRATION_SETTINGS } from '../../src/data/migrations.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { ROOT } from '../helpers/process.ts';

const FIRST = '20261125000000-create-collections.js';
const BIN = resolve(ROOT, 'node_modules/migrate-mongo/bin/migrate-mongo.js');

function migrateMongo(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('migrate-mongo command line', () => {
  const migrated = testDatabaseName('migrate_cli');
  const pending = testDatabaseName('migrate_cli_pending');

  beforeAll(() => migrateDatabase(migrated));
  afterAll(async () => {
    await dropDatabase(migrated);
    await dropDatabase(pending);
  });

  it('uses the settings of the programmatic runner', async () => {
    const { default: file } = (await import(pathToFileURL(resolve(ROOT, 'migrate-mongo-config.js')).href)) as {
      default: Record<string, unknown> & { migrationsDir: string };
    };
    const { mongodb: _mongodb, ...settings } = file;
    expect({ ...settings, migrationsDir: resolve(ROOT, file.migrationsDir) }).toEqual({
      ...MIGRATION_SETTINGS,
      migrationsDir: resolve(MIGRATION_SETTINGS.migrationsDir),
      // The runner takes the lock itself, in the same collection with the same expiry.
      lockTtl: LOCK_TTL_SECONDS,
    });
  });

  it('says to set MONGODB_URI when it is not set', async () => {
    const result = await migrateMongo(['status'], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('MONGODB_URI is not set');
  });

  it('reads the changelog the programmatic runner wrote, and finds nothing to do', async () => {
    const env = { MONGODB_URI: inject('mongoUri'), MONGODB_DB: migrated };
    const status = await migrateMongo(['status'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(FIRST);
    expect(status.stdout).not.toContain('PENDING');

    const up = await migrateMongo(['up'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).not.toContain('MIGRATED UP');
  });

  it('lists the migration as pending on a database never migrated', async () => {
    // status only reads: nothing is created in this database.
    const status = await migrateMongo(['status'], { MONGODB_URI: inject('mongoUri'), MONGODB_DB: pending });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`${FIRST.replace(/\./g, '\\.')}\\s*│\\s*PENDING`));
  });
});
