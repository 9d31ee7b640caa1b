// The backup's files are what mongodump writes and mongorestore reads (mongorestore itself is not
// installed here, so the format is checked against its definition): DIR/<db>/<collection>.bson, a
// plain concatenation of BSON documents, and DIR/<db>/<collection>.metadata.json, canonical
// Extended JSON v2 with options, indexes, uuid, collectionName and type.

import { readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupDatabase } from '../../src/backup/dump.ts';
import type { Manifest } from '../../src/backup/manifest.ts';
import { seed } from '../../src/cli/seed.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { backupDir, newClient, type Db } from './helpers.ts';

const { BSON } = mongoose.mongo;
const { EJSON } = BSON;

describe('the backup format, as mongorestore reads it', () => {
  const source = testDatabaseName('backup_format');
  const client = newClient();
  let db: Db;
  let dir: string;
  let manifest: Manifest;

  const metadataText = (collection: string) => readFile(join(dir, source, `${collection}.metadata.json`), 'utf8');
  // Relaxed: numbers as JavaScript numbers, to compare with literals and with what the driver lists.
  const metadata = async (collection: string) =>
    EJSON.parse(await metadataText(collection), { relaxed: true }) as Record<string, any>;
  const index = async (collection: string, name: string) =>
    (await metadata(collection)).indexes.find((i: { name: string }) => i.name === name);

  beforeAll(async () => {
    dir = await backupDir('format');
    await migrateDatabase(source);
    await client.connect();
    db = client.db(source);
    await seed(db, { products: 60, customers: 15, seed: 4 });
    manifest = await backupDatabase(db, { out: dir });
  });
  afterAll(async () => {
    await client.close();
    await dropDatabase(source);
    await rm(dirname(dir), { recursive: true, force: true });
  });

  it('lays out DIR/<db>/<collection>.bson and .metadata.json for every collection, and the manifest beside them', async () => {
    expect((await readdir(dir)).sort()).toEqual(['manifest.json', source]);
    const expected = manifest.collections.flatMap((c) => [`${c.name}.bson`, `${c.name}.metadata.json`]);
    expect((await readdir(join(dir, source))).sort()).toEqual(expected.sort());
    const live = (await db.listCollections({}, { nameOnly: true }).toArray())
      .map((c) => c.name)
      .filter((name) => name !== 'migrations_lock');
    expect(manifest.collections.map((c) => c.name).sort()).toEqual(live.sort());
  });

  it("writes metadata as canonical Extended JSON, members in mongodump's order", async () => {
    const raw = JSON.parse(await metadataText('products'));
    expect(Object.keys(raw)).toEqual(['options', 'indexes', 'uuid', 'collectionName', 'type']);
    expect(raw.indexes[0].v).toEqual({ $numberInt: '2' });
    expect(raw).toMatchObject({
      collectionName: 'products',
      type: 'collection',
      uuid: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
  });

  it("holds each collection's options and indexes as listCollections and listIndexes give them, without ns", async () => {
    for (const entry of manifest.collections) {
      const [info] = await db.listCollections({ name: entry.name }).toArray();
      const indexes = await db.collection(entry.name).listIndexes().toArray();
      const stored = await metadata(entry.name);
      // Compared as canonical Extended JSON: the types must match too, not only the values.
      const canonical = (value: unknown) => EJSON.stringify(value, { relaxed: false });
      expect(canonical(EJSON.parse(await metadataText(entry.name), { relaxed: false }).options)).toBe(
        canonical((info as { options: unknown }).options),
      );
      expect(canonical(EJSON.parse(await metadataText(entry.name), { relaxed: false }).indexes)).toBe(
        canonical(indexes),
      );
      expect(stored.uuid).toBe(
        Buffer.from((info as { info: { uuid: mongoose.mongo.Binary } }).info.uuid.buffer).toString('hex'),
      );
      for (const stored_ of stored.indexes) {
        expect(stored_).not.toHaveProperty('ns');
        expect(Object.keys(stored_)).toEqual(expect.arrayContaining(['v', 'key', 'name']));
      }
    }
  });

  it('keeps the options mongorestore recreates: validators, collation, unique, partial, TTL and text indexes', async () => {
    expect((await metadata('products')).options).toMatchObject({
      validator: { $jsonSchema: expect.any(Object) },
      validationLevel: 'strict',
      validationAction: 'error',
    });
    expect((await metadata('customers')).options.collation).toMatchObject({ locale: 'en', strength: 2 });
    expect(await index('customers', 'email_unique')).toMatchObject({
      unique: true,
      collation: { locale: 'en', strength: 2 },
    });
    expect(await index('products', 'gtin_unique_when_present')).toMatchObject({
      unique: true,
      partialFilterExpression: { gtin: { $exists: true } },
    });
    expect(await index('products', 'text')).toMatchObject({
      weights: { name: 5, description: 1 },
      default_language: 'english',
    });
    expect(await index('idempotency_records', 'expires')).toMatchObject({ expireAfterSeconds: 0 });
  });

  it('writes each .bson file as a plain concatenation of BSON documents, readable with nothing but their length prefixes', async () => {
    for (const entry of manifest.collections) {
      const bytes = await readFile(join(dir, entry.bson.path));
      const documents: unknown[] = [];
      for (let offset = 0; offset < bytes.length;) {
        const length = bytes.readInt32LE(offset);
        documents.push(BSON.deserialize(bytes.subarray(offset, offset + length)));
        offset += length;
      }
      expect(documents).toHaveLength(entry.documents);
      expect(bytes.length).toBe(entry.bsonBytes);
      const live = await db.collection(entry.name).find().sort({ _id: 1 }).toArray();
      expect(EJSON.stringify(documents, { relaxed: false })).toBe(EJSON.stringify(live, { relaxed: false }));
    }
  });
});
