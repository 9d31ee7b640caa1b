// `npm run bench:migrations`: how fast the customers' stats.spent migration converts documents, up
// and down, on a throwaway embedded replica set. Prints the figures and writes them to
// bench/results/migrations.json, which is committed so a change in speed shows in review.

import mongoose from 'mongoose';
import { loadMigration } from '../src/data/migrations.ts';
import { startEmbeddedMongo } from '../src/mongod/embedded.ts';
import { benchCustomer, environmentOf, round, writeResult } from './common.ts';

const FIRST = '20261125000000-create-collections.js';
const SPENT = '20261125100000-customer-spent-as-money.js';
const DOCUMENTS = 100_000;
const INSERT_BATCH = 5_000;
const RESULT = new URL('./results/migrations.json', import.meta.url);

type Db = mongoose.mongo.Db;

/** A customer of the old shape (spent as a currency map): none for a quarter, one to three currencies for the rest. */
function oldCustomer(i: number): Record<string, unknown> {
  const spent: Record<string, number> = {};
  if (i % 4 >= 1) spent.EUR = 1_000 + (i % 50_000);
  if (i % 4 >= 2) spent.USD = 500 + (i % 20_000);
  if (i % 4 === 3) spent.GBP = 100 + (i % 9_000);
  return benchCustomer(i, spent);
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return (performance.now() - started) / 1000;
}

const rate = (seconds: number) => Math.round(DOCUMENTS / seconds);

async function expectShape(db: Db, type: 'array' | 'object', step: string): Promise<void> {
  const predicate = type === 'array' ? { $type: 'array' } : { $type: 'object', $not: { $type: 'array' } };
  const count = await db.collection('customers').countDocuments({ 'stats.spent': predicate });
  if (count !== DOCUMENTS)
    throw new Error(`after ${step}, ${count} of ${DOCUMENTS} customers have stats.spent as ${type}`);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const started = performance.now();
  const mongo = await startEmbeddedMongo({ log: (message) => console.error(`[mongod] ${message}`) });
  const client = await new mongoose.mongo.MongoClient(mongo.uri).connect();
  try {
    const db = client.db('bench_migrations');
    const { version } = (await client.db('admin').command({ buildInfo: 1 })) as { version: string };
    await (await loadMigration(FIRST)).up(db, client);
    const spentMigration = await loadMigration(SPENT);
    const batchSize = spentMigration.BATCH_SIZE as number;

    const customers = db.collection('customers');
    const insertSeconds = await timed(async () => {
      for (let from = 0; from < DOCUMENTS; from += INSERT_BATCH) {
        const batch = Array.from({ length: Math.min(INSERT_BATCH, DOCUMENTS - from) }, (_, i) => oldCustomer(from + i));
        await customers.insertMany(batch);
      }
    });
    console.log(
      `insertMany: ${DOCUMENTS} customers of the old shape in batches of ${INSERT_BATCH}, ${insertSeconds.toFixed(1)} s, ${rate(insertSeconds)} docs/s`,
    );

    // Each figure is the whole migration as an operator waits for it: the checks, both validator
    // changes, the batches, the final pass and the index build (up) or drop (down).
    const upSeconds = await timed(() => spentMigration.up(db, client));
    await expectShape(db, 'array', 'up');
    console.log(
      `up: ${DOCUMENTS} documents in batches of ${batchSize}, ${upSeconds.toFixed(1)} s, ${rate(upSeconds)} docs/s`,
    );

    const downSeconds = await timed(() => spentMigration.down(db, client));
    await expectShape(db, 'object', 'down');
    console.log(
      `down: ${DOCUMENTS} documents in batches of ${batchSize}, ${downSeconds.toFixed(1)} s, ${rate(downSeconds)} docs/s`,
    );

    const totalSeconds = (performance.now() - started) / 1000;
    console.log(`total: ${totalSeconds.toFixed(1)} s (mongod start, first migration, inserts, up, down)`);

    const result = {
      benchmark: 'migrations',
      migration: SPENT,
      startedAt: startedAt.toISOString(),
      environment: environmentOf({ version, source: mongo.source }),
      documents: DOCUMENTS,
      batchSize,
      insert: { batchSize: INSERT_BATCH, seconds: round(insertSeconds), docsPerSecond: rate(insertSeconds) },
      up: { seconds: round(upSeconds), docsPerSecond: rate(upSeconds) },
      down: { seconds: round(downSeconds), docsPerSecond: rate(downSeconds) },
      totalSeconds: round(totalSeconds),
    };
    await writeResult(RESULT, result);
  } finally {
    await client.close();
    await mongo.stop();
  }
}

await main();
