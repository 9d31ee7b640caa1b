// migrate-mongo's configuration for its own command line (`npx migrate-mongo …`, `npm run
// migrate:*`), built from the service's: the database is the one `npm start` would use, the
// settings are the programmatic runner's with migrate-mongo's lock on. migrate-mongo-config.js,
// the file migrate-mongo loads, only calls migrateMongoConfig.

import type { MigrateMongoConfig } from 'migrate-mongo';
import { LOCK_TTL_SECONDS, MIGRATION_SETTINGS, prepareBookkeeping } from '../data/migrations.ts';
import { redactSecrets } from '../logger.ts';
import { openCliDatabase, withCliClient, type CliDatabase } from './database-connection.ts';
import { errorMessage } from '../errors.ts';

export interface MigrateConfigOptions {
  /** migrate-mongo's arguments (process.argv without node and the script): they name the command. */
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  log?: (message: string) => void;
}

/** The command line's settings: the runner's, with migrate-mongo's own lock in the same collection. */
export const CLI_MIGRATION_SETTINGS = {
  ...MIGRATION_SETTINGS,
  lockTtl: LOCK_TTL_SECONDS,
} as const satisfies MigrateMongoConfig;

const COMMANDS = ['init', 'create', 'up', 'down', 'status'];
const CONNECTING_COMMANDS = new Set(['up', 'down', 'status']);
const UNAUTHORIZED = 13;

/**
 * migrate-mongo's configuration object. For the commands that connect (up, down, status) it
 * resolves the database like every ops command (src/cli/database-connection.ts: MONGODB_URI, or
 * the embedded database, started for the command when nothing runs it) and prepares the
 * changelog and lock collections; `create` touches no database at all, so a migration can be
 * written anywhere. Throws ConfigError for a bad environment.
 */
export async function migrateMongoConfig(options: MigrateConfigOptions): Promise<MigrateMongoConfig> {
  const command = options.argv.find((arg) => COMMANDS.includes(arg));
  if (command === undefined || !CONNECTING_COMMANDS.has(command)) return { ...CLI_MIGRATION_SETTINGS };

  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const database = await openCliDatabase({ env: options.env ?? process.env, log });
  if (database.started) stopBeforeExit(database, log);
  try {
    await prepare(database, command, log);
  } catch (error) {
    await database.stop().catch(() => {});
    throw error;
  }

  const { serverSelectionTimeoutMS, connectTimeoutMS } = database.config.mongo;
  return {
    ...CLI_MIGRATION_SETTINGS,
    mongodb: {
      url: database.uri,
      databaseName: database.dbName,
      // No socketTimeoutMS: a migration's index build can keep a socket silent far longer than
      // the service's requests may.
      options: {
        appName: 'storekeeper-migrate',
        writeConcern: { w: 'majority' },
        serverSelectionTimeoutMS,
        connectTimeoutMS,
      },
    },
  };
}

/**
 * The runner's own preparation (src/data/migrations.ts): the bookkeeping collections created
 * one at a time, and the unique index that makes migrate-mongo's lock exclusive. Without it,
 * two runs can both find no lock and both insert one (migrate-mongo checks, then inserts).
 */
async function prepare(database: CliDatabase, command: string, log: (message: string) => void): Promise<void> {
  try {
    await withCliClient(database, (db) => prepareBookkeeping(db));
  } catch (error) {
    // status only reads, so a role that may not create collections or indexes can still run it.
    if (command !== 'status' || (error as { code?: unknown }).code !== UNAUTHORIZED) throw error;
    log(
      `not allowed to prepare the migration bookkeeping, showing the status anyway: ` +
        redactSecrets((error as Error).message),
    );
  }
}

/**
 * migrate-mongo ends every command with process.exit, which would leave a mongod started for
 * the command running on its own until mongodb-memory-server's watchdog notices the parent is
 * gone (a check every 2 s, then a kill rather than a shutdown). So process.exit first stops the
 * mongod, and so does an interrupt; the exit code stays the one asked for.
 */
function stopBeforeExit(database: CliDatabase, log: (message: string) => void): void {
  const exit = process.exit.bind(process);
  let exiting = false;
  const stopThenExit = (code: number | string | null | undefined) => {
    if (exiting) return;
    exiting = true;
    if (code !== undefined && code !== null) process.exitCode = code;
    database
      .stop()
      .then(
        () => log('embedded database stopped'),
        (error: unknown) => log(`stopping the embedded database failed: ${errorMessage(error)}`),
      )
      .finally(() => exit());
  };
  process.exit = ((code?: number | string | null) => stopThenExit(code)) as typeof process.exit;
  process.once('SIGINT', () => stopThenExit(130));
  process.once('SIGTERM', () => stopThenExit(143));
}
