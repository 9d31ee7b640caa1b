// `npm run import -- --collection products|customers|stock|orders --file F ...`: brings existing
// data in from a file (NDJSON, a JSON array, CSV with a mapping), validated as the API validates
// a create, decided by natural key, written through the shop after a backup, resumable from its
// checkpoint, and reconciled in a report. The work is src/import/ (src/import/run.ts).

import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { loadConfig } from '../config.ts';
import { CliError } from './database-connection.ts';
import { UsageError, databaseOption, parseCommandLine, runCommand, withDatabase } from './backup-command.ts';
import type { Progress } from '../backup/progress.ts';
import { COLLECTIONS, type CollectionName } from '../import/collections.ts';
import { FORMATS, formatOf, type Format } from '../import/formats.ts';
import { JsonArrayError } from '../import/json-array.ts';
import { loadMapping, MappingError } from '../import/mapping.ts';
import { reportText } from '../import/report.ts';
import {
  DEFAULT_BATCH_SIZE,
  ImportRefused,
  MAX_BATCH_SIZE,
  ON_CONFLICT,
  runImport,
  type ImportOptions,
  type OnConflict,
} from '../import/run.ts';

const USAGE = `usage: npm run import -- --collection ${COLLECTIONS.join('|')} --file F [options]
  --format ${FORMATS.join('|')}   default: from the file's extension (.ndjson/.jsonl, .json, .csv)
  --mapping M.json         source column -> field and type (string, number, integer, boolean, date, json,
                           list); CSV without one: column names are fields and every cell is text
  --dry-run                read, check and decide everything, write nothing to the database; say what
                           would be inserted, updated, unchanged, skipped, rejected
  --on-conflict skip|update|fail
                           a record whose natural key exists with other content: leave the stored
                           document as it is (skip, the default), replace it (update), or write nothing
                           at all (fail, checked over the whole file first)
  --no-backup              do not back up the database before writing (default: a backup next to F)
  --batch-size N           records per transaction, 1-${MAX_BATCH_SIZE} (default ${DEFAULT_BATCH_SIZE})
  --rejects R              where invalid records go, NDJSON (default F.rejects.ndjson)
  --report P               also write the reconciliation report as JSON to P
  --resume | --restart     go on from an import of F that stopped midway, or start it again
  --db NAME                database (default MONGODB_DB, storekeeper)
Natural keys: products by sku, customers by email (without case), stock by sku + warehouse, orders by
externalNumber (the customer named by customerEmail). Import products, customers and stock before orders.
The database is MONGODB_URI's, or the embedded one (DATA_DIR, EMBEDDED_MONGODB_PORT).
Progress goes to stderr (a bar on a terminal, JSON lines otherwise), the report to stdout.
Exit 0 done (rejects included), 1 refused or failed (nothing more written), 2 usage.`;

const oneOf = <T extends string>(name: string, value: unknown, allowed: readonly T[]): T => {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
};

async function main(args: string[], progress: Progress): Promise<boolean> {
  const parsed = parseCommandLine(args, {
    collection: { type: 'string' },
    file: { type: 'string' },
    format: { type: 'string' },
    mapping: { type: 'string' },
    'dry-run': { type: 'boolean' },
    'on-conflict': { type: 'string' },
    'no-backup': { type: 'boolean' },
    'batch-size': { type: 'string' },
    rejects: { type: 'string' },
    report: { type: 'string' },
    resume: { type: 'boolean' },
    restart: { type: 'boolean' },
    db: { type: 'string' },
  });
  if (parsed === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return true;
  }
  const { values } = parsed;
  const collection = oneOf<CollectionName>('collection', values.collection, COLLECTIONS);
  if (typeof values.file !== 'string' || values.file === '') throw new UsageError('--file F is required');
  const file = resolve(values.file);
  const format =
    values.format === undefined
      ? (formatOf(file) ??
        (() => {
          throw new UsageError(`cannot tell the format of ${file} from its name: give --format ${FORMATS.join('|')}`);
        })())
      : oneOf<Format>('format', values.format, FORMATS);
  const onConflict =
    values['on-conflict'] === undefined ? 'skip' : oneOf<OnConflict>('on-conflict', values['on-conflict'], ON_CONFLICT);
  const batchText = values['batch-size'] ?? String(DEFAULT_BATCH_SIZE);
  if (typeof batchText !== 'string' || !/^[1-9][0-9]*$/.test(batchText) || Number(batchText) > MAX_BATCH_SIZE)
    throw new UsageError(
      `--batch-size must be a whole number from 1 to ${MAX_BATCH_SIZE}, got ${JSON.stringify(batchText)}`,
    );
  if (values.resume === true && values.restart === true)
    throw new UsageError('--resume and --restart exclude each other');
  if (values['dry-run'] === true && (values.resume === true || values.restart === true))
    throw new UsageError('a dry run writes nothing, so it neither resumes nor restarts');
  const dbName = databaseOption(values.db);
  const reportFile = typeof values.report === 'string' ? resolve(values.report) : undefined;

  try {
    const mapping = typeof values.mapping === 'string' ? await loadMapping(resolve(values.mapping)) : undefined;
    const options: ImportOptions = {
      collection,
      file,
      format,
      mapping,
      dryRun: values['dry-run'] === true,
      onConflict,
      backup: values['no-backup'] !== true,
      batchSize: Number(batchText),
      rejects: typeof values.rejects === 'string' ? resolve(values.rejects) : `${file}.rejects.ndjson`,
      checkpoint: values.resume === true ? 'resume' : values.restart === true ? 'restart' : 'new',
      progress,
    };
    const config = loadConfig(dbName === undefined ? process.env : { ...process.env, MONGODB_DB: dbName });
    // The unit of work's own warnings (retried transactions) as JSON lines on stderr, never records.
    const log = pino({ level: 'warn' }, process.stderr);
    const report = await withDatabase(dbName, progress, (_db, client, info) =>
      runImport(client, info.dbName, config, log, options),
    );
    process.stdout.write(reportText(report));
    if (reportFile !== undefined) await writeFile(reportFile, `${JSON.stringify(report, null, 2)}\n`);
    return true;
  } catch (error) {
    // Refusals say what to do; they are printed as they are.
    if (error instanceof ImportRefused || error instanceof MappingError || error instanceof JsonArrayError)
      throw new CliError(error.message, { cause: error });
    throw error;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCommand('import', USAGE, (progress) => main(process.argv.slice(2), progress));
}
