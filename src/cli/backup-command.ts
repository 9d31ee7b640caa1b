// What the backup commands (npm run backup, restore, backup:verify) share: argument parsing with
// usage errors (exit 2), the progress reporter on stderr (sentences on a terminal, JSON lines
// otherwise), the database connection of every ops command, and one way to fail (exit 1).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config.ts';
import { redactSecrets } from '../logger.ts';
import {
  CliError,
  exitWithFailure,
  withCliDatabase,
  type Db,
  type MongoClient,
  type CliDatabaseInfo,
} from './database-connection.ts';
import { BackupError } from '../backup/dump.ts';
import { progressReporter, type Progress } from '../backup/progress.ts';
import { RestoreError } from '../backup/restore.ts';
import { BackupInvalidError } from '../backup/verify.ts';
import { errorMessage } from '../errors.ts';

export const EXIT_USAGE = 2;

/** Wrong arguments: the command prints why and its usage, and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CommandLine {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** node:util's parseArgs (strict), its errors turned into usage errors; undefined when --help was asked. */
export function parseCommandLine(
  args: string[],
  options: NonNullable<ParseArgsConfig['options']>,
  allowPositionals = false,
): CommandLine | undefined {
  let parsed: CommandLine;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(errorMessage(error));
  }
  if (parsed.values.help === true) return undefined;
  return parsed;
}

/**
 * Runs a command's main function with a progress reporter on stderr, and exits: 0 when it
 * returned true, 1 when it returned false or failed, 2 on a usage error (with the usage printed).
 */
export function runCommand(command: string, usage: string, main: (progress: Progress) => Promise<boolean>): void {
  const progress = progressReporter(process.stderr);
  main(progress).then(
    (ok) => process.exit(ok ? 0 : 1),
    (error: unknown) => {
      if (error instanceof UsageError) {
        process.stderr.write(`storekeeper ${command}: ${error.message}\n${usage}\n`);
        process.exit(EXIT_USAGE);
      }
      fail(command, progress, error);
    },
  );
}

/**
 * Reports a failure as the command's last event and exits 1. A failure the command expected says
 * what to do in its message and is printed as it is; anything else is prefixed "failed:".
 * Connection strings lose their passwords either way.
 */
function fail(command: string, progress: Progress, error: unknown): never {
  // A bad environment names every variable at fault, as every command of the service does.
  if (error instanceof ConfigError) exitWithFailure(command, error);
  const expected = [BackupError, RestoreError, BackupInvalidError, CliError].some((type) => error instanceof type);
  const text = redactSecrets(errorMessage(error));
  progress({
    event: 'failed',
    message: `storekeeper ${command}: ${expected ? text : `failed: ${text}`}`,
    error: text,
    ...(error instanceof BackupInvalidError && { problems: error.report.problems }),
  });
  process.exit(1);
}

/** The value of --db: a database name as MONGODB_DB takes it, or undefined for MONGODB_DB's. */
export function databaseOption(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,63}$/.test(value)) {
    throw new UsageError(
      `--db must be a database name of 1-63 letters, digits, "_" or "-", got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * withCliDatabase (MONGODB_URI, or the embedded database) on the database named by --db when
 * given, MONGODB_DB otherwise; its messages become events.
 */
export function withDatabase<T>(
  dbName: string | undefined,
  progress: Progress,
  work: (db: Db, client: MongoClient, info: CliDatabaseInfo) => Promise<T>,
): Promise<T> {
  // Through the environment, so that the name is checked as MONGODB_DB is.
  const env = dbName === undefined ? process.env : { ...process.env, MONGODB_DB: dbName };
  return withCliDatabase(work, {
    env,
    log: (message) => progress({ event: 'database', message: redactSecrets(message) }),
  });
}
