// The restore's guarantees: a gzip backup comes back identical (documents with their types,
// validators, collations, indexes), a target holding data is replaced only when asked, and a
// restore that fails, while building or while moving into place, leaves the target as it was.

import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupDatabase } from '../../src/backup/dump.ts';
import { formatManifest, type Manifest } from '../../src/backup/manifest.ts';
import type { ProgressEvent } from '../../src/backup/progress.ts';
import { RestoreError, restoreDatabase } from '../../src/backup/restore.ts';
import { seed } from '../../src/cli/seed.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { backupDir, contentsOf, databaseNames, newClient, schemaOf, type Db } from './helpers.ts';

const { BSON } = mongoose.mongo;

describe('restoring a backup', () => {
  const source = testDatabaseName('backup_restore');
  const databases = [source];
  const client = newClient();
  let gzipped: string;
  let manifest: Manifest;

  /** A database name of this file's own, dropped after it. */
  const fresh = (label: string) => {
    const name = testDatabaseName(label);
    databases.push(name);
    return name;
  };
  const collectionsOf = async (db: Db) =>
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  /** What a database holds: every document and the schema. */
  const stateOf = async (db: Db) => ({
    contents: await contentsOf(db, await collectionsOf(db)),
    schema: await schemaOf(db),
  });
  const noLeftovers = async (db: Db) => {
    expect((await collectionsOf(db)).filter((name) => name.startsWith('restore_replaced_'))).toEqual([]);
    // Staging databases are named after their target (other files restore on this server too).
    expect(
      (await databaseNames(client)).filter((name) => name.startsWith(`${db.databaseName.slice(0, 40)}_restoring_`)),
    ).toEqual([]);
  };

  beforeAll(async () => {
    gzipped = await backupDir('restore-gzip');
    await migrateDatabase(source);
    await client.connect();
    const db = client.db(source);
    await seed(db, { products: 60, customers: 20, seed: 9 });
    // Types the restore must keep: a 64-bit price amount (the validator allows int and long).
    await db.collection('products').updateOne({}, { $set: { 'price.amount': mongoose.mongo.Long.fromNumber(4242) } });
    manifest = await backupDatabase(db, { out: gzipped, gzip: true });
  });
  afterAll(async () => {
    await client.close();
    for (const name of databases) await dropDatabase(name);
    await rm(dirname(gzipped), { recursive: true, force: true });
  });

  it('a gzip backup holds gzip files and comes back identical: documents with their types, validators, collations, indexes', async () => {
    const files = await readdir(join(gzipped, source));
    expect(files.length).toBe(manifest.collections.length * 2);
    expect(files.every((file) => file.endsWith('.bson.gz') || file.endsWith('.metadata.json.gz'))).toBe(true);
    expect((await readFile(join(gzipped, source, 'products.bson.gz'))).subarray(0, 2)).toEqual(
      Buffer.from([0x1f, 0x8b]),
    );

    const target = fresh('backup_restore_gzip');
    const result = await restoreDatabase(client, target, { from: gzipped });
    expect(result).toMatchObject({ database: target, replaced: [] });
    const restored = client.db(target);
    expect(await stateOf(restored)).toEqual(await stateOf(client.db(source)).then(withoutLock));
    const product = await restored.collection('products').findOne({ 'price.amount': 4242 }, { promoteLongs: false });
    expect(product!.price.amount).toBeInstanceOf(mongoose.mongo.Long);
    // The validator is in force again.
    const refused = await restored
      .collection('products')
      .insertOne({ sku: 'no name' })
      .catch((e: unknown) => e);
    expect((refused as { code?: number }).code).toBe(121);
    await noLeftovers(restored);
  });

  describe('into a database that holds collections', () => {
    const target = fresh('backup_restore_target');

    beforeAll(async () => {
      await migrateDatabase(target);
      await seed(client.db(target), { products: 10, customers: 5, seed: 2 });
      await client.db(target).collection('leftover').insertOne({ note: 'not in the backup' });
    });

    it('refuses without --replace, naming what is there, and changes nothing', async () => {
      const before = await stateOf(client.db(target));
      const error = await restoreDatabase(client, target, { from: gzipped }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RestoreError);
      expect((error as Error).message).toMatch(
        /is not empty \(\d+ collections: api_keys, .*\); restore into an empty database, or pass --replace/,
      );
      expect(await stateOf(client.db(target))).toEqual(before);
      await noLeftovers(client.db(target));
    });

    it('with --replace, replaces every collection, those the backup does not hold included', async () => {
      const result = await restoreDatabase(client, target, { from: gzipped, replace: true });
      expect(result.replaced).toEqual(expect.arrayContaining(['leftover', 'migrations_lock', 'products']));
      expect(await stateOf(client.db(target))).toEqual(await stateOf(client.db(source)).then(withoutLock));
      await noLeftovers(client.db(target));
    });

    it('a --replace that fails while moving collections into place puts the old ones back, data and schema', async () => {
      const db = client.db(target);
      await db.collection('customers').deleteMany({});
      await db.collection('extra').insertOne({ kept: true });
      const before = await stateOf(db);
      const error = await restoreDatabase(client, target, {
        from: gzipped,
        replace: true,
        progress: failingAtThirdMove(),
      }).catch((e: unknown) => e);
      expect((error as Error).message).toBe('connection lost while moving');
      expect(await stateOf(db)).toEqual(before);
      await noLeftovers(db);
    });
  });

  it('a restore that fails while moving into an empty database leaves it empty, and no staging database', async () => {
    const target = fresh('backup_restore_midway');
    const moved: string[] = [];
    const fail = failingAtThirdMove();
    const progress = (event: ProgressEvent) => {
      if (event.event === 'collection-moved') moved.push(event.collection as string);
      fail(event);
    };
    const error = await restoreDatabase(client, target, { from: gzipped, progress }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('connection lost while moving');
    expect(moved).toHaveLength(3);
    expect(await collectionsOf(client.db(target))).toEqual([]);
    await noLeftovers(client.db(target));
  });

  it('a backup whose documents break a unique index fails in staging: no target, no staging database', async () => {
    // Checksums vouch for what was written, not for what a writer should have written: a product
    // is duplicated (new _id, same SKU) and the manifest recomputed to match.
    const damaged = await backupDir('restore-duplicate');
    try {
      const crafted = await backupDatabase(client.db(source), { out: damaged });
      const entry = crafted.collections.find((c) => c.name === 'products')!;
      const path = join(damaged, entry.bson.path);
      const bytes = await readFile(path);
      const first = BSON.deserialize(bytes.subarray(0, bytes.readInt32LE(0)), { promoteValues: false });
      const duplicate = Buffer.from(
        BSON.serialize({ ...first, _id: new mongoose.mongo.ObjectId('ffffffffffffffffffffffff') }),
      );
      const content = Buffer.concat([bytes, duplicate]);
      await writeFile(path, content);
      const sha = createHash('sha256').update(content).digest('hex');
      Object.assign(entry, {
        documents: entry.documents + 1,
        bsonBytes: content.length,
        bsonSha256: sha,
        bson: { ...entry.bson, bytes: content.length, sha256: sha },
      });
      crafted.totals.documents += 1;
      crafted.totals.bsonBytes += duplicate.length;
      crafted.totals.storedBytes += duplicate.length;
      await writeFile(join(damaged, 'manifest.json'), formatManifest(crafted));

      const target = fresh('backup_restore_duplicate');
      const error = await restoreDatabase(client, target, { from: damaged }).catch((e: unknown) => e);
      expect((error as { code?: number }).code).toBe(11000);
      expect(await databaseNames(client)).not.toContain(target);
      await noLeftovers(client.db(target));
    } finally {
      await rm(dirname(damaged), { recursive: true, force: true });
    }
  });

  it('the gzip files decompress to exactly the bytes of an uncompressed backup', async () => {
    const plain = await backupDir('restore-plain');
    try {
      const again = await backupDatabase(client.db(source), { out: plain });
      for (const entry of again.collections) {
        const zipped = manifest.collections.find((c) => c.name === entry.name)!;
        expect(gunzipSync(await readFile(join(gzipped, zipped.bson.path)))).toEqual(
          await readFile(join(plain, entry.bson.path)),
        );
        expect(gunzipSync(await readFile(join(gzipped, zipped.metadata.path))).toString()).toBe(
          await readFile(join(plain, entry.metadata.path), 'utf8'),
        );
        expect(zipped.bsonSha256).toBe(entry.bsonSha256);
      }
    } finally {
      await rm(dirname(plain), { recursive: true, force: true });
    }
  });
});

/** A progress callback that throws at the third collection moved: a failure midway through the move. */
function failingAtThirdMove(): (event: ProgressEvent) => void {
  let moves = 0;
  return (event) => {
    if (event.event === 'collection-moved' && ++moves === 3) throw new Error('connection lost while moving');
  };
}

/** The source as a backup holds it: the migration lock is never backed up. */
function withoutLock(state: { contents: Record<string, unknown[]>; schema: Record<string, unknown> }) {
  const { migrations_lock: _contents, ...contents } = state.contents;
  const { migrations_lock: _schema, ...schema } = state.schema;
  return { contents, schema };
}
