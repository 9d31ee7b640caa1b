// The restore: a verified backup into a database, all or nothing.
//
// 1. The whole backup is verified (src/backup/verify.ts) before any database is touched: a
//    damaged or partial backup is refused, naming its files.
// 2. The target must be empty, unless the caller asked to replace it.
// 3. Everything is built in a staging database of its own: each collection created with its
//    options (validator, collation...), its documents inserted, then read back and compared with
//    the manifest (count and SHA-256 of the BSON, in the same _id order the backup used), then
//    its indexes built. A failure here drops the staging database; the target never saw a thing.
// 4. Only then do the collections move under the target name (renameCollection across
//    databases). When replacing, the target's collections are first renamed aside within the
//    target (a metadata-only rename), and dropped once every restored collection is in place. A
//    failure while moving undoes the moves and puts the set-aside collections back.
//
// Only a process killed during step 4 (a few renames) can leave a mix behind; the events name
// the staging database and what was set aside, to finish or undo by hand.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import mongoose from 'mongoose';
import { readAt } from './dump.ts';
import { readStoredFile } from './files.ts';
import { bsonDocuments, decodeForInsert, parseMetadata, sha256, type Document } from './format.ts';
import type { CollectionEntry, Manifest } from './manifest.ts';
import { megabytes, plural, seconds, silent, throttled, type Progress } from './progress.ts';
import { BackupInvalidError, verifyBackup } from './verify.ts';

type Db = mongoose.mongo.Db;
type MongoClient = mongoose.mongo.MongoClient;

/** Documents per insertMany, and the most bytes of BSON one may carry (MongoDB caps a batch at 48 MB). */
const INSERT_BATCH_DOCUMENTS = 1000;
const INSERT_BATCH_BYTES = 8 * 1024 * 1024;
const INSERTS_IN_FLIGHT = 2;
/** Databases the server keeps for itself: never a restore's target. */
const SERVER_DATABASES = ['admin', 'local', 'config'];
const PROGRESS_INTERVAL_MS = 1000;

export interface RestoreOptions {
  /** The backup directory. */
  from: string;
  /** Replace a target that holds collections; without it such a target is refused. */
  replace?: boolean;
  progress?: Progress;
}

export interface RestoreResult {
  database: string;
  manifest: Manifest;
  /** Collections of the target that were replaced (dropped once the restore was in place). */
  replaced: string[];
  ms: number;
}

/** An expected failure of the restore, with a message that says what to do. */
export class RestoreError extends Error {
  override name = 'RestoreError';
}

/** Restores the backup in `options.from` into the database `dbName` of `client`. */
export async function restoreDatabase(
  client: MongoClient,
  dbName: string,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const progress = options.progress ?? silent;
  const started = Date.now();
  if (SERVER_DATABASES.includes(dbName))
    throw new RestoreError(`${dbName} is one of the server's own databases; restore into a database of the service`);
  const report = await verifyBackup(options.from, progress);
  const { manifest } = report;
  if (!report.ok || manifest === undefined) throw new BackupInvalidError(report);
  progress({
    event: 'backup-verified',
    message:
      `the backup is intact: ${manifest.totals.documents} documents of ${manifest.collections.length} collections ` +
      `of ${manifest.database} as of ${manifest.snapshotAt} (${seconds(report.ms)})`,
    ms: report.ms,
  });

  const target = client.db(dbName);
  const existing = await userCollections(target);
  if (existing.length > 0 && options.replace !== true) throw notEmpty(dbName, existing);

  const staging = client.db(await stagingName(client, dbName));
  const replacing = existing.length > 0 ? ` (replacing its ${existing.length} collections)` : '';
  progress({
    event: 'restore-started',
    message: `restoring into ${dbName} through the staging database ${staging.databaseName}${replacing}`,
    database: dbName,
    staging: staging.databaseName,
    replacing: existing,
  });
  let replaced: string[];
  try {
    // One collection at a time: concurrent creations are more than some mongod builds survive.
    for (const entry of manifest.collections) await restoreCollection(staging, options.from, manifest, entry, progress);
    replaced = await moveIntoPlace(client, staging, target, manifest, options.replace === true, progress);
  } finally {
    await staging.dropDatabase().catch((error: unknown) =>
      progress({
        event: 'cleanup-failed',
        message:
          `could not drop the staging database ${staging.databaseName}: ${(error as Error).message}; drop it ` +
          `by hand`,
        staging: staging.databaseName,
      }),
    );
  }
  const ms = Date.now() - started;
  progress({
    event: 'restore-done',
    message:
      `restored ${manifest.totals.documents} documents of ${manifest.collections.length} collections into ` +
      `${dbName} in ${seconds(ms)}`,
    database: dbName,
    documents: manifest.totals.documents,
    collections: manifest.collections.length,
    ms,
  });
  return { database: dbName, manifest, replaced, ms };
}

/** The collections of a database that a restore would replace: all but the server's own. */
async function userCollections(db: Db): Promise<string[]> {
  const infos = await db.listCollections({}, { nameOnly: true }).toArray();
  return infos
    .map((info) => info.name)
    .filter((name) => !name.startsWith('system.'))
    .sort();
}

function notEmpty(dbName: string, existing: string[]): RestoreError {
  const shown = existing.slice(0, 8).join(', ') + (existing.length > 8 ? ', ...' : '');
  const collections = `${existing.length} collection${existing.length === 1 ? '' : 's'}`;
  return new RestoreError(
    `the database ${dbName} is not empty (${collections}: ${shown}); ` +
      'restore into an empty database, or pass --replace to replace this one',
  );
}

/** A fresh database name next to the target's, recognisable as a restore's if one is left over. */
async function stagingName(client: MongoClient, dbName: string): Promise<string> {
  const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
  const taken = new Set(databases.map((database) => database.name));
  for (;;) {
    // MongoDB database names have at most 63 characters.
    const name = `${dbName.slice(0, 40)}_restoring_${randomBytes(4).toString('hex')}`;
    if (!taken.has(name)) return name;
  }
}

/**
 * One collection into the staging database: created with its options, documents inserted in
 * file order, read back and compared with the manifest, then its indexes built (after the data:
 * one pass per index instead of an update per document).
 */
async function restoreCollection(
  staging: Db,
  dir: string,
  manifest: Manifest,
  entry: CollectionEntry,
  progress: Progress,
): Promise<void> {
  const started = Date.now();
  const metadata = parseMetadata(await readMetadataText(dir, entry, manifest.gzip), entry.name);
  await staging.command({ create: entry.name, ...metadata.options });
  const collection = staging.collection(entry.name);

  const due = throttled(PROGRESS_INTERVAL_MS);
  let inserted = 0;
  let batch: Document[] = [];
  let batchBytes = 0;
  // Two batches in flight: the next is decoded (here) while MongoDB writes the previous one.
  const inFlight: Promise<void>[] = [];
  const send = async () => {
    if (batch.length === 0) return;
    const documents = batch;
    batch = [];
    batchBytes = 0;
    // The documents were valid when stored; a validator changed since may refuse older ones,
    // which a restore must bring back as they were: validation is bypassed, as for a copy.
    const writing = collection.insertMany(documents, { ordered: true, bypassDocumentValidation: true }).then(() => {
      inserted += documents.length;
      if (due())
        progress({
          event: 'restore-progress',
          message: `  ${entry.name}: ${inserted} of ${entry.documents} documents`,
          collection: entry.name,
          documents: inserted,
        });
    });
    // Marked handled now (it is awaited below): a rejection must not count as unhandled meanwhile.
    writing.catch(() => {});
    inFlight.push(writing);
    if (inFlight.length >= INSERTS_IN_FLIGHT) await inFlight.shift();
  };
  try {
    for await (const bytes of bsonDocuments(readStoredFile(dir, entry.bson.path, manifest.gzip))) {
      if (batch.length >= INSERT_BATCH_DOCUMENTS || batchBytes + bytes.length > INSERT_BATCH_BYTES) await send();
      batch.push(decodeForInsert(bytes));
      batchBytes += bytes.length;
    }
    await send();
    await Promise.all(inFlight);
  } finally {
    // Whatever failed, no write may still run when the staging database is dropped.
    await Promise.allSettled(inFlight);
  }

  await compareWithManifest(staging, entry);

  const indexes = metadata.indexes.filter((index) => index.name !== '_id_' && index.clustered !== true);
  if (indexes.length > 0) await staging.command({ createIndexes: entry.name, indexes });
  progress({
    event: 'collection-restored',
    message:
      `  ${entry.name}: ${entry.documents} documents, ` +
      `${plural(metadata.indexes.length, 'index', 'indexes')}, checksum verified (${seconds(Date.now() - started)})`,
    collection: entry.name,
    documents: entry.documents,
    indexes: metadata.indexes.length,
    ms: Date.now() - started,
  });
}

async function readMetadataText(dir: string, entry: CollectionEntry, gzip: boolean): Promise<string> {
  const stored = await readFile(join(dir, entry.metadata.path));
  return (gzip ? gunzipSync(stored) : stored).toString('utf8');
}

/**
 * Reads the restored collection back in the backup's order (_id) and compares the count and the
 * SHA-256 of its BSON with the manifest's: the documents in MongoDB are byte for byte the ones
 * backed up, types included.
 */
async function compareWithManifest(db: Db, entry: CollectionEntry): Promise<void> {
  const hash = sha256();
  let documents = 0;
  let bytes = 0;
  for await (const batch of readAt(db, entry.name, undefined)) {
    for (const document of batch) hash.update(document);
    documents += batch.length;
    bytes += batch.reduce((total, document) => total + document.length, 0);
  }
  const digest = hash.digest('hex');
  if (documents !== entry.documents || bytes !== entry.bsonBytes || digest !== entry.bsonSha256) {
    throw new RestoreError(
      `${entry.name} as restored does not match the backup: ` +
        `${documents} documents, ${megabytes(bytes)}, SHA-256 ${digest}; ` +
        `the manifest records ${entry.documents} documents, ${megabytes(entry.bsonBytes)}, SHA-256 ` +
        `${entry.bsonSha256}. Nothing was changed in the target`,
    );
  }
}

/**
 * Moves the staged collections under the target name; returns the target's replaced collections.
 * Checks the target again first (something may have written to it since), and undoes every step
 * on failure.
 */
async function moveIntoPlace(
  client: MongoClient,
  staging: Db,
  target: Db,
  manifest: Manifest,
  replace: boolean,
  progress: Progress,
): Promise<string[]> {
  const admin = client.db('admin');
  const rename = (from: string, to: string) => admin.command({ renameCollection: from, to });
  const existing = await userCollections(target);
  if (existing.length > 0 && !replace) throw notEmpty(target.databaseName, existing);

  // Set aside under names no collection of the service has, within the target: a rename within
  // a database changes only metadata, so this costs nothing whatever the size.
  const aside = `restore_replaced_${randomBytes(4).toString('hex')}`;
  const parked: string[] = [];
  const moved: string[] = [];
  try {
    for (const name of existing) {
      await rename(`${target.databaseName}.${name}`, `${target.databaseName}.${aside}.${name}`);
      parked.push(name);
    }
    if (parked.length > 0) {
      progress({
        event: 'set-aside',
        message: `set aside the ${parked.length} collections of ${target.databaseName} as ${aside}.*`,
        collections: parked,
        aside,
      });
    }
    for (const entry of manifest.collections) {
      await rename(`${staging.databaseName}.${entry.name}`, `${target.databaseName}.${entry.name}`);
      moved.push(entry.name);
      progress({ event: 'collection-moved', message: `  ${entry.name} is in place`, collection: entry.name });
    }
  } catch (error) {
    await undoMove(target, rename, aside, parked, moved, progress);
    throw error;
  }
  for (const name of parked) await target.collection(`${aside}.${name}`).drop();
  return parked;
}

/**
 * Puts the target back as it was: the moved collections dropped (they came from the staging
 * database, which is dropped after this), the set-aside ones renamed back. Failures are reported
 * and the rest still attempted; the original error is the one thrown.
 */
async function undoMove(
  target: Db,
  rename: (from: string, to: string) => Promise<Document>,
  aside: string,
  parked: string[],
  moved: string[],
  progress: Progress,
): Promise<void> {
  const failures: string[] = [];
  for (const name of moved) {
    await target
      .collection(name)
      .drop()
      .catch((error: unknown) => failures.push(`drop ${name}: ${(error as Error).message}`));
  }
  for (const name of parked) {
    await rename(`${target.databaseName}.${aside}.${name}`, `${target.databaseName}.${name}`).catch((error: unknown) =>
      failures.push(`rename ${aside}.${name} back: ${(error as Error).message}`),
    );
  }
  progress(
    failures.length === 0
      ? {
          event: 'rolled-back',
          message: `the restore failed while moving collections into ${target.databaseName}; the target is as it was`,
          database: target.databaseName,
        }
      : {
          event: 'rollback-failed',
          message:
            `the restore failed while moving collections into ${target.databaseName}, and undoing it failed ` +
            `too: ${failures.join('; ')}`,
          database: target.databaseName,
          failures,
        },
  );
}
