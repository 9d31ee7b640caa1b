// The seed against the test replica set: what it writes, that a rerun adds and changes nothing
// (not even a document edited in between), and the command line's output and exit codes.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateDemoData } from '../../src/cli/demo-data.ts';
import { NO_COLLECTIONS_MESSAGE, seed, type SeedReport } from '../../src/cli/seed.ts';
import { Customer } from '../../src/domain/entities/index.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { ROOT } from '../helpers/process.ts';

const { EJSON } = mongoose.mongo.BSON;
const COLLECTIONS = ['products', 'customers', 'stock'] as const;
const SMALL = { products: 120, customers: 30, seed: 7 };

/** Attributes every product of a category has, and that products of other categories never have. */
const SIGNATURE: Record<string, string[]> = {
  apparel: ['colors', 'fit', 'gender'],
  footwear: ['sizesEU', 'upper', 'sole'],
  kitchen: ['dishwasherSafe'],
  garden: ['weatherproof', 'weightKg'],
  electronics: ['wattage', 'voltage', 'connectivity', 'warrantyMonths'],
  books: ['author', 'pages', 'isbn', 'publisher'],
  toys: ['ageMin', 'safetyMark'],
  beauty: ['keyIngredients', 'vegan', 'crueltyFree'],
};

/** GS1's check: digits weighted 3 and 1 alternately from the right (check digit included) sum to a multiple of 10. */
const validCheckDigit = (gtin: string) =>
  Array.from(gtin)
    .reverse()
    .reduce((sum, digit, i) => sum + Number(digit) * (i % 2 === 0 ? 1 : 3), 0) %
    10 ===
  0;

describe('npm run seed', () => {
  const client = new mongoose.mongo.MongoClient(inject('mongoUri'));
  const databases: string[] = [];

  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    await client.close();
    for (const name of databases) await dropDatabase(name);
  });

  const migratedDb = async (label: string) => {
    const name = testDatabaseName(label);
    databases.push(name);
    await migrateDatabase(name);
    return client.db(name);
  };

  /** A digest of every document, in canonical Extended JSON (so an int turning double shows). */
  const checksum = async (db: mongoose.mongo.Db) => {
    const hash = createHash('sha256');
    for (const name of COLLECTIONS) {
      for await (const doc of db.collection(name).find().sort({ _id: 1 }))
        hash.update(EJSON.stringify(doc, { relaxed: false }));
    }
    return hash.digest('hex');
  };

  const counts = (report: SeedReport) =>
    Object.fromEntries(
      report.collections.map(({ collection, inserted, present }) => [collection, { inserted, present }]),
    );

  it('fills a migrated database with valid demo data whose attributes depend on the category', async () => {
    const db = await migratedDb('seed_fill');
    const report = await seed(db, SMALL);

    const products = await db.collection('products').find().toArray();
    const active = products.filter((p) => p.status === 'active').length;
    expect(counts(report)).toEqual({
      products: { inserted: 120, present: 0 },
      customers: { inserted: 30, present: 0 },
      stock: { inserted: active * 3, present: 0 },
    });
    expect(await db.collection('customers').countDocuments()).toBe(30);
    expect(await db.collection('stock').countDocuments()).toBe(active * 3);
    expect(active).toBeGreaterThan(80);
    expect(new Set(products.map((p) => p.status))).toEqual(new Set(['active', 'draft', 'archived']));

    // Every category turns up, and each product carries its category's attributes and no other's.
    expect(new Set(products.map((p) => p.category))).toEqual(new Set(Object.keys(SIGNATURE)));
    for (const product of products) {
      const keys = Object.keys(product.attributes as object);
      for (const [category, signature] of Object.entries(SIGNATURE)) {
        for (const key of signature) {
          if (category === product.category) expect(keys, `${product.sku} lacks ${key}`).toContain(key);
          else expect(keys, `${product.sku} (${product.category}) has ${category}'s ${key}`).not.toContain(key);
        }
      }
    }
    const keySets = new Set(
      Object.keys(SIGNATURE).map((category) =>
        [
          ...new Set(
            products.filter((p) => p.category === category).flatMap((p) => Object.keys(p.attributes as object)),
          ),
        ]
          .sort()
          .join(),
      ),
    );
    expect(keySets.size).toBe(Object.keys(SIGNATURE).length);

    // Barcodes: books always (their ISBN), other products sometimes, never twice.
    const gtins = products.flatMap((p) => (p.gtin === undefined ? [] : [p.gtin as string]));
    expect(new Set(gtins).size).toBe(gtins.length);
    for (const gtin of gtins) expect(validCheckDigit(gtin), gtin).toBe(true);
    expect(gtins.length).toBeLessThan(products.length);
    for (const book of products.filter((p) => p.category === 'books')) expect(book.gtin).toBe(book.attributes.isbn);

    // Stored types: what the API reads back (and the validator already insisted on).
    for (const name of COLLECTIONS) {
      const collection = db.collection(name);
      const total = await collection.countDocuments();
      expect(await collection.countDocuments({ _id: { $type: 'objectId' }, version: { $type: 'int', $eq: 1 } })).toBe(
        total,
      );
      expect(await collection.countDocuments({ createdAt: { $type: 'date' }, updatedAt: { $type: 'date' } })).toBe(
        total,
      );
      expect(await collection.countDocuments({ $expr: { $gte: ['$updatedAt', '$createdAt'] } })).toBe(total);
    }
    expect(
      await db.collection('products').countDocuments({ 'price.amount': { $type: 'int' }, 'price.currency': 'EUR' }),
    ).toBe(120);
    expect(await db.collection('customers').countDocuments({ stats: Customer.serverDefaults.stats })).toBe(30);
    expect(
      await db.collection('stock').countDocuments({ reserved: 0, shipped: 0, available: { $gte: 0, $lte: 500 } }),
    ).toBe(active * 3);
    const warehouses = await db.collection('stock').distinct('warehouse');
    expect(warehouses.sort()).toEqual(['AMS-1', 'BER-1', 'MAD-1']);

    // Unique e-mails, and countries as ISO codes.
    const customers = await db.collection('customers').find().toArray();
    expect(new Set(customers.map((c) => (c.email as string).toLowerCase())).size).toBe(30);
    const countries = new Set(customers.flatMap((c) => (c.addresses as { country: string }[]).map((a) => a.country)));
    expect(countries.size).toBeGreaterThan(3);
    for (const country of countries) expect(country).toMatch(/^[A-Z]{2}$/);
  });

  it('inserts nothing on a rerun and never overwrites a document changed in between', async () => {
    const db = await migratedDb('seed_rerun');
    const first = await seed(db, SMALL);
    const afterFirst = await checksum(db);

    const second = await seed(db, SMALL);
    for (const { collection, inserted, present } of second.collections) {
      const before = first.collections.find((c) => c.collection === collection)!;
      expect({ collection, inserted, present }).toEqual({ collection, inserted: 0, present: before.inserted });
    }
    expect(await checksum(db)).toBe(afterFirst);

    // As the API would change it: new name and price, next version.
    const products = db.collection('products');
    const target = (await products.findOne({ status: 'active' }, { sort: { sku: 1 } }))!;
    const changedAt = new Date();
    await products.updateOne(
      { _id: target._id },
      { $set: { name: 'Renamed through the API', 'price.amount': 1234, updatedAt: changedAt }, $inc: { version: 1 } },
    );
    const customers = db.collection('customers');
    const customer = (await customers.findOne({}, { sort: { email: 1 } }))!;
    // Upper case: the customers collection compares e-mails without case, and so does the seed.
    await customers.updateOne({ _id: customer._id }, { $set: { email: (customer.email as string).toUpperCase() } });
    const afterChange = await checksum(db);

    const third = await seed(db, SMALL);
    expect(third.collections.map((c) => c.inserted)).toEqual([0, 0, 0]);
    expect(await checksum(db)).toBe(afterChange);
    const kept = (await products.findOne({ sku: target.sku }))!;
    expect(kept).toMatchObject({
      name: 'Renamed through the API',
      price: { amount: 1234 },
      version: 2,
      updatedAt: changedAt,
    });
    expect(await customers.countDocuments()).toBe(30);
  });

  it('depends only on its options: the same documents every time, and a larger count only adds', async () => {
    const once = generateDemoData(SMALL);
    const again = generateDemoData(SMALL);
    expect(EJSON.stringify(again, { relaxed: false })).toBe(EJSON.stringify(once, { relaxed: false }));

    // Another seed changes the details but keeps the natural keys (a reseed adds nothing).
    const reseeded = generateDemoData({ ...SMALL, seed: 8 });
    expect(reseeded.products.map((p) => p.document.sku)).toEqual(once.products.map((p) => p.document.sku));
    expect(reseeded.customers.map((c) => c.document.email)).toEqual(once.customers.map((c) => c.document.email));
    expect(reseeded.products.map((p) => p.document.name)).not.toEqual(once.products.map((p) => p.document.name));

    const db = await migratedDb('seed_grow');
    await seed(db, SMALL);
    const before = await db.collection('products').find().sort({ _id: 1 }).toArray();
    const grown = await seed(db, { ...SMALL, products: 150, customers: 40 });
    expect(grown.collections.slice(0, 2).map(({ inserted, present }) => ({ inserted, present }))).toEqual([
      { inserted: 30, present: 120 },
      { inserted: 10, present: 30 },
    ]);
    const skus = before.map((p) => p.sku);
    const after = await db
      .collection('products')
      .find({ sku: { $in: skus } })
      .sort({ _id: 1 })
      .toArray();
    expect(EJSON.stringify(after)).toBe(EJSON.stringify(before));
  });

  it('refuses a database without collections, and creates none', async () => {
    const name = testDatabaseName('seed_unmigrated');
    databases.push(name);
    const db = client.db(name);
    await expect(seed(db, SMALL)).rejects.toThrow(NO_COLLECTIONS_MESSAGE);
    expect(await db.listCollections().toArray()).toEqual([]);
  });

  describe('the command line', () => {
    const run = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/seed.ts', ...args], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.on('error', reject);
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });

    it('seeds through MONGODB_URI and reports per collection, then finds everything present', async () => {
      const name = testDatabaseName('seed_cli');
      databases.push(name);
      await migrateDatabase(name);
      const env = { MONGODB_URI: inject('mongoUri'), MONGODB_DB: name };

      const first = await run(['--products', '40', '--customers', '5', '--seed', '3'], env);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/products\s+40 inserted,\s+0 already present/);
      expect(first.stdout).toMatch(/customers\s+5 inserted,\s+0 already present/);
      expect(first.stdout).toMatch(/stock\s+\d+ inserted,\s+0 already present/);
      expect(first.stdout).toMatch(/seeded in \d+\.\d s/);

      const second = await run(['--products', '40', '--customers', '5', '--seed', '3'], env);
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/products\s+0 inserted,\s+40 already present/);
      expect(second.stdout).toMatch(/customers\s+0 inserted,\s+5 already present/);
    });

    it('exits 1 with a clear message on an unmigrated database, bad options and a bad environment', async () => {
      const name = testDatabaseName('seed_cli_empty');
      databases.push(name);
      const empty = await run([], { MONGODB_URI: inject('mongoUri'), MONGODB_DB: name });
      expect(empty.code).toBe(1);
      expect(empty.stderr).toBe(`storekeeper seed: ${NO_COLLECTIONS_MESSAGE}\n`);

      const badOption = await run(['--products', 'many'], { MONGODB_URI: inject('mongoUri'), MONGODB_DB: name });
      expect(badOption.code).toBe(1);
      expect(badOption.stderr).toContain('--products must be an integer');

      const badEnv = await run([], {
        MONGODB_URI: 'mongodb://user:hunter2@db:27017/?replicaSet=rs0',
        MONGODB_DB: 'no spaces',
        EMBEDDED_MONGODB_PORT: 'x',
      });
      expect(badEnv.code).toBe(1);
      expect(badEnv.stderr).toContain('MONGODB_DB must be');
      expect(badEnv.stderr).toContain('EMBEDDED_MONGODB_PORT must be an integer');
      expect(badEnv.stderr).not.toContain('hunter2');
    });
  });
});
