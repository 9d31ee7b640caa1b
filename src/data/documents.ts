// The document repository: every read and write of an entity's collection. Reads are lean
// (plain objects) with projections; writes are conditional on the document's version, so two
// writers never lose each other's changes, and a failed write changes nothing. Every write runs
// in a transaction of the audit trail, which records it: its own (create, replace, patch,
// remove, the writes of one document taking turns in this process), or a caller's (the ...In
// variants, which the batch runs several of in one).

import mongoose, { type ClientSession, type Model } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import type { Entity } from '../domain/entity.ts';
import { applyMergePatch, type Json } from '../domain/merge-patch.ts';
import { compileValidator } from '../domain/validation.ts';
import type { DeletionRule, References } from '../domain/deletion.ts';
import { AppError, type FieldError } from '../errors.ts';
import type { Actor, AuditTrail, Tx } from './audit.ts';
import { compileCaster, type Caster } from './casting.ts';
import { KeyLocks, TurnTimeout } from './key-locks.ts';
import { DEFAULT_TRANSACTION_OPTIONS } from './transactions.ts';
import { DeadlineExceeded, bounded, type Deadline } from './deadline.ts';
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

export type StoredDocument = Record<string, any> & { _id: InstanceType<typeof ObjectId>; version: number };

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

/** What a deletion did: the document is gone, or was archived instead (as it is now). */
export type Removal =
  { action: 'deleted'; document: StoredDocument } | { action: 'archived'; document: StoredDocument };

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
  const match = /dup key: \{ (.*) \}/.exec(message ?? '');
  if (match === null) return undefined;
  const fields = [...match[1]!.matchAll(/(?:^|, )([A-Za-z0-9_.]+): /g)].map((found) => found[1]!);
  return Object.fromEntries(fields.map((field) => [field, 1]));
}

// The refusals of document writes, built in one place so that the contract's examples are the
// service's own words.

export const documentNotFound = (label: string, id: string) => AppError.notFound(`No ${label} with id ${id}.`);

/** If-Match named a version the document is no longer at. */
export const changedSince = (label: string, id: string, expectedVersion: number) =>
  new AppError(412, 'precondition-failed', 'Precondition Failed', {
    detail: `The ${label} ${id} changed since version ${expectedVersion}; read it again and reapply your change.`,
  });

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
  private readonly checkWritable: (value: unknown) => FieldError[];
  /** Casts a validated document to its stored values (dates, ids), as the Mongoose schema does. */
  private readonly toStored: Caster;
  /** Writes of one document take turns in this process (see inTurn). */
  private readonly turns = new KeyLocks();
  private readonly cursors: CursorKeys;

  constructor(
    readonly entity: Entity,
    readonly model: Model<any>,
    private readonly options: RepositoryOptions,
    private readonly trail: AuditTrail,
  ) {
    this.checkWritable = compileValidator(entity.writable);
    this.toStored = compileCaster(entity.stored);
    this.cursors = options.cursors;
  }

  /** The driver's collection, for writes that skip Mongoose documents (see createManyIn). */
  private get writes(): mongoose.mongo.Collection<StoredDocument> {
    return this.model.collection as unknown as mongoose.mongo.Collection<StoredDocument>;
  }

  private get label(): string {
    return this.entity.singular;
  }

  notFound(id: string): AppError {
    return documentNotFound(this.label, id);
  }

  /** The driver's collection under the model, once connected (see reads()). */
  private driver?: { db: mongoose.mongo.Db; collection: mongoose.mongo.Collection<StoredDocument> };

  /**
   * Reads go straight to the driver's collection: they are lean, their filters are built and typed
   * by compileFilter, so Mongoose's query building and casting would only cost time (a third of a
   * read's CPU in the benchmark). Undefined before the first connection: the caller then goes
   * through Mongoose, whose error for that case the error handler answers with 503.
   */
  private reads(): mongoose.mongo.Collection<StoredDocument> | undefined {
    const db = this.model.db.db;
    if (db === undefined) return undefined;
    if (this.driver?.db !== db)
      this.driver = { db, collection: db.collection<StoredDocument>(this.model.collection.collectionName) };
    return this.driver.collection;
  }

  /**
   * One document by id. With a deadline (a request's read), the answer comes by it: the driver's
   * own timeout is set to the time left, and the wait is raced as well.
   */
  async findById(
    id: string,
    {
      projection,
      session,
      deadline,
    }: { projection?: Record<string, 1>; session?: ClientSession; deadline?: Deadline } = {},
  ): Promise<StoredDocument | null> {
    const collection = this.reads();
    if (collection === undefined) {
      return this.model
        .findById(new ObjectId(id), projection)
        .session(session ?? null)
        .lean<StoredDocument>()
        .exec();
    }
    const found = collection.findOne(
      { _id: new ObjectId(id) },
      {
        ...(projection && { projection }),
        ...(session && { session }),
        ...(deadline && { timeoutMS: deadline.timeoutMS() }),
      },
    );
    return bounded(found, deadline);
  }

  // --- writes of one request: each one transaction, with its audit entry ---------------------

  async create(input: Record<string, unknown>, actor: Actor, log: FastifyBaseLogger): Promise<StoredDocument> {
    return this.trail.transaction(actor, (tx) => this.createIn(tx, input), log);
  }

  /** Replaces the writable fields; server-maintained fields and identity stay as they are. */
  async replace(
    id: string,
    input: Record<string, unknown>,
    expectedVersion: number | undefined,
    actor: Actor,
    log: FastifyBaseLogger,
  ): Promise<StoredDocument> {
    return this.inTurn(id, actor, (tx) => this.replaceIn(tx, id, input, expectedVersion), log);
  }

  /** Applies a JSON Merge Patch to the writable fields and validates the result as a whole. */
  async patch(
    id: string,
    patch: Record<string, Json>,
    expectedVersion: number | undefined,
    actor: Actor,
    log: FastifyBaseLogger,
  ): Promise<StoredDocument> {
    return this.inTurn(id, actor, (tx) => this.patchIn(tx, id, patch, expectedVersion), log);
  }

  /**
   * Deletes, or archives when the rule says so (then returns the document as archived). The
   * rule's lookups read through the transaction's session, as of its snapshot.
   */
  async remove(
    id: string,
    rule: DeletionRule,
    referencesIn: (session: ClientSession) => References,
    expectedVersion: number | undefined,
    actor: Actor,
    log: FastifyBaseLogger,
  ): Promise<StoredDocument | null> {
    const removal = await this.inTurn(
      id,
      actor,
      (tx) => this.removalIn(tx, id, rule, referencesIn(tx.session), expectedVersion),
      log,
    );
    return removal.action === 'archived' ? removal.document : null;
  }

  /**
   * A write of one existing document: one transaction of the audit trail, run in turn with this
   * process's other writes of the same document. Without turns, concurrent writers of a document
   * all read one version and all but one meet a write conflict and retry, and a burst of them can
   * use up the retries (stock items take turns for the same reason, see key-locks.ts); across
   * instances the transactions and their retries keep the writes correct. Waiting longer than a
   * request's deadline for the turn is a 503: nothing was written.
   */
  private async inTurn<T>(id: string, actor: Actor, work: (tx: Tx) => Promise<T>, log: FastifyBaseLogger): Promise<T> {
    const { maxTimeMs, retryAfterSeconds } = DEFAULT_TRANSACTION_OPTIONS;
    try {
      return await this.turns.run([id], actor.deadline?.remaining() ?? maxTimeMs, () =>
        this.trail.transaction(actor, work, log),
      );
    } catch (error) {
      if (!(error instanceof TurnTimeout)) throw error;
      throw AppError.unavailable(
        retryAfterSeconds,
        `Too many writes of the ${this.label} ${id} at once; nothing was written. Retry.`,
        error,
      );
    }
  }

  // --- the same writes inside a caller's transaction (a batch) ------------------------------

  /** A create is a run of one insert (see createManyIn). */
  async createIn(tx: Tx, input: Record<string, unknown>): Promise<StoredDocument> {
    try {
      const [created] = await this.createManyIn(tx, [input]);
      return created!;
    } catch (error) {
      throw error instanceof BulkInsertFailure ? error.problem : error;
    }
  }

  /**
   * Inserts several documents with one insertMany, in order, each recorded as created. When one
   * is refused, throws a BulkInsertFailure naming its position, with the problem a create of it
   * alone would have given.
   *
   * It builds no Mongoose documents: the inputs are checked against the writable schema (the
   * Ajv check the model's validators mirror, src/data/mongoose-schema.ts), cast as the model
   * casts them (test/data/casting.test.ts holds the two together), and given to the driver; the
   * collection's validator still checks what is stored. Hydrating and validating each document
   * through Mongoose was most of a batch's CPU in the ingest benchmark.
   */
  async createManyIn(tx: Tx, inputs: readonly Record<string, unknown>[]): Promise<StoredDocument[]> {
    for (const [index, input] of inputs.entries()) {
      const errors = this.checkWritable(input);
      if (errors.length > 0) throw new BulkInsertFailure(index, AppError.validation(errors));
    }
    const now = new Date();
    const documents = inputs.map(
      (input) =>
        this.toStored({
          _id: new ObjectId(),
          ...input,
          ...structuredClone(this.entity.serverDefaults),
          version: 1,
          createdAt: now,
          updatedAt: now,
        }) as StoredDocument,
    );
    try {
      await this.writes.insertMany(documents, { session: tx.session, ordered: true });
    } catch (error) {
      const writeErrors = (error as { writeErrors?: { index: number; code?: number; errmsg?: string }[] }).writeErrors;
      if (Array.isArray(writeErrors) && writeErrors.length > 0) {
        const first = writeErrors[0]!;
        // A duplicate is the client's; anything else (a validator's refusal) goes on as MongoDB said it.
        throw new BulkInsertFailure(
          first.index,
          first.code === 11000 ? this.translate({ code: first.code, keyPattern: keyPatternOf(first.errmsg) }) : error,
        );
      }
      throw error;
    }
    for (const document of documents) tx.record('create', this.entity.collection, document);
    return documents;
  }

  async replaceIn(
    tx: Tx,
    id: string,
    input: Record<string, unknown>,
    expectedVersion?: number,
  ): Promise<StoredDocument> {
    const replaced = await this.rewrite(tx.session, id, expectedVersion, () => input);
    tx.record('replace', this.entity.collection, replaced);
    return replaced;
  }

  async patchIn(tx: Tx, id: string, patch: Record<string, Json>, expectedVersion?: number): Promise<StoredDocument> {
    const patched = await this.rewrite(tx.session, id, expectedVersion, (current) => {
      const merged = applyMergePatch(this.writablePart(current) as Json, patch) as Record<string, unknown>;
      const errors = this.checkWritable(merged);
      if (errors.length > 0) throw AppError.validation(errors);
      return merged;
    });
    tx.record('patch', this.entity.collection, patched);
    return patched;
  }

  /**
   * remove, saying what happened and to which version. `references` must read through the
   * transaction's session, or the rule would judge data outside the transaction's snapshot.
   */
  async removalIn(
    tx: Tx,
    id: string,
    rule: DeletionRule,
    references: References,
    expectedVersion?: number,
  ): Promise<Removal> {
    const current = await this.current(id, expectedVersion, tx.session);
    const decision = await rule(current, references);
    if (decision.action === 'archive') {
      const archived = await this.rewrite(tx.session, id, current.version, (doc) => ({
        ...this.writablePart(doc),
        ...decision.changes,
      }));
      tx.record('archive', this.entity.collection, archived);
      return { action: 'archived', document: archived };
    }
    const { deletedCount } = await this.model
      .deleteOne({ _id: current._id, version: current.version })
      .session(tx.session)
      .exec();
    if (deletedCount === 0) throw this.changedMeanwhile(id, expectedVersion);
    tx.record('delete', this.entity.collection, current);
    return { action: 'deleted', document: current };
  }

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
      const after = decodeCursor(request.cursor, fingerprint, await this.cursors.key(deadline));
      pageFilter = { $and: [filter, afterCursor(field, direction, after.value, after.id)] };
    }

    const sort = { [field]: direction, _id: direction };
    const projection = this.projection(request);
    const collection = this.reads();
    const found =
      collection === undefined
        ? this.model
            .find(pageFilter, projection)
            .sort(sort)
            .limit(request.limit + 1)
            .maxTimeMS(this.options.queryTimeoutMs)
            .lean<StoredDocument[]>()
            .exec()
        : collection
            .find(pageFilter, {
              ...(projection && { projection }),
              sort,
              limit: request.limit + 1,
              maxTimeMS: this.options.queryTimeoutMs,
            })
            .toArray();
    const items = await bounded(found, deadline);

    const page: ListPage = { items };
    if (items.length > request.limit) {
      items.length = request.limit;
      const last = items[items.length - 1]!;
      page.next = encodeCursor(
        await this.cursors.key(deadline),
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
    const filter = compileFilter(this.entity, request.filters, request.q);
    return this.model
      .find(filter, this.projection(request))
      .sort({ [request.sort.field]: request.sort.direction, _id: request.sort.direction })
      .limit(request.limit + 1)
      .explain('queryPlanner');
  }

  /** The API's view of a stored document: id instead of _id. */
  toResource(document: StoredDocument): Record<string, unknown> {
    const { _id, ...rest } = document;
    return { id: _id.toHexString(), ...rest };
  }

  // --- internals ---------------------------------------------------------------------------

  private projection(request: ListRequest): Record<string, 1> | undefined {
    if (request.fields === undefined) return undefined;
    const projection: Record<string, 1> = { version: 1 };
    for (const name of request.fields) projection[name] = 1;
    // The sort key is needed for the next cursor; its top-level field avoids path collisions.
    projection[request.sort.field.split('.')[0]!] = 1;
    return projection;
  }

  /** The total, or undefined when counting takes longer than LIST_COUNT_TIMEOUT_MS or the request's time left. */
  private async countWithin(filter: MongoFilter, deadline?: Deadline): Promise<number | undefined> {
    const counting = this.model.countDocuments(filter).maxTimeMS(this.options.countTimeoutMs).exec();
    try {
      return await bounded(counting, deadline);
    } catch (error) {
      if (error instanceof DeadlineExceeded || (error as { code?: number }).code === 50) return undefined; // MaxTimeMSExpired
      throw error;
    }
  }

  private writablePart(document: StoredDocument): Record<string, unknown> {
    const writable: Record<string, unknown> = {};
    for (const name of Object.keys(this.entity.writable.properties)) {
      if (document[name] !== undefined) writable[name] = document[name];
    }
    return JSON.parse(JSON.stringify(writable)) as Record<string, unknown>;
  }

  private async current(id: string, expectedVersion?: number, session?: ClientSession): Promise<StoredDocument> {
    const current = await this.findById(id, { session });
    if (current === null) throw this.notFound(id);
    if (expectedVersion !== undefined && current.version !== expectedVersion)
      throw this.changedMeanwhile(id, expectedVersion);
    return current;
  }

  private changedMeanwhile(id: string, expectedVersion: number | undefined): AppError {
    return expectedVersion !== undefined ? changedSince(this.label, id, expectedVersion) : keptChanging(this.label, id);
  }

  /**
   * Read, compute the new writable fields, write them back only if nobody wrote in between.
   * With an expected version (If-Match) a document at another version is a 412.
   *
   * Every write is in a transaction, so there is nothing to retry here: reads come from the
   * transaction's snapshot, and a second read would see the same version again. A concurrent
   * commit surfaces as a write conflict (TransientTransactionError), and withTransaction retries
   * the whole read-compute-write, which then reads the new version; a version mismatch that
   * still gets through fails it.
   */
  private async rewrite(
    session: ClientSession,
    id: string,
    expectedVersion: number | undefined,
    compute: (current: StoredDocument) => Record<string, unknown>,
  ): Promise<StoredDocument> {
    const current = await this.current(id, expectedVersion, session);
    const writable = compute(current);
    this.assertIdentityKept(current, writable);

    const server: Record<string, unknown> = {};
    for (const name of Object.keys(this.entity.server.properties)) {
      if (current[name] !== undefined) server[name] = current[name];
    }
    const next = {
      _id: current._id,
      ...writable,
      ...server,
      version: current.version + 1,
      createdAt: current.createdAt,
      updatedAt: new Date(),
    };
    let written: StoredDocument | null;
    try {
      written = await this.model
        .findOneAndReplace({ _id: current._id, version: current.version }, next, {
          returnDocument: 'after',
          runValidators: true,
          session,
        })
        .lean<StoredDocument>()
        .exec();
    } catch (error) {
      throw this.translate(error);
    }
    if (written === null) throw this.changedMeanwhile(id, expectedVersion);
    return written;
  }

  private assertIdentityKept(current: StoredDocument, writable: Record<string, unknown>): void {
    const errors: FieldError[] = [];
    for (const name of this.entity.immutable) {
      if (writable[name] !== current[name]) {
        errors.push({
          in: 'body',
          pointer: `/${name}`,
          message: `cannot change after creation (is ${JSON.stringify(current[name])})`,
        });
      }
    }
    if (errors.length > 0) throw AppError.validation(errors);
  }

  /** Database refusals that are the client's doing, as problems; anything else unchanged. */
  private translate(error: unknown): unknown {
    const duplicate = error as { code?: number; keyPattern?: Record<string, unknown> };
    if (duplicate.code === 11000) return duplicateOf(this.label, Object.keys(duplicate.keyPattern ?? {}));
    if (error instanceof mongoose.Error.ValidationError) {
      return AppError.validation(
        Object.values(error.errors).map((e) => ({
          in: 'body',
          pointer: `/${e.path.replace(/\./g, '/')}`,
          message: e.message,
        })),
      );
    }
    if (error instanceof mongoose.Error.StrictModeError) {
      return AppError.validation([
        { in: 'body', pointer: `/${error.path ?? ''}`, message: 'is not an allowed property' },
      ]);
    }
    return error;
  }
}
