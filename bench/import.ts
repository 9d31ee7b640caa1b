// `npm run bench:import [-- --count N] [-- --batch-size N]`: how fast `npm run import` brings N
// products (1,000,000 by default) from an NDJSON file into a migrated database, against a bare
// insertMany of the same documents in the same run, on a throwaway embedded replica set; and
// whether its memory stays flat (the resident set sampled every 100 ms while it runs, with its
// value at each tenth of the file). Prints the figures and writes them to bench/results/import.json.
//
// The import is measured as an operator runs it, minus the backup (--no-backup: a backup of an
// empty database says nothing): the input's SHA-256 for its checkpoint, every record parsed and
// checked as a create, looked up by SKU, written carrying its audit stamp, its entry stored right
// after, and the checkpoint advanced; then the report's checksums. insertMany writes the
// documents as stored, in batches of the same size, as many at once as the import writes (so
// that neither gains from overlapping its own work with MongoDB's), and nothing else.

import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mongoose from 'mongoose';
import { pino } from 'pino';
import type { ProgressEvent } from '../src/backup/progress.ts';
import { loadConfig } from '../src/config.ts';
import { migrateUp } from '../src/data/migrations.ts';
import { BATCHES_AT_ONCE, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, runImport } from '../src/import/run.ts';
import { startEmbeddedMongo } from '../src/mongod/embedded.ts';
import { environmentOf, round, writeResult } from './common.ts';

const RESULT = new URL('./results/import.json', import.meta.url);
const MB = 1024 * 1024;
const GOAL = 0.7;

const CATEGORIES = ['kitchen', 'garden', 'apparel', 'books', 'toys'];

/** Product number `i` as a client writes it. */
function product(i: number): Record<string, unknown> {
  return {
    sku: `BENCH-${String(i).padStart(8, '0')}`,
    name: `Bench product ${i}`,
    description: `Product ${i} of the import benchmark, with a description of a realistic length for a catalog.`,
    price: { amount: 100 + (i % 100_000), currency: 'EUR' },
    category: CATEGORIES[i % CATEGORIES.length],
    tags: i % 3 === 0 ? ['sale'] : [],
    attributes: { weightGrams: 100 + (i % 900), color: i % 2 === 0 ? 'red' : 'blue' },
    status: 'active',
  };
}

function options() {
  const { values } = parseArgs({
    options: { count: { type: 'string' }, 'batch-size': { type: 'string' } },
    strict: true,
  });
  const count = Number(values.count ?? 1_000_000);
  const batchSize = Number(values['batch-size'] ?? DEFAULT_BATCH_SIZE);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count must be a positive whole number`);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE)
    throw new Error(`--batch-size must be a whole number from 1 to ${MAX_BATCH_SIZE}`);
  return { count, batchSize };
}

async function writeFile(file: string, count: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < count; i++) {
    if (!out.write(`${JSON.stringify(product(i))}\n`))
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/** insertMany of the stored documents, in batches, as many at once as the import writes, timed. */
async function insertManyRate(db: mongoose.mongo.Db, count: number, batchSize: number): Promise<number> {
  const products = db.collection('products');
  const started = performance.now();
  let next = 0;
  const writer = async () => {
    while (next < count) {
      const from = next;
      next += batchSize;
      const now = new Date();
      const batch = Array.from({ length: Math.min(batchSize, count - from) }, (_, i) => ({
        ...product(from + i),
        version: 1,
        createdAt: now,
        updatedAt: now,
      }));
      await products.insertMany(batch);
    }
  };
  await Promise.all(Array.from({ length: BATCHES_AT_ONCE }, writer));
  return count / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const { count, batchSize } = options();
  const startedAt = new Date();
  const work = await mkdtemp(join(tmpdir(), 'storekeeper-bench-import-'));
  const mongo = await startEmbeddedMongo({ log: (message) => console.error(`[mongod] ${message}`) });
  const client = await new mongoose.mongo.MongoClient(mongo.uri).connect();
  try {
    const { version } = (await client.db('admin').command({ buildInfo: 1 })) as { version: string };
    const file = join(work, 'products.ndjson');
    await writeFile(file, count);
    const fileMb = (await stat(file)).size / MB;
    console.log(
      `input: ${count.toLocaleString('en-US')} products, ${fileMb.toFixed(1)} MB of NDJSON; batches of ${batchSize}, ${BATCHES_AT_ONCE} at once`,
    );

    const raw = client.db('bench_import_raw');
    await migrateUp(raw, client);
    const insertMany = await insertManyRate(raw, count, batchSize);
    console.log(`insertMany:  ${Math.round(insertMany).toLocaleString('en-US')} docs/s`);
    await raw.dropDatabase();

    const dbName = 'bench_import';
    await migrateUp(client.db(dbName), client);
    const rssAtStart = process.memoryUsage.rss();
    let peakRss = rssAtStart;
    const byTenth: number[] = [];
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 100);
    let writtenAt = 0;
    const started = performance.now();
    const progress = (event: ProgressEvent) => {
      if (event.event !== 'import-progress') return;
      const share = Number(event.bytes) / Number(event.totalBytes);
      while (byTenth.length < 10 && share >= (byTenth.length + 1) / 10) byTenth.push(process.memoryUsage.rss());
      if (share >= 1) writtenAt = performance.now();
    };
    const report = await runImport(
      client,
      dbName,
      loadConfig({ MONGODB_URI: mongo.uri, MONGODB_DB: dbName }),
      pino({ level: 'warn' }),
      {
        collection: 'products',
        file,
        format: 'ndjson',
        dryRun: false,
        onConflict: 'skip',
        backup: false,
        batchSize,
        rejects: null,
        checkpoint: 'restart',
        progress,
      },
    );
    const totalSeconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const writeSeconds = (writtenAt - started) / 1000;
    if (report.records.inserted !== count)
      throw new Error(`the import inserted ${report.records.inserted} of ${count}`);

    const importRate = count / writeSeconds;
    const ratio = importRate / insertMany;
    const mb = (bytes: number) => round(bytes / MB, 0);
    console.log(
      `import:      ${Math.round(importRate).toLocaleString('en-US')} docs/s until the last batch committed (${writeSeconds.toFixed(1)} s), ` +
        `${Math.round(count / totalSeconds).toLocaleString('en-US')} docs/s with the report's checksums (${totalSeconds.toFixed(1)} s)`,
    );
    console.log(
      `ratio:       ${ratio.toFixed(2)} of insertMany (goal >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'not met'})`,
    );
    console.log(
      `RSS:         ${mb(rssAtStart)} MB before, peak ${mb(peakRss)} MB; at each tenth of the file: ${byTenth.map(mb).join(', ')} MB`,
    );
    await writeResult(RESULT, {
      benchmark: 'import',
      startedAt: startedAt.toISOString(),
      environment: environmentOf({ version, source: mongo.source }),
      count,
      batchSize,
      batchesAtOnce: BATCHES_AT_ONCE,
      fileMb: round(fileMb, 1),
      insertManyDocsPerSecond: Math.round(insertMany),
      importDocsPerSecond: Math.round(importRate),
      importWithReportDocsPerSecond: Math.round(count / totalSeconds),
      ratio: round(ratio),
      goal: GOAL,
      rssMb: { start: mb(rssAtStart), peak: mb(peakRss), byTenth: byTenth.map(mb) },
      checksum: report.collections.products,
    });
  } finally {
    await client.close();
    await mongo.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
