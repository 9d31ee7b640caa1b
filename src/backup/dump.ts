// The backup: every collection of the database (but the migration lock and system.*), each read
// at one and the same cluster time, written in mongodump's directory layout with a manifest.
//
// Consistency: MongoDB 5+ serves snapshot reads outside transactions. The first read picks the
// cluster time (the server's latest majority-committed snapshot, returned as atClusterTime);
// every collection is then read with readConcern { level: "snapshot", atClusterTime } at that
// time, so an order and the stock it reserved are never out of step, while the service goes on
// writing. The server keeps the history such reads need for minSnapshotHistoryWindowInSeconds
// (300 s by default): a backup that takes longer fails with SnapshotTooOld and says so.
//
// Collection options and indexes are not versioned data (listCollections and listIndexes cannot
// read at a cluster time), so they are read before the documents and compared afterwards, with the
// migration changelog: a schema change during the backup fails it instead of recording a mix.

import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { MIGRATION_SETTINGS } from '../data/migrations.ts';
import { SERVICE } from '../version.ts';
import { flushDirectory, flushToDisk, statIfPresent, writeStoredFile } from './files.ts';
import {
  FORMAT_NAME,
  FORMAT_VERSION,
  MANIFEST_FILE,
  collectionFiles,
  formatMetadata,
  isBackedUp,
  sha256,
  uuidHex,
  type CollectionMetadata,
  type Document,
} from './format.ts';
import { formatManifest, type CollectionEntry, type Manifest } from './manifest.ts';
import { megabytes, plural, seconds, silent, throttled, type Progress } from './progress.ts';

type Db = mongoose.mongo.Db;
type Timestamp = mongoose.mongo.Timestamp;

/**
 * Documents per batch MongoDB returns. A batch is also capped at 16 MiB by the server; a
 * thousand documents keep round trips few without holding much in memory (one batch at a time).
 */
const BATCH_SIZE = 1000;
const PROGRESS_INTERVAL_MS = 1000;

const SNAPSHOT_TOO_OLD = 239;
const SNAPSHOT_UNAVAILABLE = 246;

export interface BackupOptions {
  /** The directory to write; created if missing, refused unless empty. */
  out: string;
  gzip?: boolean;
  progress?: Progress;
}

/** An expected failure, with a message that says what to do. */
export class BackupError extends Error {
  override name = 'BackupError';
}

/**
 * Backs up `db` into `options.out` and returns the manifest written. On failure nothing stays
 * behind that could pass for a backup: the files written so far are removed (a crash leaves at
 * worst files without a manifest, which verification and restore refuse).
 */
export async function backupDatabase(db: Db, options: BackupOptions): Promise<Manifest> {
  const progress = options.progress ?? silent;
  const gzip = options.gzip ?? false;
  const startedAt = new Date();
  const createdDir = await prepareOutput(options.out);
  const dataDir = join(options.out, db.databaseName);
  try {
    await mkdir(dataDir);
    const manifest = await dumpInto(db, options.out, gzip, startedAt, progress);
    // The renames of the collection files are durable before the manifest vouches for them.
    await flushDirectory(dataDir);
    // Last, under a temporary name: the manifest appears whole, after every file it vouches for.
    const path = join(options.out, MANIFEST_FILE);
    await writeFile(`${path}.partial`, formatManifest(manifest), { flag: 'wx' });
    await flushToDisk(`${path}.partial`);
    await rename(`${path}.partial`, path);
    await flushDirectory(options.out);
    return manifest;
  } catch (error) {
    if (createdDir) await rm(options.out, { recursive: true, force: true });
    else await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Refuses a destination that is not a new or empty directory. Exported so the command checks it
 * before connecting (which may mean starting the embedded database).
 */
export async function checkOutput(out: string): Promise<'missing' | 'empty'> {
  const existing = await statIfPresent(out);
  if (existing === undefined) return 'missing';
  if (!existing.isDirectory()) throw new BackupError(`${out} exists and is not a directory`);
  const entries = await readdir(out);
  if (entries.length > 0)
    throw new BackupError(`${out} is not empty; a backup goes into a new or empty directory, never over another one`);
  return 'empty';
}

/** Creates the directory, or accepts an empty one; true when it was created here. */
async function prepareOutput(out: string): Promise<boolean> {
  if ((await checkOutput(out)) === 'empty') return false;
  await mkdir(out, { recursive: true });
  return true;
}

interface Listed {
  name: string;
  metadata: CollectionMetadata;
}

async function dumpInto(db: Db, out: string, gzip: boolean, startedAt: Date, progress: Progress): Promise<Manifest> {
  const listed = await listCollections(db);
  const [first] = listed;
  if (first === undefined) throw new BackupError(`the database ${db.databaseName} has no collections to back up`);
  const clusterTime = await pickClusterTime(db, first.name);
  const snapshotAt = new Date(clusterTime.t * 1000);
  const migrations = await changelogAt(db, clusterTime, listed);
  const { version: mongodbVersion } = (await db.command({ buildInfo: 1 })) as { version: string };
  progress({
    event: 'backup-started',
    message:
      `backing up ${listed.length} collections of ${db.databaseName} as of ${snapshotAt.toISOString()} ` +
      `(cluster time ${clusterTime.t}.${clusterTime.i}) into ${out}`,
    database: db.databaseName,
    collections: listed.length,
    clusterTime: { t: clusterTime.t, i: clusterTime.i },
    out,
    gzip,
  });

  const entries: CollectionEntry[] = [];
  for (const { name, metadata } of listed) {
    entries.push(await dumpCollection(db, out, name, metadata, clusterTime, gzip, progress));
  }
  await checkSchemaUnchanged(db, listed, clusterTime, migrations);

  const sum = (pick: (entry: CollectionEntry) => number) => entries.reduce((total, entry) => total + pick(entry), 0);
  const manifest: Manifest = {
    format: FORMAT_NAME,
    formatVersion: FORMAT_VERSION,
    database: db.databaseName,
    startedAt: startedAt.toISOString(),
    completedAt: new Date().toISOString(),
    clusterTime: { t: clusterTime.t, i: clusterTime.i },
    snapshotAt: snapshotAt.toISOString(),
    service: { name: SERVICE.name, version: SERVICE.version },
    mongodb: { version: mongodbVersion },
    migrations,
    gzip,
    collections: entries,
    totals: {
      documents: sum((entry) => entry.documents),
      bsonBytes: sum((entry) => entry.bsonBytes),
      storedBytes: sum((entry) => entry.bson.bytes + entry.metadata.bytes),
    },
  };
  progress({
    event: 'backup-done',
    message:
      `backed up ${manifest.totals.documents} documents of ${entries.length} collections ` +
      `(${megabytes(manifest.totals.bsonBytes)} of BSON, ${megabytes(manifest.totals.storedBytes)} stored) in ` +
      seconds(Date.now() - startedAt.getTime()),
    database: db.databaseName,
    ...manifest.totals,
    clusterTime: manifest.clusterTime,
    ms: Date.now() - startedAt.getTime(),
  });
  return manifest;
}

/**
 * Every collection to back up, with its metadata, sorted by name. Listed from the server rather
 * than from the entity declarations, so collections added later (keys, audit...) are covered by
 * themselves. Views and time series are refused: nothing here creates them, and a backup that
 * silently left one out would be worse than one that stops.
 */
async function listCollections(db: Db): Promise<Listed[]> {
  const infos = await db.listCollections({}, { nameOnly: false }).toArray();
  const listed: Listed[] = [];
  for (const info of infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!isBackedUp(info.name)) continue;
    if (info.type !== 'collection') {
      throw new BackupError(
        `${db.databaseName}.${info.name} is a ${String(info.type)}; backups hold plain collections only`,
      );
    }
    listed.push({ name: info.name, metadata: await collectionMetadata(db, info) });
  }
  return listed;
}

async function collectionMetadata(db: Db, info: Document): Promise<CollectionMetadata> {
  // The driver types listed indexes as any.
  const indexes = (await db
    .collection(info.name as string)
    .listIndexes()
    .toArray()) as Document[];
  const uuid = uuidHex((info.info as Document | undefined)?.uuid);
  return {
    options: (info.options as Document | undefined) ?? {},
    indexes,
    ...(uuid !== undefined && { uuid }),
    collectionName: info.name as string,
    type: 'collection',
  };
}

/**
 * The cluster time every collection is read at: a snapshot read without atClusterTime makes the
 * server pick its latest majority-committed point in time, which it returns with the cursor. A
 * majority-committed point is one no failover can roll back.
 */
async function pickClusterTime(db: Db, collection: string): Promise<Timestamp> {
  const reply = await snapshotCommand(db, {
    find: collection,
    filter: {},
    limit: 1,
    singleBatch: true,
    readConcern: { level: 'snapshot' },
  });
  const atClusterTime: unknown = (reply.cursor as Document | undefined)?.atClusterTime;
  if (!(atClusterTime instanceof mongoose.mongo.Timestamp)) {
    throw new BackupError(
      'the server returned no atClusterTime for a snapshot read: snapshot reads need MongoDB 5.0 or newer on a ' +
        'replica set',
    );
  }
  return atClusterTime;
}

async function snapshotCommand(db: Db, command: Document): Promise<Document> {
  try {
    return await db.command(command);
  } catch (error) {
    throw explainSnapshotFailure(error);
  }
}

/** The changelog as of the cluster time: how many migrations the documents have been through. */
async function changelogAt(db: Db, clusterTime: Timestamp, listed: Listed[]): Promise<Manifest['migrations']> {
  const name = MIGRATION_SETTINGS.changelogCollectionName;
  if (!listed.some((collection) => collection.name === name)) return null;
  const entries: { fileName: string; appliedAt?: Date }[] = [];
  const cursor = db.runCursorCommand({
    find: name,
    filter: {},
    projection: { _id: 0, fileName: 1, appliedAt: 1 },
    readConcern: { level: 'snapshot', atClusterTime: clusterTime },
  });
  try {
    for await (const entry of cursor) entries.push(entry as { fileName: string; appliedAt?: Date });
  } catch (error) {
    throw explainSnapshotFailure(error);
  }
  return summarizeChangelog(entries);
}

function summarizeChangelog(entries: { fileName: string; appliedAt?: Date }[]): Manifest['migrations'] {
  // Migration files are named after the time they were written: the last applied sorts last.
  const last = [...entries].sort((a, b) => (a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0)).at(-1);
  if (last === undefined) return null;
  return {
    applied: entries.length,
    last: last.fileName,
    lastAppliedAt: last.appliedAt instanceof Date ? last.appliedAt.toISOString() : null,
  };
}

/**
 * Streams one collection into its .bson file as MongoDB returns it (raw BSON, batch by batch: a
 * collection is never held in memory), in _id order through the _id index: an order MongoDB can
 * produce again, so the restore can read the restored collection back and compare checksums.
 */
async function dumpCollection(
  db: Db,
  out: string,
  name: string,
  metadata: CollectionMetadata,
  clusterTime: Timestamp,
  gzip: boolean,
  progress: Progress,
): Promise<CollectionEntry> {
  const started = Date.now();
  const files = collectionFiles(db.databaseName, name, gzip);
  const metadataFile = await writeStoredFile(
    out,
    files.metadata,
    [Buffer.from(formatMetadata(metadata), 'utf8')],
    gzip,
  );

  const hash = sha256();
  let documents = 0;
  let bsonBytes = 0;
  const due = throttled(PROGRESS_INTERVAL_MS);
  async function* batches(): AsyncGenerator<Buffer> {
    for await (const batch of readAt(db, name, clusterTime)) {
      const bytes = Buffer.concat(batch);
      hash.update(bytes);
      documents += batch.length;
      bsonBytes += bytes.length;
      if (due()) {
        progress({
          event: 'collection-progress',
          message: `  ${name}: ${documents} documents, ${megabytes(bsonBytes)}`,
          collection: name,
          documents,
          bsonBytes,
        });
      }
      yield bytes;
    }
  }
  const bsonFile = await writeStoredFile(out, files.bson, batches(), gzip);
  const entry: CollectionEntry = {
    name,
    documents,
    bsonBytes,
    bsonSha256: hash.digest('hex'),
    bson: bsonFile,
    metadata: metadataFile,
    indexes: metadata.indexes.length,
  };
  progress({
    event: 'collection-done',
    message:
      `  ${name}: ${documents} documents, ${megabytes(bsonBytes)}, ` +
      `${plural(metadata.indexes.length, 'index', 'indexes')} (${seconds(Date.now() - started)})`,
    collection: name,
    documents,
    bsonBytes,
    storedBytes: bsonFile.bytes,
    indexes: metadata.indexes.length,
    ms: Date.now() - started,
  });
  return entry;
}

/**
 * The documents of a collection at the cluster time, as raw BSON, one server batch at a time.
 * Sorted by _id with the _id index as hint: an index walk, no in-memory sort, whatever the size.
 */
export async function* readAt(
  db: Db,
  collection: string,
  clusterTime: Timestamp | undefined,
): AsyncGenerator<Buffer[]> {
  const cursor = db.runCursorCommand(
    {
      find: collection,
      filter: {},
      sort: { _id: 1 },
      hint: { _id: 1 },
      batchSize: BATCH_SIZE,
      ...(clusterTime !== undefined && { readConcern: { level: 'snapshot', atClusterTime: clusterTime } }),
    },
    { raw: true },
  );
  cursor.setBatchSize(BATCH_SIZE);
  try {
    while (await cursor.hasNext()) {
      // With raw, each document is its BSON bytes as the server sent them.
      yield cursor.readBufferedDocuments();
    }
  } catch (error) {
    throw explainSnapshotFailure(error);
  } finally {
    await cursor.close();
  }
}

/**
 * Reads the collections' options and indexes and the changelog again: equal to what was read
 * before the documents, they held for the whole backup (the schema only changes through
 * migrations, and the changelog would show one).
 */
async function checkSchemaUnchanged(
  db: Db,
  before: Listed[],
  clusterTime: Timestamp,
  migrations: Manifest['migrations'],
): Promise<void> {
  const after = await listCollections(db);
  const describe = (listed: Listed[]) => new Map(listed.map(({ name, metadata }) => [name, formatMetadata(metadata)]));
  const was = describe(before);
  const is = describe(after);
  for (const [name, metadata] of was) {
    if (!is.has(name)) throw new BackupError(`${name} was dropped while the backup ran; take the backup again`);
    if (is.get(name) !== metadata)
      throw new BackupError(
        `the options or indexes of ${name} changed while the backup ran (a migration?); take the backup again`,
      );
  }
  const changelog = MIGRATION_SETTINGS.changelogCollectionName;
  const now = is.has(changelog)
    ? summarizeChangelog(
        await db
          .collection<{ fileName: string; appliedAt?: Date }>(changelog)
          .find({}, { projection: { _id: 0, fileName: 1, appliedAt: 1 } })
          .toArray(),
      )
    : null;
  if (JSON.stringify(now) !== JSON.stringify(migrations)) {
    throw new BackupError(
      `migrations ran while the backup ran (as of cluster time ${clusterTime.t}.${clusterTime.i}: ` +
        `${migrations?.last ?? 'none'}; now: ${now?.last ?? 'none'}); take the backup again`,
    );
  }
}

function explainSnapshotFailure(error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (code === SNAPSHOT_TOO_OLD) {
    return new BackupError(
      'the backup took longer than the server keeps the history of its snapshot ' +
        '(minSnapshotHistoryWindowInSeconds, 300 s by default): ' +
        `raise that parameter for the duration of the backup, or back up from a less busy member ` +
        `(${(error as Error).message})`,
      { cause: error },
    );
  }
  if (code === SNAPSHOT_UNAVAILABLE) {
    return new BackupError(
      `a collection was created or changed after the backup's cluster time; take the backup again ` +
        `(${(error as Error).message})`,
      { cause: error },
    );
  }
  return error;
}
