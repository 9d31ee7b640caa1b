// `npm run migrate:up|down|status|create`: migrate-mongo's own command line with
// migrate-mongo-config.js, unchanged but for one message: a run that finds the migration lock
// taken says so in words, with what to do, instead of migrate-mongo's error and stack trace.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '../config.ts';

const CONFIG_FILE = fileURLToPath(new URL('../../migrate-mongo-config.js', import.meta.url));

// migrate-mongo's two ways of losing the race for the lock: its own check found a lock, or the
// insert of its lock document hit the unique index (src/data/migrations.ts, prepareBookkeeping).
const LOCKED =
  /^ERROR: (Could not migrate (up|down), a lock is in place\.|Could not create a lock: E11000 duplicate key error)/;
const STACK_LINE = /^\s+at |^\s*$/;

/** Runs migrate-mongo with `args` and resolves with its exit code, rewording a lock failure. */
export function runMigrateMongo(args: readonly string[]): Promise<number> {
  const bin = join(dirname(createRequire(import.meta.url).resolve('migrate-mongo')), '../bin/migrate-mongo.js');
  const withConfig = args.some((arg) => arg === '-f' || arg === '--file' || arg.startsWith('--file='))
    ? args
    : [...args, '-f', CONFIG_FILE];
  const child = spawn(process.execPath, [bin, ...withConfig], { stdio: ['inherit', 'inherit', 'pipe'] });
  const command = args[0] ?? '';

  // stderr passes through line by line until an ERROR line; migrate-mongo exits right after
  // printing it, so the rest is held back until then, when it is clear whether it is the lock.
  let partial = '';
  let held: string[] | undefined;
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (held === undefined && line.startsWith('ERROR: ')) held = [];
      if (held !== undefined) held.push(line);
      else process.stderr.write(`${line}\n`);
    }
  });
  const flush = async () => {
    const rest = [...(held ?? []), ...(partial === '' ? [] : [partial])];
    const [first = '', ...after] = rest;
    if (LOCKED.test(first)) {
      // Its stack trace says nothing an operator needs; lines after it (a stopped mongod) stay.
      rest.splice(0, rest.length, await lockMessage(command, first), ...after.filter((line) => !STACK_LINE.test(line)));
    }
    for (const line of rest) process.stderr.write(`${line}\n`);
  };

  // An interrupt from the terminal reaches migrate-mongo too, and it stops by itself (and stops
  // an embedded mongod it started); a SIGTERM sent to this process alone is passed on.
  const ignore = () => {};
  const forward = () => child.kill('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
      const exitCode = code ?? (signal === 'SIGINT' ? 130 : 143);
      flush().then(() => resolve(exitCode), reject);
    });
  });
}

async function lockMessage(command: string, error: string): Promise<string> {
  // Loaded only here: it brings mongoose and migrate-mongo, which this process otherwise never needs.
  const { CLI_MIGRATION_SETTINGS } = await import('./migrate-config.ts');
  const { lockCollectionName, lockTtl } = CLI_MIGRATION_SETTINGS;
  // migrate-mongo prints its message twice, once more as the head of the stack trace.
  const reason = error.slice('ERROR: '.length).split(' Error: ')[0];
  let database = 'the configured database';
  try {
    database = `database ${loadConfig().mongo.dbName}`;
  } catch {
    // A bad environment would have failed migrate-mongo earlier, with its own message.
  }
  return [
    `storekeeper migrate:${command}: another migration run holds the lock (a document in ${lockCollectionName}, ` +
      `${database}), so this run changed nothing.`,
    `  Try again when that run has finished. If a run crashed, MongoDB removes its lock ${lockTtl} s (lockTtl) ` +
      `after it was taken`,
    `  (its TTL monitor runs once a minute). To retry sooner, make sure no run is going on anywhere, then remove it:`,
    `  npm run migrate:unlock -- --force`,
    `  (migrate-mongo: ${reason})`,
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await runMigrateMongo(process.argv.slice(2));
}
