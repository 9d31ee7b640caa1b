// `npm run backup -- --out DIR [--gzip] [--db NAME]`: a consistent backup of the service's
// database, every collection read at one cluster time while the service keeps serving, in
// mongodump's directory layout with a manifest (src/backup/dump.ts).

import { pathToFileURL } from 'node:url';
import { backupDatabase, checkOutput } from '../backup/dump.ts';
import { UsageError, databaseOption, parseCommandLine, runCommand, withDatabase } from './backup-command.ts';
import type { Progress } from '../backup/progress.ts';

const USAGE = `usage: npm run backup -- --out DIR [--gzip] [--db NAME]
  --out DIR    directory to write the backup to: created, or empty (never written over)
  --gzip       compress each file, as mongodump --gzip does (.bson.gz, .metadata.json.gz)
  --db NAME    database to back up (default MONGODB_DB, storekeeper)
The database is MONGODB_URI's, or the embedded one (DATA_DIR, EMBEDDED_MONGODB_PORT).
Progress goes to stderr: sentences on a terminal, JSON lines otherwise. Exit 0 done, 1 failed, 2 usage.`;

async function main(args: string[], progress: Progress): Promise<boolean> {
  const parsed = parseCommandLine(args, { out: { type: 'string' }, gzip: { type: 'boolean' }, db: { type: 'string' } });
  if (parsed === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return true;
  }
  const { out, gzip, db } = parsed.values;
  if (typeof out !== 'string' || out === '') throw new UsageError('--out DIR is required');
  const dbName = databaseOption(db);
  await checkOutput(out);
  await withDatabase(dbName, progress, (database) => backupDatabase(database, { out, gzip: gzip === true, progress }));
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCommand('backup', USAGE, (progress) => main(process.argv.slice(2), progress));
}
