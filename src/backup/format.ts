// The on-disk layout of a backup, shared by the backup, its verification and the restore. It is
// mongodump's directory layout, so mongorestore can read it too:
//
//   DIR/manifest.json                       this service's own record (src/backup/manifest.ts)
//   DIR/<db>/<collection>.bson[.gz]         the documents, concatenated BSON
//   DIR/<db>/<collection>.metadata.json[.gz]  options and indexes, canonical Extended JSON v2
//
// and the pieces of BSON and Extended JSON handling that both directions need.

import { createHash } from 'node:crypto';
import mongoose from 'mongoose';
import { MIGRATION_SETTINGS } from '../data/migrations.ts';

const { EJSON } = mongoose.mongo.BSON;

export type Document = mongoose.mongo.Document;

export const MANIFEST_FILE = 'manifest.json';
/** Names this format in the manifest, so a directory of something else is told apart. */
export const FORMAT_NAME = 'storekeeper-backup';
/** Raised on any change a reader of an older version could not follow. */
export const FORMAT_VERSION = 1;

/**
 * The largest document a file may hold: MongoDB's 16 MiB limit plus the 16 KiB the server allows
 * itself beyond it (BSONObjMaxInternalSize). A length past it is damage, not data.
 */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 + 16 * 1024;
/** The smallest BSON document: its length (4 bytes) and the terminating zero. */
const MIN_DOCUMENT_BYTES = 5;

/**
 * Collections that are not data: the server's own (system.*) and the migration lock, which only
 * exists while a migration runs and must never be restored as held. The changelog is data: it
 * says which migrations the documents have been through.
 */
export function isBackedUp(collection: string): boolean {
  return !collection.startsWith('system.') && collection !== MIGRATION_SETTINGS.lockCollectionName;
}

/** Characters Go's url.PathEscape leaves as they are: what mongodump uses to name its files. */
const PATH_SAFE = /[A-Za-z0-9\-_.~$&+:=@]/;

/**
 * A collection name as a file name, escaped as mongodump escapes it (Go's url.PathEscape), so
 * mongorestore maps the file back to the same collection: "/" and other unsafe bytes become %XX.
 */
export function escapeCollectionName(name: string): string {
  let escaped = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const char = String.fromCharCode(byte);
    escaped += byte < 0x80 && PATH_SAFE.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return escaped;
}

export interface CollectionFiles {
  /** Paths relative to the backup directory, with "/" separators as in the manifest. */
  bson: string;
  metadata: string;
}

/** Where a collection's files are, from the database and collection names alone. */
export function collectionFiles(dbName: string, collection: string, gzip: boolean): CollectionFiles {
  const base = `${dbName}/${escapeCollectionName(collection)}`;
  const suffix = gzip ? '.gz' : '';
  return { bson: `${base}.bson${suffix}`, metadata: `${base}.metadata.json${suffix}` };
}

/**
 * mongodump's metadata document: listCollections' options (validator, validation level and
 * action, collation...), listIndexes' entries (never with `ns`, which mongorestore rewrites), the
 * collection's UUID as 32 hex digits, its name and type. mongorestore reads options, indexes,
 * uuid and collectionName.
 */
export interface CollectionMetadata {
  options: Document;
  indexes: Document[];
  uuid?: string;
  collectionName: string;
  type: 'collection';
}

/** An index without its namespace (ns): a backup's indexes do not name the database they came from. */
function withoutNamespace(index: Document): Document {
  const copy = { ...index };
  delete copy.ns;
  return copy;
}

/** Canonical Extended JSON v2, as mongodump writes it: types survive (an int stays an int). */
export function formatMetadata(metadata: CollectionMetadata): string {
  // Member order as mongodump's: options, indexes, uuid, collectionName, type.
  const ordered = {
    options: metadata.options,
    indexes: metadata.indexes.map(withoutNamespace),
    ...(metadata.uuid !== undefined && { uuid: metadata.uuid }),
    collectionName: metadata.collectionName,
    type: metadata.type,
  };
  return EJSON.stringify(ordered, { relaxed: false });
}

/** Parses and checks a metadata file's text; throws an Error saying what is wrong. */
export function parseMetadata(text: string, collection: string): CollectionMetadata {
  let parsed: unknown;
  try {
    parsed = EJSON.parse(text, { relaxed: false });
  } catch (error) {
    throw new Error(`is not Extended JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw new Error('is not a JSON object');
  const { options = {}, indexes, uuid, collectionName, type = 'collection' } = parsed;
  if (collectionName !== collection)
    throw new Error(`names the collection ${JSON.stringify(collectionName)}, not ${JSON.stringify(collection)}`);
  if (type !== 'collection') throw new Error(`is for a ${String(type)}; only collections are restored`);
  if (!isPlainObject(options)) throw new Error('has options that are not an object');
  if (
    !Array.isArray(indexes) ||
    !indexes.every((index) => isPlainObject(index) && isPlainObject(index.key) && typeof index.name === 'string')
  ) {
    throw new Error('has no list of indexes each with a key and a name');
  }
  if (uuid !== undefined && (typeof uuid !== 'string' || !/^[0-9a-f]{32}$/.test(uuid)))
    throw new Error('has a uuid that is not 32 hex digits');
  return {
    options,
    indexes: indexes as Document[],
    ...(uuid !== undefined && { uuid }),
    collectionName,
    type,
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A collection UUID (BSON binary subtype 4) as mongodump writes it: 32 lower-case hex digits. */
export function uuidHex(uuid: unknown): string | undefined {
  if (uuid instanceof mongoose.mongo.Binary) return Buffer.from(uuid.buffer).toString('hex');
  return undefined;
}

/** A malformed stream of BSON documents, with the byte offset where it went wrong. */
export class FramingError extends Error {
  override name = 'FramingError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/**
 * Splits a byte stream into BSON documents, checking only the framing (each length sane, each
 * document ending in its zero byte, nothing left over): the checksum says whether the bytes are
 * the ones written, this says where a damaged file stops making sense. Chunks are kept in a list
 * until a whole document has arrived, so a 16 MiB document is copied once, not once per chunk.
 */
export async function* bsonDocuments(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let chunks: Buffer[] = [];
  let buffered = 0;
  let offset = 0;
  const take = (length: number): Buffer => {
    const [only, ...more] = chunks;
    const whole = only !== undefined && more.length === 0 ? only : Buffer.concat(chunks, buffered);
    chunks = whole.length > length ? [whole.subarray(length)] : [];
    buffered -= length;
    return whole.subarray(0, length);
  };
  const nextLength = (): number | undefined => {
    if (buffered < 4) return undefined;
    const [first] = chunks;
    const head = first !== undefined && first.length >= 4 ? first : Buffer.concat(chunks, buffered);
    const length = head.readInt32LE(0);
    if (length < MIN_DOCUMENT_BYTES || length > MAX_DOCUMENT_BYTES) {
      throw new FramingError(
        `a document at byte ${offset} declares ${length} bytes, which no BSON document has`,
        offset,
      );
    }
    return length;
  };
  for await (const chunk of source) {
    if (chunk.length === 0) continue;
    chunks.push(chunk);
    buffered += chunk.length;
    for (let length = nextLength(); length !== undefined && buffered >= length; length = nextLength()) {
      const document = take(length);
      if (document[length - 1] !== 0)
        throw new FramingError(`the document at byte ${offset} does not end with a zero byte`, offset);
      offset += length;
      yield document;
    }
  }
  if (buffered > 0) {
    throw new FramingError(
      `the last ${buffered} bytes (from byte ${offset}) are not a whole document: the file is cut short`,
      offset,
    );
  }
}

/**
 * Decodes a stored document for re-insertion without changing a type: no promotion of BSON
 * values to JavaScript ones (an int64 stays an int64, a double that holds 2 stays a double),
 * regular expressions kept as BSON ones. Serialized again, it is the same bytes.
 */
export function decodeForInsert(bytes: Uint8Array): Document {
  return mongoose.mongo.BSON.deserialize(bytes, { promoteValues: false, bsonRegExp: true });
}

export const sha256 = () => createHash('sha256');
