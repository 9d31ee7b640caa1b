// manifest.json: what a backup holds and how to tell it is whole. Written last, so a backup
// without one is incomplete by definition. It records the point in time the documents were read
// at (one cluster time for every collection), the service and migration versions, and per
// collection the document count and SHA-256 checksums, both of the BSON as MongoDB returned it
// and of each stored file. Read back, it is checked against a schema before anything trusts it:
// the restore takes file names and counts from it.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from 'typebox';
import { compileValidator } from '../domain/validation.ts';
import { FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, collectionFiles } from './format.ts';

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Count = Type.Integer({ minimum: 0 });

const StoredFile = Type.Object(
  {
    /** Relative to the backup directory, "/" separated. */
    path: Type.String({ minLength: 1, maxLength: 1024 }),
    bytes: Count,
    sha256: Sha256,
  },
  { additionalProperties: false },
);
export type StoredFile = Static<typeof StoredFile>;

const CollectionEntry = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    documents: Count,
    /** The documents as MongoDB returned them, before any compression. */
    bsonBytes: Count,
    bsonSha256: Sha256,
    bson: StoredFile,
    metadata: StoredFile,
    indexes: Count,
  },
  { additionalProperties: false },
);
export type CollectionEntry = Static<typeof CollectionEntry>;

const Manifest = Type.Object(
  {
    format: Type.Literal(FORMAT_NAME),
    formatVersion: Type.Integer({ minimum: 1 }),
    database: Type.String({ pattern: '^[A-Za-z0-9_-]{1,63}$' }),
    startedAt: Type.String({ format: 'date-time' }),
    completedAt: Type.String({ format: 'date-time' }),
    /** Every collection was read at this cluster time (readConcern snapshot, atClusterTime). */
    clusterTime: Type.Object({ t: Count, i: Count }, { additionalProperties: false }),
    /** The cluster time's seconds as a date, for people. */
    snapshotAt: Type.String({ format: 'date-time' }),
    service: Type.Object({ name: Type.String(), version: Type.String() }, { additionalProperties: false }),
    mongodb: Type.Object({ version: Type.String() }, { additionalProperties: false }),
    /** The changelog as of the cluster time; null when the database had none. */
    migrations: Type.Union([
      Type.Object(
        {
          applied: Count,
          last: Type.String(),
          lastAppliedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
    gzip: Type.Boolean(),
    collections: Type.Array(CollectionEntry),
    totals: Type.Object({ documents: Count, bsonBytes: Count, storedBytes: Count }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type Manifest = Static<typeof Manifest>;

const checkManifest = compileValidator(Manifest, 'manifest');

/** The manifest as JSON text: indented, so that people can read it too. */
export function formatManifest(manifest: Manifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * Reads and checks DIR/manifest.json. Throws an Error whose message says what is wrong: missing
 * (an incomplete backup), not JSON, of another format or version, or inconsistent.
 */
export async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        `${MANIFEST_FILE} is missing: this is not a backup, or an incomplete one (a backup writes its manifest last)`,
      );
    }
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${MANIFEST_FILE} is not JSON (${(error as Error).message}): damaged`);
  }
  const format = (parsed as { format?: unknown } | null)?.format;
  if (format !== FORMAT_NAME)
    throw new Error(`${MANIFEST_FILE} is not a ${FORMAT_NAME} manifest (format ${JSON.stringify(format)})`);
  const version = (parsed as { formatVersion?: unknown }).formatVersion;
  if (typeof version === 'number' && version > FORMAT_VERSION) {
    throw new Error(
      `${MANIFEST_FILE} has format version ${version}; this version of the service reads up to ${FORMAT_VERSION}: ` +
        `restore with a newer one`,
    );
  }
  const errors = checkManifest(parsed);
  if (errors.length > 0) {
    throw new Error(`${MANIFEST_FILE} is damaged: ${errors.map((e) => `${e.pointer || '/'} ${e.message}`).join('; ')}`);
  }
  const manifest = parsed as Manifest;
  checkConsistency(manifest);
  return manifest;
}

/**
 * What the schema cannot say: file paths are the ones the collection names imply (so a crafted
 * manifest cannot point the restore at files outside the backup), names are unique, and the
 * totals add up.
 */
function checkConsistency(manifest: Manifest): void {
  const seen = new Set<string>();
  for (const entry of manifest.collections) {
    if (seen.has(entry.name)) throw new Error(`${MANIFEST_FILE} lists the collection ${entry.name} twice`);
    seen.add(entry.name);
    if (entry.name.startsWith('system.') || entry.name.includes('\0') || entry.name.includes('$')) {
      throw new Error(
        `${MANIFEST_FILE} lists ${JSON.stringify(entry.name)}, which is not a collection name a backup holds`,
      );
    }
    const expected = collectionFiles(manifest.database, entry.name, manifest.gzip);
    if (entry.bson.path !== expected.bson || entry.metadata.path !== expected.metadata) {
      throw new Error(
        `${MANIFEST_FILE} puts the files of ${entry.name} at ${entry.bson.path} and ${entry.metadata.path}, not at ` +
          `${expected.bson} and ${expected.metadata}`,
      );
    }
  }
  const sum = (pick: (entry: CollectionEntry) => number) =>
    manifest.collections.reduce((total, entry) => total + pick(entry), 0);
  const totals = {
    documents: sum((entry) => entry.documents),
    bsonBytes: sum((entry) => entry.bsonBytes),
    storedBytes: sum((entry) => entry.bson.bytes + entry.metadata.bytes),
  };
  if (
    totals.documents !== manifest.totals.documents ||
    totals.bsonBytes !== manifest.totals.bsonBytes ||
    totals.storedBytes !== manifest.totals.storedBytes
  ) {
    throw new Error(`${MANIFEST_FILE}'s totals do not add up to its collections: damaged`);
  }
}
