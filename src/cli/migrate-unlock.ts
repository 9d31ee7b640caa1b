// `npm run migrate:unlock [-- --force]`: the lock a crashed migration run left behind, shown, and
// removed only when asked to. Runs are exclusive through one lock document (src/data/migrations.ts,
// prepareBookkeeping); MongoDB's TTL monitor removes a crashed run's lock LOCK_TTL_SECONDS after it
// was taken. Until then every run stops on it. Without --force this says what holds the lock and
// since when, and changes nothing; with --force it deletes that lock document, by its _id: a lock a
// new run takes in between is a different document and stays.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { LOCK_TTL_SECONDS, MIGRATION_SETTINGS } from '../data/migrations.ts';
import { CliError, exitWithFailure, withCliDatabase } from './database-connection.ts';

/** What must be true before the lock is removed. */
const NO_RUN_GOING_ON =
  'no migration run is going on anywhere (no migrate:* command, no npx migrate-mongo, no instance starting with ' +
  'MIGRATIONS_ON_START=apply)';

const USAGE = `usage: npm run migrate:unlock [-- --force]
  Shows the migration lock, if one is held, and since when. With --force, removes it: only when
  ${NO_RUN_GOING_ON}. A crashed run's lock also goes by itself ${LOCK_TTL_SECONDS} s after it was taken.
The database is MONGODB_URI's, or the embedded one (DATA_DIR, EMBEDDED_MONGODB_PORT).`;

export interface UnlockCommand {
  force: boolean;
}

export function parseUnlockArguments(args: string[]): UnlockCommand | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { force: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
    });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n${USAGE}`);
  }
  return parsed.values.help === true ? 'help' : { force: parsed.values.force };
}

export async function runUnlock({ force }: UnlockCommand, print: (line: string) => void): Promise<void> {
  return withCliDatabase(async (db, _client, info) => {
    const locks = db.collection<{ _id: unknown; createdAt?: Date }>(MIGRATION_SETTINGS.lockCollectionName);
    const held = await locks.find({}).toArray();
    if (held.length === 0) {
      print(`no migration lock is held (database ${info.dbName}): nothing to remove`);
      return;
    }
    for (const lock of held) {
      const since = lock.createdAt instanceof Date ? lock.createdAt : undefined;
      const age = since === undefined ? 'an unknown time' : `${Math.round((Date.now() - since.getTime()) / 1000)} s`;
      const expires =
        since === undefined
          ? ''
          : `; MongoDB removes it by itself after ${LOCK_TTL_SECONDS} s, at ${new Date(since.getTime() + LOCK_TTL_SECONDS * 1000).toISOString()} or within a minute after`;
      print(
        `migration lock held since ${since?.toISOString() ?? 'an unknown time'} (${age} ago) in database ${info.dbName}${expires}`,
      );
    }
    if (!force) {
      throw new CliError(`the lock stays: if ${NO_RUN_GOING_ON}, remove it with \`npm run migrate:unlock -- --force\``);
    }
    const { deletedCount } = await locks.deleteMany({ _id: { $in: held.map((lock) => lock._id) } });
    print(`removed ${deletedCount} lock document(s): the next migration run can take the lock`);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    const command = parseUnlockArguments(process.argv.slice(2));
    if (command === 'help') process.stdout.write(`${USAGE}\n`);
    else await runUnlock(command, (line) => process.stdout.write(`${line}\n`));
  } catch (error) {
    exitWithFailure('migrate:unlock', error);
  }
}
