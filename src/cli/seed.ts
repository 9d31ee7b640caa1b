// `npm run seed`: fills a migrated database with the shop's demo data (src/cli/demo-data.ts).
// Idempotent: every document is upserted by its natural key with $setOnInsert, so a rerun adds
// only what is missing and never touches a document that exists, however it changed since.

import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import mongoose from 'mongoose';
import { Customer, Product, Stock } from '../domain/entities/index.ts';
import type { Entity } from '../domain/entity.ts';
import { compileValidator } from '../domain/validation.ts';
import { redactSecrets } from '../logger.ts';
import { CliError, exitWithFailure, withCliDatabase, type Db } from './database-connection.ts';
import { generateDemoData, type DemoOptions, type Generated } from './demo-data.ts';

export const SEED_DEFAULTS: DemoOptions = { products: 1000, customers: 200, seed: 1 };
export const BATCH_SIZE = 500;
const MAX_COUNT = 100_000;

export const NO_COLLECTIONS_MESSAGE = 'the database has no collections yet: run `npm run migrate:up` first';

export interface CollectionReport {
  collection: string;
  /** Documents this run created. */
  inserted: number;
  /** Documents whose natural key already existed: left exactly as they were. */
  present: number;
  ms: number;
}

export interface SeedReport {
  options: DemoOptions;
  collections: CollectionReport[];
  ms: number;
}

interface Target {
  entity: Entity;
  /** The natural key: the upsert's filter, backed by a unique index of the collection. */
  key: readonly string[];
  items: Generated<Record<string, unknown>>[];
}

/**
 * Writes the demo data into `db`, whose collections must exist (migrations create them with
 * their validators and indexes; an upsert into a missing collection would create a bare one).
 */
export async function seed(db: Db, options: Partial<DemoOptions> = {}): Promise<SeedReport> {
  const started = performance.now();
  const resolved: DemoOptions = { ...SEED_DEFAULTS, ...options };
  for (const name of ['products', 'customers'] as const) checkCount(name, resolved[name]);
  if (!Number.isInteger(resolved.seed)) throw new CliError(`the seed must be an integer, got ${resolved.seed}`);

  await assertCollectionsExist(db, [Product, Customer, Stock]);

  const data = generateDemoData(resolved);
  const targets: Target[] = [
    { entity: Product, key: ['sku'], items: data.products },
    { entity: Customer, key: ['email'], items: data.customers },
    { entity: Stock, key: ['sku', 'warehouse'], items: data.stock },
  ];
  // Everything is checked before the first write: a generator bug must not leave half a seed.
  for (const target of targets) checkGenerated(target);

  const collections: CollectionReport[] = [];
  for (const target of targets) collections.push(await upsertAll(db, target));
  return { options: resolved, collections, ms: performance.now() - started };
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_COUNT) {
    throw new CliError(`--${name} must be an integer from 0 to ${MAX_COUNT}, got ${value}`);
  }
}

async function assertCollectionsExist(db: Db, entities: readonly Entity[]): Promise<void> {
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((info) => info.name));
  if (!existing.has(Product.collection)) throw new CliError(NO_COLLECTIONS_MESSAGE);
  const missing = entities.map((entity) => entity.collection).filter((name) => !existing.has(name));
  if (missing.length > 0) {
    const collections = `${missing.join(', ')} collection${missing.length > 1 ? 's' : ''}`;
    throw new CliError(`the database has no ${collections}: run \`npm run migrate:up\` first`);
  }
}

/**
 * The writable part against the schema the API validates requests with, and the whole document
 * (as JSON: ObjectIds and dates as the strings the declaration describes) against the stored
 * schema, which covers the server and system fields too.
 */
function checkGenerated({ entity, key, items }: Target): void {
  const checkWritable = compileValidator(entity.writable, 'writable');
  const checkStored = compileValidator(entity.stored, 'stored');
  for (const { writable, document } of items) {
    const errors = [...checkWritable(writable), ...checkStored(JSON.parse(JSON.stringify(document)))];
    if (errors.length > 0) {
      const id = key.map((field) => String(document[field])).join('/');
      const details = errors.map((error) => `${error.in} ${error.pointer || '/'} ${error.message}`).join('; ');
      throw new Error(
        `the demo data generator made an invalid ${entity.singular} ${id} (a bug in src/cli/demo-data.ts): ${details}`,
      );
    }
  }
}

async function upsertAll(db: Db, { entity, key, items }: Target): Promise<CollectionReport> {
  const started = performance.now();
  const collection = db.collection(entity.collection);
  const report: CollectionReport = { collection: entity.collection, inserted: 0, present: 0, ms: 0 };
  for (let start = 0; start < items.length; start += BATCH_SIZE) {
    const operations = items.slice(start, start + BATCH_SIZE).map(({ document }) => ({
      updateOne: {
        // Matched with the collection's default collation, so e-mails compare without case.
        filter: Object.fromEntries(key.map((field) => [field, document[field]])),
        update: { $setOnInsert: document },
        upsert: true,
      },
    }));
    try {
      const result = await collection.bulkWrite(operations, { ordered: false, writeConcern: { w: 'majority' } });
      report.inserted += result.upsertedCount;
      report.present += result.matchedCount;
    } catch (error) {
      throw explainWriteFailure(entity, error);
    }
  }
  report.ms = performance.now() - started;
  return report;
}

const DUPLICATE_KEY = 11000;
const VALIDATION_FAILED = 121;

function explainWriteFailure(entity: Entity, error: unknown): Error {
  if (!(error instanceof mongoose.mongo.MongoBulkWriteError))
    return error instanceof Error ? error : new Error(String(error));
  const failures = [error.writeErrors].flat();
  const first = failures[0];
  const count = `${failures.length} ${entity.collection} write${failures.length === 1 ? '' : 's'} failed`;
  if (first?.code === DUPLICATE_KEY) {
    // Another unique field (a GTIN) of a document made through the API matches a demo document.
    return new CliError(
      `${count}: a unique value of the demo data is already taken by a document with another key (${first.errmsg})`,
    );
  }
  if (first?.code === VALIDATION_FAILED) {
    return new Error(
      `${count}: the collection's validator refused demo data that the declarations accept; ` +
        `is a migration pending (npm run migrate:status)? ${first.errmsg} ${JSON.stringify(first.errInfo ?? {})}`,
      { cause: error },
    );
  }
  return new Error(`${count}: ${first?.errmsg ?? error.message}`, { cause: error });
}

// --- the command ------------------------------------------------------------------------------

const USAGE = `usage: npm run seed -- [--products N] [--customers N] [--seed N]
  --products N   products to have (default ${SEED_DEFAULTS.products})
  --customers N  customers to have (default ${SEED_DEFAULTS.customers})
  --seed N       seed of the generator (default ${SEED_DEFAULTS.seed}); changes names, prices and
                 stock levels, never SKUs or e-mails, so it only matters for a fresh database
The database is MONGODB_URI's, or the embedded one (DATA_DIR, EMBEDDED_MONGODB_PORT).`;

/**
 * The demo data a command line asks for (`--products`, `--customers`, `--seed`; the seed's and
 * the sandbox's), or undefined when only help was asked for. Throws an Error naming the option.
 */
export function parseDemoArguments(args: string[]): DemoOptions | undefined {
  const { values } = parseArgs({
    args,
    options: {
      products: { type: 'string' },
      customers: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) return undefined;
  const integer = (name: 'products' | 'customers' | 'seed', max: number): number => {
    const raw = values[name];
    if (raw === undefined) return SEED_DEFAULTS[name];
    if (!/^\d+$/.test(raw) || Number(raw) > max)
      throw new Error(`--${name} must be an integer from 0 to ${max}, got "${raw}"`);
    return Number(raw);
  };
  return {
    products: integer('products', MAX_COUNT),
    customers: integer('customers', MAX_COUNT),
    seed: integer('seed', 0xffff_ffff),
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// migrate:up reads only MONGODB_URI, so on the embedded database the bare advice would fail.
async function main(args: string[]): Promise<void> {
  let options: DemoOptions | undefined;
  try {
    options = parseDemoArguments(args);
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n${USAGE}`);
  }
  if (options === undefined) {
    console.log(USAGE);
    return;
  }
  const started = performance.now();
  await withCliDatabase(
    async (db, _client, info) => {
      console.log(
        `seeding database ${info.dbName} at ${redactSecrets(info.uri)}: ` +
          `${options.products} products, ${options.customers} customers, seed ${options.seed}`,
      );
      const report = await seed(db, options);
      const width = Math.max(...report.collections.map((c) => String(c.inserted + c.present).length));
      for (const c of report.collections) {
        console.log(
          `  ${c.collection.padEnd(10)} ${String(c.inserted).padStart(width)} inserted, ` +
            `${String(c.present).padStart(width)} already present (${seconds(c.ms)})`,
        );
      }
      console.log(`seeded in ${seconds(report.ms)}`);
    },
    { log: (message) => console.log(message) },
  );
  console.log(`done in ${seconds(performance.now() - started)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((error: unknown) => exitWithFailure('seed', error));
}
