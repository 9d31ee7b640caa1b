// `npm run bench:backup`: how fast a backup, its verification and a restore go on 100,000
// customers (a migrated database, so with the real validators, collation and indexes), plain and
// gzip, on a throwaway embedded replica set. Prints the figures and writes them to
// bench/results/backup.json, which is committed so a change in speed shows in review.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { backupDatabase } from '../src/backup/dump.ts';
import type { Manifest } from '../src/backup/manifest.ts';
import type { ProgressEvent } from '../src/backup/progress.ts';
import { restoreDatabase } from '../src/backup/restore.ts';
import { verifyBackup } from '../src/backup/verify.ts';
import { migrateUp } from '../src/data/migrations.ts';
import { startEmbeddedMongo } from '../src/mongod/embedded.ts';
import { benchCustomer, environmentOf, round, writeResult } from './common.ts';

const DOCUMENTS = 100_000;
const INSERT_BATCH = 5_000;
const RESULT = new URL('./results/backup.json', import.meta.url);

/** A customer as the service stores it: amounts spent in one or two currencies (none for a quarter). */
function customer(i: number): Record<string, unknown> {
  const spent =
    i % 4 === 0
      ? []
      : [
          { currency: 'EUR', amount: 1_000 + (i % 50_000) },
          ...(i % 4 === 3 ? [{ currency: 'USD', amount: 500 + (i % 20_000) }] : []),
        ];
  return benchCustomer(i, spent);
}

const MB = 1024 * 1024;

interface Figure {
  seconds: number;
  docsPerSecond: number;
  mbPerSecond: number;
}

/** Rates over every document of the backup and its uncompressed BSON, whatever the step stores. */
function figure(seconds: number, manifest: Manifest): Figure {
  return {
    seconds: round(seconds),
    docsPerSecond: Math.round(manifest.totals.documents / seconds),
    mbPerSecond: round(manifest.totals.bsonBytes / MB / seconds, 1),
  };
}

async function timed<T>(run: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await run();
  return [result, (performance.now() - started) / 1000];
}

/** When each phase of a restore ended, from its events: verification, staging, move. */
function phaseClock() {
  const started = performance.now();
  const at: Record<string, number> = {};
  const progress = (event: ProgressEvent) => {
    at[event.event] = (performance.now() - started) / 1000;
  };
  const phases = () => ({
    verifySeconds: round(at['backup-verified']!),
    stagingSeconds: round(at['collection-restored']! - at['backup-verified']!),
    moveSeconds: round(at['restore-done']! - at['collection-restored']!),
  });
  return { progress, phases };
}

const line = (step: string, f: Figure, extra = '') =>
  console.log(
    `${step.padEnd(16)} ${f.seconds.toFixed(2).padStart(6)} s  ${String(f.docsPerSecond).padStart(7)} docs/s  ${f.mbPerSecond.toFixed(1).padStart(6)} MB/s${extra}`,
  );

async function main(): Promise<void> {
  const startedAt = new Date();
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'storekeeper-bench-backup-'));
  const mongo = await startEmbeddedMongo({ log: (message) => console.error(`[mongod] ${message}`) });
  const client = await new mongoose.mongo.MongoClient(mongo.uri).connect();
  try {
    const db = client.db('bench_backup');
    const { version } = (await client.db('admin').command({ buildInfo: 1 })) as { version: string };
    await migrateUp(db, client);
    const customers = db.collection('customers');
    const [, insertSeconds] = await timed(async () => {
      for (let from = 0; from < DOCUMENTS; from += INSERT_BATCH) {
        await customers.insertMany(
          Array.from({ length: Math.min(INSERT_BATCH, DOCUMENTS - from) }, (_, i) => customer(from + i)),
        );
      }
    });
    console.log(`insertMany: ${DOCUMENTS} customers in batches of ${INSERT_BATCH}, ${insertSeconds.toFixed(1)} s`);

    const results: Record<string, unknown> = {};
    for (const gzip of [false, true]) {
      const label = gzip ? 'gzip' : 'plain';
      const out = join(work, label);
      const [manifest, backupSeconds] = await timed(() => backupDatabase(db, { out, gzip }));
      const [report, verifySeconds] = await timed(() => verifyBackup(out));
      if (!report.ok) throw new Error(`the ${label} backup does not verify: ${JSON.stringify(report.problems)}`);
      const clock = phaseClock();
      const [, restoreSeconds] = await timed(() =>
        restoreDatabase(client, `bench_restored_${label}`, { from: out, progress: clock.progress }),
      );
      const restored = await client.db(`bench_restored_${label}`).collection('customers').countDocuments();
      if (restored !== DOCUMENTS) throw new Error(`the ${label} restore holds ${restored} customers, not ${DOCUMENTS}`);

      const sizes = `  (BSON ${(manifest.totals.bsonBytes / MB).toFixed(1)} MB, stored ${(manifest.totals.storedBytes / MB).toFixed(1)} MB)`;
      console.log(`${label}:`);
      line('  backup', figure(backupSeconds, manifest), sizes);
      line('  verify', figure(verifySeconds, manifest));
      const phases = clock.phases();
      line(
        '  restore',
        figure(restoreSeconds, manifest),
        `  (verify ${phases.verifySeconds} s, staging ${phases.stagingSeconds} s, move ${phases.moveSeconds} s)`,
      );
      results[label] = {
        bsonBytes: manifest.totals.bsonBytes,
        storedBytes: manifest.totals.storedBytes,
        backup: figure(backupSeconds, manifest),
        verify: figure(verifySeconds, manifest),
        restore: { ...figure(restoreSeconds, manifest), ...phases },
      };
    }

    const totalSeconds = (performance.now() - started) / 1000;
    console.log(
      `total: ${totalSeconds.toFixed(1)} s (mongod start, migrations, inserts, then backup, verify and restore, plain and gzip)`,
    );
    const result = {
      benchmark: 'backup',
      startedAt: startedAt.toISOString(),
      environment: environmentOf({ version, source: mongo.source }),
      documents: DOCUMENTS,
      collection: 'customers',
      insert: { batchSize: INSERT_BATCH, seconds: round(insertSeconds) },
      ...results,
      totalSeconds: round(totalSeconds),
    };
    await writeResult(RESULT, result);
  } finally {
    await client.close();
    await mongo.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
