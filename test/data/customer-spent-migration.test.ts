// The migration of customers' stats.spent from a record keyed by currency to an array of Money,
// over documents written in the old shape: up, down and up again, with every other byte of each
// document untouched; the validator and index each direction leaves; interrupted runs resumed; and
// the documents it refuses to convert.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import mongoose from 'mongoose';
import { loadMigration, type MigrationModule } from '../../src/data/migrations.ts';
import { dropDatabase, testDatabaseName } from '../helpers/app.ts';

const { BSON } = mongoose.mongo;
type Db = mongoose.mongo.Db;
type Doc = Record<string, any>;

const FIRST = '20261125000000-create-collections.js';
const SPENT = '20261125100000-customer-spent-as-money.js';

interface SpentMigration extends MigrationModule {
  reshape(
    db: Db,
    direction: 'up' | 'down',
    options?: { batchSize?: number; maxBatches?: number; log?: (line: string) => void },
  ): Promise<number>;
  EITHER_VALIDATOR: Doc;
  MONEY_VALIDATOR: Doc;
}

const COUNT = 300;
const CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'JPY'];

/** A customer as the first migration's declaration had it; every fourth one never ordered. */
function oldCustomer(i: number): Doc {
  const spent: Doc = {};
  if (i % 4 === 1) spent.EUR = 1000 + i;
  if (i % 4 === 2) {
    // Several currencies, keys in no particular order: the order must survive both ways.
    spent.USD = 5 * i;
    spent.EUR = i;
    spent.JPY = 100_000 + i;
  }
  // A 64-bit amount (the record allowed long) and a zero one.
  if (i % 4 === 3) Object.assign(spent, { [CURRENCIES[i % 5]!]: BSON.Long.fromNumber(7 * i), ZAR: 0 });
  const createdAt = new Date(Date.UTC(2026, 0, 1) + i * 3_600_000);
  const ordered = Object.keys(spent).length > 0;
  return {
    _id: new BSON.ObjectId(),
    email: `old-${i}@example.com`,
    name: `Customer ${i}`,
    ...(i % 5 === 0 ? { phone: '+31201234567' } : {}),
    addresses:
      i % 3 === 0
        ? []
        : [{ label: 'home', line1: `${i} Main Street`, city: 'Amsterdam', postalCode: '1011 AB', country: 'NL' }],
    marketingOptIn: i % 2 === 0,
    // lastOrderAt after spent: its place in stats must not move either.
    stats: {
      orderCount: ordered ? 1 + (i % 7) : 0,
      spent,
      ...(ordered ? { lastOrderAt: new Date(createdAt.getTime() + 86_400_000) } : {}),
    },
    version: 1 + (i % 9),
    createdAt,
    updatedAt: new Date(createdAt.getTime() + i * 1000),
  };
}

/** The stored documents as the server returns their bytes, in _id order. */
async function rawDocuments(db: Db): Promise<Buffer[]> {
  return (await db
    .collection('customers')
    .find({}, { sort: { _id: 1 }, raw: true })
    .toArray()) as unknown as Buffer[];
}

/** Keeps BSON types (int, long, double) so that serializing again gives back the same bytes. */
const decode = (raw: Buffer): Doc => BSON.deserialize(raw, { promoteValues: false });
const encode = (doc: Doc): Buffer => Buffer.from(BSON.serialize(doc));

function withoutSpent(raw: Buffer): Buffer {
  const doc = decode(raw);
  delete doc.stats.spent;
  return encode(doc);
}

/** The record converted by hand: one { currency, amount } per key, in key order, types kept. */
const expectedMoney = (raw: Buffer) =>
  Object.entries(decode(raw).stats.spent as Doc).map(([currency, amount]) => ({ currency, amount }));

async function customersOptions(db: Db): Promise<Doc> {
  const [info] = await db.listCollections({ name: 'customers' }).toArray();
  return (info as { options: Doc }).options;
}

const indexNames = async (db: Db) =>
  (await db.collection('customers').listIndexes().toArray()).map((index) => index.name as string);

describe(`migration ${SPENT}`, () => {
  const client = new mongoose.mongo.MongoClient(inject('mongoUri'));
  let first: MigrationModule;
  let migration: SpentMigration;
  const databases: string[] = [];
  const quiet = { log: () => {} };

  /** A database in the state of the first migration, holding COUNT customers of the old shape. */
  async function oldDatabase(label: string): Promise<{ db: Db; originals: Buffer[] }> {
    const name = testDatabaseName(label);
    databases.push(name);
    const db = client.db(name);
    await first.up(db, client);
    await db.collection('customers').insertMany(Array.from({ length: COUNT }, (_, i) => oldCustomer(i)));
    return { db, originals: await rawDocuments(db) };
  }

  /** Every document in the new shape, converted from its original, and nothing else changed. */
  function expectConverted(originals: Buffer[], current: Buffer[]): void {
    expect(current).toHaveLength(originals.length);
    current.forEach((raw, i) => {
      const original = originals[i]!;
      expect(decode(raw)._id).toEqual(decode(original)._id);
      expect(encode({ spent: decode(raw).stats.spent })).toEqual(encode({ spent: expectedMoney(original) }));
      expect(withoutSpent(raw)).toEqual(withoutSpent(original));
    });
  }

  beforeAll(async () => {
    await client.connect();
    first = await loadMigration(FIRST);
    migration = (await loadMigration(SPENT)) as SpentMigration;
  });
  afterAll(async () => {
    await client.close();
    for (const name of databases) await dropDatabase(name);
  });

  it('up converts every document and nothing else; down restores each byte; up again gives the same result', async () => {
    const { db, originals } = await oldDatabase('spent_cycle');
    const customers = db.collection('customers');
    const recordValidator = (await customersOptions(db)).validator;

    await migration.up(db, client);
    const afterUp = await rawDocuments(db);
    expectConverted(originals, afterUp);
    // The deep-equal view of the same: the document minus stats.spent, as the driver reads it.
    const byId = new Map(originals.map((raw) => [String(decode(raw)._id), BSON.deserialize(raw)]));
    for (const raw of afterUp) {
      const {
        stats: { spent, ...stats },
        ...rest
      } = BSON.deserialize(raw);
      const {
        stats: { spent: oldSpent, ...oldStats },
        ...oldRest
      } = byId.get(String(rest._id))!;
      expect({ ...rest, stats }).toEqual({ ...oldRest, stats: oldStats });
      expect(spent).toEqual(Object.entries(oldSpent).map(([currency, amount]) => ({ currency, amount })));
    }
    expect(await customers.countDocuments({ 'stats.spent': [] })).toBe(COUNT / 4);

    const options = await customersOptions(db);
    // The validator it declares it leaves; later migrations respell it (test/data/schema-drift.test.ts
    // holds the whole chain to the declaration).
    expect(options.validator).toEqual(migration.MONEY_VALIDATOR);
    expect(options).toMatchObject({ validationLevel: 'strict', validationAction: 'error' });
    expect(await indexNames(db)).toContain('spent_by_currency');
    // The old shape is refused now; the new one is what the index serves.
    await expect(
      customers.insertOne({
        ...oldCustomer(COUNT),
        _id: new BSON.ObjectId(),
        stats: { orderCount: 1, spent: { EUR: 5 } },
      }),
    ).rejects.toMatchObject({ code: 121 });
    await expect(
      customers.updateOne({ _id: decode(afterUp[1]!)._id }, { $set: { 'stats.spent': { EUR: 5 } } }),
    ).rejects.toMatchObject({ code: 121 });
    const bigEuroSpenders = () =>
      customers.find({ 'stats.spent': { $elemMatch: { currency: 'EUR', amount: { $gte: 1200 } } } });
    expect(JSON.stringify(await bigEuroSpenders().explain('queryPlanner'))).toContain(
      '"indexName":"spent_by_currency"',
    );
    expect(await bigEuroSpenders().toArray()).toHaveLength(
      originals.filter((raw) => Number(decode(raw).stats.spent.EUR ?? 0) >= 1200).length,
    );

    await migration.down(db, client);
    expect(await rawDocuments(db)).toEqual(originals);
    // Byte equality implies it, but this is the comparison a reader expects.
    expect((await rawDocuments(db)).map((raw) => BSON.deserialize(raw))).toEqual(
      originals.map((raw) => BSON.deserialize(raw)),
    );
    expect((await customersOptions(db)).validator).toEqual(recordValidator);
    expect(await indexNames(db)).not.toContain('spent_by_currency');

    await migration.up(db, client);
    expect(await rawDocuments(db)).toEqual(afterUp);
    expect(await customers.countDocuments()).toBe(COUNT);
  });

  it('resumes an interrupted up after its first batch and an interrupted down: each document converted once', async () => {
    const { db, originals } = await oldDatabase('spent_resume');
    const customers = db.collection('customers');

    // What up does before an interruption: relax the validator, convert one batch.
    await db.command({ collMod: 'customers', validator: migration.EITHER_VALIDATOR });
    expect(await migration.reshape(db, 'up', { ...quiet, batchSize: 100, maxBatches: 1 })).toBe(100);
    expect(await customers.countDocuments({ 'stats.spent': { $type: 'array' } })).toBe(100);

    const lines: string[] = [];
    // The rest, as the rerun's reshape step sees it: only the documents still in the record shape.
    expect(await migration.reshape(db, 'up', { batchSize: 100, log: (line) => lines.push(line) })).toBe(COUNT - 100);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^batch 2: 100 documents, total 200, \d+ docs\/s$/);
    await migration.up(db, client);
    const afterUp = await rawDocuments(db);
    expectConverted(originals, afterUp);

    await db.command({ collMod: 'customers', validator: migration.EITHER_VALIDATOR });
    await db.collection('customers').dropIndex('spent_by_currency');
    expect(await migration.reshape(db, 'down', { ...quiet, batchSize: 100, maxBatches: 2 })).toBe(200);
    await migration.down(db, client);
    expect(await rawDocuments(db)).toEqual(originals);
  });

  it('runs again over its own result without changing a byte', async () => {
    const { db, originals } = await oldDatabase('spent_rerun');
    await migration.up(db, client);
    const afterUp = await rawDocuments(db);
    expect(await migration.reshape(db, 'up', quiet)).toBe(0);
    await migration.up(db, client);
    expect(await rawDocuments(db)).toEqual(afterUp);
    await migration.down(db, client);
    await migration.down(db, client);
    expect(await rawDocuments(db)).toEqual(originals);
  });

  it('refuses, before changing anything, what it cannot convert: records the array cannot hold, invalid documents, a currency twice', async () => {
    const { db, originals } = await oldDatabase('spent_refuse');
    const customers = db.collection('customers');
    const recordValidator = (await customersOptions(db)).validator;
    const huge: Doc = {
      ...oldCustomer(COUNT),
      stats: { orderCount: 1, spent: { EUR: BSON.Long.fromNumber(2 ** 31) } },
    };
    await customers.insertOne(huge);

    // A document the first migration adopted as it was: invalid elsewhere, no update of it passes.
    const adopted: Doc = { ...oldCustomer(COUNT + 1), name: '' };
    await customers.insertOne(adopted, { bypassDocumentValidation: true });

    await expect(migration.up(db, client)).rejects.toThrow(
      `documents with an amount over 2^31-1, more than 20 currencies, or a field the validator refuses cannot be converted (${String(huge._id)}, ${String(adopted._id)}); nothing was changed`,
    );
    expect((await customersOptions(db)).validator).toEqual(recordValidator);
    expect((await rawDocuments(db)).slice(0, COUNT)).toEqual(originals);

    await customers.deleteMany({ _id: { $in: [huge._id, adopted._id] } });
    await migration.up(db, client);
    const twice: Doc = {
      ...oldCustomer(COUNT + 2),
      stats: {
        orderCount: 2,
        spent: [
          { currency: 'EUR', amount: 1 },
          { currency: 'EUR', amount: 2 },
        ],
      },
    };
    // The array's validator cannot forbid a currency twice; down would have to drop one of them.
    await customers.insertOne(twice);
    const before = await rawDocuments(db);
    await expect(migration.down(db, client)).rejects.toThrow(
      `two entries of one currency, or a field the validator refuses cannot be converted (${String(twice._id)})`,
    );
    expect(await rawDocuments(db)).toEqual(before);
    expect(await indexNames(db)).toContain('spent_by_currency');
  });
});
