// The document repository: the reads and writes of one entity's collection, on MongoDB and
// nothing else. Reads go straight to the driver, lean, with projections. Writes are few and all
// alike: each takes the unit of work's transaction (Tx; insert and replaceIf also an atomic write
// of their own, whose audit stamp they store with the document), maintains the system fields
// (version, createdAt, updatedAt), casts what it stores as the Mongoose schema would, and records
// the document it wrote; replacements, updates and deletions are conditional, so a write applies only
// to what its caller read. What to write and whether it may be written are the shop's
// (src/shop/), from the domain's rules.

import mongoose, { type ClientSession, type Model } from 'mongoose';
import type { AuditAction } from '../domain/audit.ts';
import type { Entity } from '../domain/entity.ts';
import { AppError } from '../errors.ts';
import { compileCaster, type Caster } from './casting.ts';
import { DeadlineExceeded, bounded, type Deadline } from './deadline.ts';
import { commentOf } from './served-requests.ts';
import { RAW, decode, decodeAll } from './raw-reads.ts';
import type { Tx, WriteTx } from './unit-of-work.ts';
import { CursorKeys } from './cursor-keys.ts';
import {
  afterCursor,
  compileFilter,
  decodeCursor,
  encodeCursor,
  queryFingerprint,
  valueAt,
  type ListRequest,
  type MongoFilter,
} from './query.ts';

const { ObjectId } = mongoose.Types;

const DUPLICATE_KEY = 11000;
const MAX_TIME_EXPIRED = 50;

export type StoredDocument = Record<string, unknown> & { _id: InstanceType<typeof ObjectId>; version: number };

export interface ListPage {
  items: StoredDocument[];
  /** Cursor of the next page; absent on the last page. */
  next?: string;
  /** Only when requested, and only when counting finished within the time allowed. */
  total?: number;
}

export interface RepositoryOptions {
  /** Upper bound on counting the matches of a list (totals are optional and bounded). */
  countTimeoutMs: number;
  /** Upper bound on one list query: MongoDB stops it past this (and the request gets 503). */
  queryTimeoutMs: number;
  /** Signs list cursors: one per process, shared by every repository. */
  cursors: CursorKeys;
}

export interface WriteOptions {
  /** What the audit trail and the change feed call this write. */
  action: AuditAction;
  /** The write's time (updatedAt, and createdAt of what it creates); by default, now. */
  now?: Date;
}

export interface ReadOptions {
  projection?: Record<string, 1>;
  /** A transaction's session: the read sees its snapshot. */
  session?: ClientSession;
  /** A request's read: the answer comes by it, or the read is abandoned (DeadlineExceeded). */
  deadline?: Deadline;
  /** Without a deadline, the request the read is for (its id in the command's comment). */
  requestId?: string;
}

/** The driver's options of a read: raw documents (decoded by the caller), named by their request. */
const readOptions = ({ projection, session, deadline, requestId }: ReadOptions) => ({
  ...(projection && { projection }),
  ...(session && { session }),
  ...commentOf(deadline, requestId),
  ...RAW,
});

/** An update of the fields a caller changes; the repository adds the version and updatedAt. */
export interface FieldUpdate {
  $set?: Record<string, unknown>;
  $inc?: Record<string, number>;
  $max?: Record<string, unknown>;
  $push?: Record<string, unknown>;
  $setOnInsert?: Record<string, unknown>;
}

type Filter = mongoose.mongo.Filter<StoredDocument>;
type Update = mongoose.mongo.UpdateFilter<StoredDocument>;

/** A run of inserts failed at one of them: `index` is its position in the run. */
export class BulkInsertFailure extends Error {
  constructor(
    readonly index: number,
    readonly problem: unknown,
  ) {
    super(`insert ${index} of the run was refused`);
    this.name = 'BulkInsertFailure';
  }
}

/** The key of a duplicate-key message (`... dup key: { sku: "X" }`), as a key pattern. */
function keyPatternOf(message: string | undefined): Record<string, 1> | undefined {
  const keys = /dup key: \{ (.*) \}/.exec(message ?? '')?.[1];
  if (keys === undefined) return undefined;
  const fields = [...keys.matchAll(/(?:^|, )([A-Za-z0-9_.]+): /g)].flatMap((found) => found.slice(1, 2));
  return Object.fromEntries(fields.map((field) => [field, 1]));
}

// The refusals of document writes, built in one place so that the contract's examples are the
// service's own words.

export const documentNotFound = (label: string, id: string) => AppError.notFound(`No ${label} with id ${id}.`);

/** If-Match named a version the document is no longer at. */
export const changedSince = (label: string, id: string, expectedVersion: number) =>
  AppError.preconditionFailed(
    `The ${label} ${id} changed since version ${expectedVersion}; read it again and reapply your change.`,
  );

/** Without If-Match, the document changed under the write more often than it could retry. */
export const keptChanging = (label: string, id: string) =>
  new AppError(409, 'concurrent-modification', 'Conflict', {
    detail: `The ${label} ${id} kept changing while this write was applied; retry.`,
  });

/** A write that would repeat a value a unique index holds, pointing at its fields. */
export function duplicateOf(label: string, fields: string[]): AppError {
  const named = fields.length > 0 ? fields.join(' and ') : 'these values';
  return new AppError(409, 'duplicate', 'Conflict', {
    detail: `A ${label} with this ${named} already exists.`,
    extensions: {
      errors: fields.map((field) => ({
        in: 'body',
        pointer: `/${field.replace(/\./g, '/')}`,
        message: 'is already taken',
      })),
    },
  });
}

export class DocumentRepository {
  /** Casts a validated document to its stored values (dates, ids), as the Mongoose schema does. */
  private readonly toStored: Caster;
  /** The driver's collection under the model, once connected (see collection()). */
  private driver?: { db: mongoose.mongo.Db; collection: mongoose.mongo.Collection };

  constructor(
    readonly entity: Entity,
    /**
     * The entity's Mongoose model: the schema the casts follow (test/data/casting.test.ts); never read
     * or written through.
     */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each entity's model has a document type of its own
    readonly model: Model<any>,
    private readonly options: RepositoryOptions,
  ) {
    this.toStored = compileCaster(entity.stored);
  }

  private get label(): string {
    return this.entity.singular;
  }

  notFound(id: string): AppError {
    return documentNotFound(this.label, id);
  }

  /**
   * The driver's collection: every read and write goes there, lean, with filters built and typed
   * by their callers (Mongoose's query building and casting cost a third of a read's CPU in the
   * benchmark). Before the first connection there is none: MongoDB is unavailable (503).
   */
  collection<T extends mongoose.mongo.Document = StoredDocument>(): mongoose.mongo.Collection<T> {
    const db = this.model.db.db;
    if (db === undefined) throw new mongoose.mongo.MongoNotConnectedError('MongoDB is not connected yet');
    if (this.driver?.db !== db) this.driver = { db, collection: db.collection(this.model.collection.collectionName) };
    return this.driver.collection as unknown as mongoose.mongo.Collection<T>;
  }

  /** One document by id. */
  async findById(id: string, options: ReadOptions = {}): Promise<StoredDocument | null> {
    return this.findOne({ _id: new ObjectId(id) }, options);
  }

  async findOne(filter: Filter, options: ReadOptions = {}): Promise<StoredDocument | null> {
    const found = this.collection()
      .findOne(filter, readOptions(options))
      .then((bytes) => (bytes === null ? null : (decode(bytes) as StoredDocument)));
    return bounded(found, options.deadline);
  }

  async find(filter: Filter, options: ReadOptions = {}): Promise<StoredDocument[]> {
    const found = this.collection()
      .find(filter, readOptions(options))
      .toArray()
      .then((batch) => decodeAll(batch) as StoredDocument[]);
    return bounded(found, options.deadline);
  }

  async exists(filter: Filter, options: Omit<ReadOptions, 'projection'> = {}): Promise<boolean> {
    return (await this.findOne(filter, { ...options, projection: { _id: 1 } })) !== null;
  }

  // --- the writes: each in a unit of work's transaction, each recording what it wrote ----------

  /**
   * Inserts new documents with one insertMany, in order, each recorded under `action`. `fields`
   * are validated already; the repository adds the id and the system fields and casts. When one
   * is refused as a duplicate, throws a BulkInsertFailure naming its position, with the problem a
   * create of it alone would have given; the collection's validator still checks what is stored.
   */
  async insert(
    tx: WriteTx,
    fields: readonly Record<string, unknown>[],
    { action, now = new Date() }: WriteOptions,
  ): Promise<StoredDocument[]> {
    const documents = fields.map((field) => {
      // An atomic write keeps its ids from one attempt to the next, and carries its audit stamp.
      const _id = tx.session === undefined ? tx.newId() : new ObjectId();
      const stamp = tx.session === undefined ? { _audit: tx.stampFor(action, this.entity.collection, _id) } : {};
      return this.toStored({ _id, ...field, version: 1, createdAt: now, updatedAt: now, ...stamp }) as StoredDocument;
    });
    try {
      await this.collection().insertMany(documents, { session: tx.session, ordered: true, ...tx.command });
    } catch (error) {
      const writeErrors = (error as { writeErrors?: { index: number; code?: number; errmsg?: string }[] }).writeErrors;
      const first = Array.isArray(writeErrors) ? writeErrors[0] : undefined;
      if (first === undefined) throw error;
      // A duplicate is the client's; anything else (a validator's refusal) goes on as MongoDB said it.
      throw new BulkInsertFailure(
        first.index,
        first.code === DUPLICATE_KEY ? this.duplicate(keyPatternOf(first.errmsg)) : error,
      );
    }
    for (const document of documents) tx.record(action, this.entity.collection, document);
    return documents;
  }

  /**
   * Replaces `current` with `fields` (every field but the system ones), only if it is still at the
   * version read. Returns the document as written, or null when it changed meanwhile.
   */
  async replaceIf(
    tx: WriteTx,
    current: StoredDocument,
    fields: Record<string, unknown>,
    { action, now = new Date() }: WriteOptions,
  ): Promise<StoredDocument | null> {
    const next = this.toStored({
      _id: current._id,
      ...fields,
      version: current.version + 1,
      createdAt: current.createdAt,
      updatedAt: now,
      // An atomic write carries its audit stamp; a transaction's replacement drops the last one.
      ...(tx.session === undefined && { _audit: tx.stampFor(action, this.entity.collection, current._id) }),
    }) as StoredDocument;
    let written: StoredDocument | null;
    try {
      written = await this.collection().findOneAndReplace({ _id: current._id, version: current.version }, next, {
        session: tx.session,
        returnDocument: 'after',
        ...tx.command,
      });
    } catch (error) {
      throw this.translate(error);
    }
    if (written !== null) tx.record(action, this.entity.collection, written);
    return written;
  }

  /**
   * Updates the one document `filter` matches (the filter is the condition: counters that must
   * hold enough, a status, a version), raising its version. Returns it as updated, or null when
   * none matched (and nothing changed).
   */
  async updateIf(
    tx: Tx,
    filter: Filter,
    update: FieldUpdate,
    { action, now = new Date() }: WriteOptions,
  ): Promise<StoredDocument | null> {
    const { value } = await this.modify(tx, filter, this.versioned(update, now), { upsert: false });
    if (value !== null) tx.record(action, this.entity.collection, value);
    return value;
  }

  /**
   * updateIf, inserting the document when none matches (`$setOnInsert` and the filter's values,
   * with createdAt). The filter must name a unique key: of two transactions inserting the same
   * document, the second meets a write conflict and its retry updates it.
   */
  async upsert(
    tx: Tx,
    { filter, update, action, now = new Date() }: WriteOptions & { filter: Filter; update: FieldUpdate },
  ): Promise<{ document: StoredDocument; created: boolean }> {
    const inserting = { ...this.versioned(update, now), $setOnInsert: { ...update.$setOnInsert, createdAt: now } };
    const { value, lastErrorObject } = await this.modify(tx, filter, inserting, { upsert: true });
    // With upsert a document is always returned; anything else is the driver breaking its contract.
    if (value === null) throw new Error(`${this.entity.collection}: an upsert returned no document`);
    tx.record(action, this.entity.collection, value);
    return { document: value, created: lastErrorObject?.updatedExisting === false };
  }

  /** Deletes `current` only if it is still at the version read; false when it changed meanwhile. */
  async deleteIf(tx: Tx, current: StoredDocument, { action }: Omit<WriteOptions, 'now'>): Promise<boolean> {
    const { deletedCount } = await this.collection().deleteOne(
      { _id: current._id, version: current.version },
      { session: tx.session },
    );
    if (deletedCount === 0) return false;
    tx.record(action, this.entity.collection, current);
    return true;
  }

  // --- lists ---------------------------------------------------------------------------------

  /**
   * One page of a list. MongoDB stops the query at QUERY_TIMEOUT_MS (maxTimeMS: the query-timeout
   * problem); with a deadline, the answer comes by it even when MongoDB does not answer at all.
   */
  async list(request: ListRequest, deadline?: Deadline): Promise<ListPage> {
    const { field, direction } = request.sort;
    const fingerprint = queryFingerprint(request, this.entity.collection);
    const filter = compileFilter(this.entity, request.filters, request.q);
    let pageFilter: MongoFilter = filter;
    if (request.cursor !== undefined) {
      const after = decodeCursor(request.cursor, fingerprint, await this.cursors().key(deadline));
      pageFilter = { $and: [filter, afterCursor(field, direction, after.value, after.id)] };
    }
    const found = this.pageQuery(request, pageFilter, { ...commentOf(deadline), ...RAW })
      .toArray()
      .then((batch) => decodeAll(batch) as StoredDocument[]);
    const items = await bounded(found, deadline);

    const page: ListPage = { items };
    const last = items[request.limit - 1];
    if (items.length > request.limit && last !== undefined) {
      items.length = request.limit;
      page.next = encodeCursor(
        await this.cursors().key(deadline),
        fingerprint,
        valueAt(last, field),
        last._id.toHexString(),
      );
    }
    if (request.count) page.total = await this.countWithin(filter, deadline);
    return page;
  }

  /** The MongoDB query plan of a list request (for tests and diagnostics). */
  async explainList(request: ListRequest): Promise<unknown> {
    return this.pageQuery(request, compileFilter(this.entity, request.filters, request.q)).explain('queryPlanner');
  }

  /** The API's view of a stored document: id instead of _id. */
  toResource(document: StoredDocument): Record<string, unknown> {
    const { _id, ...rest } = document;
    return { id: _id.toHexString(), ...rest };
  }

  // --- internals ---------------------------------------------------------------------------

  private cursors(): CursorKeys {
    return this.options.cursors;
  }

  private pageQuery(request: ListRequest, filter: MongoFilter, options: { comment?: string; raw?: true } = {}) {
    const { field, direction } = request.sort;
    const projection = this.projection(request);
    return this.collection().find(filter, {
      ...(projection && { projection }),
      sort: { [field]: direction, _id: direction },
      limit: request.limit + 1,
      maxTimeMS: this.options.queryTimeoutMs,
      ...options,
    });
  }

  private projection(request: ListRequest): Record<string, 1> | undefined {
    if (request.fields === undefined) return undefined;
    const projection: Record<string, 1> = { version: 1 };
    for (const name of request.fields) projection[name] = 1;
    // The sort key is needed for the next cursor; its top-level field avoids path collisions.
    projection[request.sort.field.split('.')[0] ?? request.sort.field] = 1;
    return projection;
  }

  /** The total, or undefined when counting takes longer than LIST_COUNT_TIMEOUT_MS or the request's time left. */
  private async countWithin(filter: MongoFilter, deadline?: Deadline): Promise<number | undefined> {
    const counting = this.collection().countDocuments(filter, {
      maxTimeMS: this.options.countTimeoutMs,
      ...commentOf(deadline),
    });
    try {
      return await bounded(counting, deadline);
    } catch (error) {
      if (error instanceof DeadlineExceeded || (error as { code?: number }).code === MAX_TIME_EXPIRED) return undefined;
      throw error;
    }
  }

  /** The caller's update with the version raised and updatedAt set: every write of a document does both. */
  private versioned(update: FieldUpdate, now: Date): Update {
    const versioned = { ...update, $inc: { ...update.$inc, version: 1 }, $set: { ...update.$set, updatedAt: now } };
    // The driver types an update by the fields its schema names; an entity's are known only at run time.
    return versioned as unknown as Update;
  }

  private modify(tx: Tx, filter: Filter, update: Update, { upsert }: { upsert: boolean }) {
    return this.collection().findOneAndUpdate(filter, update, {
      session: tx.session,
      upsert,
      returnDocument: 'after',
      includeResultMetadata: true,
    });
  }

  private duplicate(keyPattern: Record<string, unknown> | undefined): AppError {
    return duplicateOf(this.label, Object.keys(keyPattern ?? {}));
  }

  /** Database refusals that are the client's doing, as problems; anything else unchanged. */
  private translate(error: unknown): unknown {
    const refused = error as { code?: number; keyPattern?: Record<string, unknown> };
    return refused.code === DUPLICATE_KEY ? this.duplicate(refused.keyPattern) : error;
  }
}
