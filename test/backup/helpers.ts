// What the backup tests share: a client of the run's replica set, reading a collection back as
// the backup does (raw BSON in _id order) to compare with a manifest, and the schema of a
// database (options and indexes) to compare two databases with.

import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { inject } from 'vitest';

export type Db = mongoose.mongo.Db;
export type MongoClient = mongoose.mongo.MongoClient;

const { EJSON } = mongoose.mongo.BSON;

/** A client of the test replica set, not yet connected: a suite creates it up front and closes it in afterAll. */
export function newClient(uri: string = inject('mongoUri')): MongoClient {
  return new mongoose.mongo.MongoClient(uri);
}

export function connect(uri?: string): Promise<MongoClient> {
  return newClient(uri).connect();
}

/** A fresh directory under the system's temp dir for one backup. */
export async function backupDir(label: string): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), `storekeeper-backup-${label}-`)), 'backup');
}

/** Count and SHA-256 of a collection's documents as raw BSON in _id order: what a manifest records. */
export async function collectionDigest(db: Db, name: string): Promise<{ documents: number; sha256: string }> {
  const hash = createHash('sha256');
  let documents = 0;
  const cursor = db.collection(name).find({}, { sort: { _id: 1 }, hint: { _id: 1 }, raw: true });
  for await (const document of cursor) {
    hash.update(document as unknown as Buffer);
    documents += 1;
  }
  return { documents, sha256: hash.digest('hex') };
}

/** Every collection's options and indexes (without what differs between copies: UUIDs). */
export async function schemaOf(db: Db, exclude: readonly string[] = []): Promise<Record<string, unknown>> {
  const schema: Record<string, unknown> = {};
  const infos = await db.listCollections().toArray();
  for (const info of infos.sort((a, b) => a.name.localeCompare(b.name))) {
    if (info.name.startsWith('system.') || exclude.includes(info.name)) continue;
    const indexes = await db.collection(info.name).listIndexes().toArray();
    schema[info.name] = JSON.parse(
      EJSON.stringify(
        {
          options: (info as { options?: unknown }).options,
          indexes: indexes.sort((a, b) => String(a.name).localeCompare(String(b.name))),
        },
        { relaxed: false },
      ),
    );
  }
  return schema;
}

/** Every document of the named collections in canonical Extended JSON (types show), in _id order. */
export async function contentsOf(db: Db, names: readonly string[]): Promise<Record<string, unknown[]>> {
  const contents: Record<string, unknown[]> = {};
  for (const name of names) {
    const documents = await db.collection(name).find().sort({ _id: 1 }).toArray();
    contents[name] = documents.map((document) => JSON.parse(EJSON.stringify(document, { relaxed: false })));
  }
  return contents;
}

/** Names of the databases of the server. */
export async function databaseNames(client: MongoClient): Promise<string[]> {
  const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
  return databases.map((database) => database.name);
}
