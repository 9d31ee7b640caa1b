// `npm run restore -- --from DIR [--db NAME] [--replace]`: restores a backup into an empty
// database (or, with --replace, in place of an existing one), all or nothing: the backup is
// verified before anything is touched, and built and checked in a staging database before it
// moves under the target name (src/backup/restore.ts).

import { pathToFileURL } from 'node:url';
import { UsageError, databaseOption, parseCommandLine, runCommand, withDatabase } from './backup-command.ts';
import type { Progress } from '../backup/progress.ts';
import { restoreDatabase } from '../backup/restore.ts';

const USAGE = `usage: npm run restore -- --from DIR [--db NAME] [--replace]
  --from DIR   the backup directory (made by npm run backup)
  --db NAME    database to restore into (default MONGODB_DB, storekeeper); it must be empty...
  --replace    ...unless this is given: its collections are then replaced by the backup's
The database is MONGODB_URI's, or the embedded one (DATA_DIR, EMBEDDED_MONGODB_PORT). Stop the
service (or point it elsewhere) while replacing the database it uses.
Progress goes to stderr: sentences on a terminal, JSON lines otherwise. Exit 0 done, 1 failed, 2 usage.`;

async function main(args: string[], progress: Progress): Promise<boolean> {
  const parsed = parseCommandLine(args, {
    from: { type: 'string' },
    db: { type: 'string' },
    replace: { type: 'boolean' },
  });
  if (parsed === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return true;
  }
  const { from, db, replace } = parsed.values;
  if (typeof from !== 'string' || from === '') throw new UsageError('--from DIR is required');
  await withDatabase(databaseOption(db), progress, (database, client) =>
    restoreDatabase(client, database.databaseName, { from, replace: replace === true, progress }),
  );
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCommand('restore', USAGE, (progress) => main(process.argv.slice(2), progress));
}
