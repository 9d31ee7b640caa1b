// Running the migrations: up, down and up again; adopting collections that already hold
// documents; refusing what cannot be adopted. Through migrateUp and migrate-mongo's own down.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import mongoose from 'mongoose';
import { down } from 'migrate-mongo';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import { MIGRATION_SETTINGS, migrateUp, migrationStatus } from '../../src/data/migrations.ts';
import { MIGRATION_FILES, dropDatabase, testDatabaseName } from '../helpers/app.ts';

const ALL_PENDING = MIGRATION_FILES.map((fileName) => ({ fileName, appliedAt: 'PENDING' }));
const { changelogCollectionName, lockCollectionName } = MIGRATION_SETTINGS;

describe('migrations', () => {
  const client = new mongoose.mongo.MongoClient(inject('mongoUri'));
  const databases: string[] = [];
  const freshDb = (label: string) => {
    const name = testDatabaseName(label);
    databases.push(name);
    return client.db(name);
  };

  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    await client.close();
    for (const name of databases) await dropDatabase(name);
  });

  const collectionNames = async (db: mongoose.mongo.Db) =>
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  const indexNames = async (db: mongoose.mongo.Db, collection: string) =>
    (await db.collection(collection).listIndexes().toArray()).map((i) => i.name as string).sort();
  const declaredIndexNames = (collection: string) =>
    ['_id_', ...ENTITIES.find((e) => e.collection === collection)!.indexes.map((i) => i.name)].sort();
  const entityCollections = ENTITIES.map((e) => e.collection);

  it('goes up, down and up again, with the changelog following', async () => {
    const db = freshDb('migrate_cycle');
    expect(await migrationStatus(db)).toEqual(ALL_PENDING);

    expect(await migrateUp(db, client)).toEqual(MIGRATION_FILES);
    for (const { appliedAt } of await migrationStatus(db)) expect(appliedAt).toBeInstanceOf(Date);
    expect(await migrateUp(db, client)).toEqual([]);

    // migrate-mongo's down reverts the last migration applied, one per call.
    for (const file of [...MIGRATION_FILES].reverse()) expect(await down(db, client)).toEqual([file]);
    expect(await collectionNames(db)).toEqual([changelogCollectionName, lockCollectionName].sort());
    expect(await migrationStatus(db)).toEqual(ALL_PENDING);

    expect(await migrateUp(db, client)).toEqual(MIGRATION_FILES);
    expect(await collectionNames(db)).toEqual(
      [
        ...entityCollections,
        'api_keys',
        'audit_events',
        'idempotency_records',
        'rate_usage',
        'service_secrets',
        'stream_positions',
        changelogCollectionName,
        lockCollectionName,
      ].sort(),
    );
    for (const collection of entityCollections)
      expect(await indexNames(db, collection)).toEqual(declaredIndexNames(collection));
    // Every run released its lock.
    expect(await db.collection(lockCollectionName).countDocuments()).toBe(0);
  });

  it('adopts a collection that already holds documents: keeps them, adds the validator and indexes', async () => {
    const db = freshDb('migrate_adopt');
    const products = db.collection('products');
    await db.createCollection('products');
    await products.createIndex({ sku: 1 }, { name: 'sku_unique', unique: true }, {});
    const legacy = { _id: new mongoose.mongo.ObjectId(), sku: 'lower case is not a SKU' };
    await products.insertOne(legacy);

    expect(await migrateUp(db, client)).toEqual(MIGRATION_FILES);

    expect(await products.findOne({ _id: legacy._id })).toEqual(legacy);
    expect(await indexNames(db, 'products')).toEqual(declaredIndexNames('products'));
    const [info] = await db.listCollections({ name: 'products' }).toArray();
    expect((info as { options: Record<string, unknown> }).options).toMatchObject({
      validationLevel: 'strict',
      validationAction: 'error',
    });
    await expect(products.insertOne({ sku: 'ANOTHER-BAD' })).rejects.toMatchObject({ code: 121 });

    // Running the migration again over its own result changes nothing and fails nowhere.
    await db.collection(changelogCollectionName).deleteMany({});
    expect(await migrateUp(db, client)).toEqual(MIGRATION_FILES);
    for (const collection of entityCollections)
      expect(await indexNames(db, collection)).toEqual(declaredIndexNames(collection));
    expect(await products.countDocuments()).toBe(1);
  });

  it('refuses to adopt a customers collection without the case-insensitive collation, and releases the lock', async () => {
    const db = freshDb('migrate_collation');
    await db.createCollection('customers');

    await expect(migrateUp(db, client)).rejects.toThrow(/customers exists with collation simple, not en\/2/);
    expect(await migrationStatus(db)).toEqual(ALL_PENDING);
    expect(await db.collection(lockCollectionName).countDocuments()).toBe(0);
  });

  it('lets one run hold the lock at a time', async () => {
    const db = freshDb('migrate_lock');
    await migrateUp(db, client);
    await db.collection(changelogCollectionName).deleteMany({});
    // A lock left by another run (or a crashed one, until it expires).
    await db.collection(lockCollectionName).insertOne({ createdAt: new Date() });
    await expect(migrateUp(db, client)).rejects.toThrow(/lock is in place/);
    // The index that turns the check-then-insert race into a duplicate key.
    await expect(db.collection(lockCollectionName).insertOne({ createdAt: new Date() })).rejects.toMatchObject({
      code: 11000,
    });
  });
});
