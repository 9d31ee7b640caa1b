// The unit of work: the one way the service writes, in one of three forms.
// - A transaction (run): withTransaction, with its retries, deadline and three outcomes, in which
//   the repositories' write methods record every document they change (Tx.record, called by them
//   and by nothing else). Right before the commit, in the same transaction, the audit trail stores
//   an entry per recorded change and the request's Idempotency-Key guard stores the write's
//   result; so a write that fails or aborts leaves neither, and an attempt retried after a
//   transient error starts again from no changes.
// - One atomic write of one document (runAtomic), for the document API's create, replace and
//   patch when the request has no Idempotency-Key: no transaction, but the same guarantees. The
//   write carries its audit entry as a stamp on the document, which the audit stream stores once
//   the write is in the oplog (src/data/audit-stream.ts); its outcome is known, or said unknown,
//   by writeAtomically (src/data/atomic-write.ts). Until the audit stream runs (MongoDB not yet
//   reached, migrations pending), such writes run as transactions.
// - Several writes of one document each (runEach), for a bulk import: no transaction, each write
//   atomic alone and carrying a stamp of its own; once they are written, their writer stores
//   their entries from the stamps. A run stopped in between leaves the stamps on the documents,
//   which the audit stream (or the writer, finding them again: storeLanded) turns into entries.
// Only after a write committed are its changes published, in process, to whoever subscribed (the
// change feed, caches): a refused, aborted or unknown-outcome write publishes nothing.

import mongoose, { type ClientSession, type Connection, type mongo } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import type { AuditAction } from '../domain/audit.ts';
import { writeAtomically } from './atomic-write.ts';
import { AuditStream, STAMP_FIELD, type AuditStamp } from './audit-stream.ts';
import type { StampedWrite } from './audit.ts';
import { Deadline } from './deadline.ts';
import { DEFAULT_TRANSACTION_OPTIONS, withTransaction, type TransactionOptions } from './transactions.ts';

/**
 * Who makes a write (the API key, its id and name, and the request, as the entries name them) and
 * on what terms: the request's deadline, and the guard of its Idempotency-Key when it has one.
 */
export interface Actor {
  keyId: string;
  keyName: string;
  requestId: string;
  /** When the request's answer must leave; absent (the command-line tools): the transaction's own budget. */
  deadline?: Deadline;
  guard?: WriteGuard;
}

/**
 * Makes a write happen at most once for one Idempotency-Key (src/data/idempotency.ts). The record
 * that the write committed, with its result, is written in the write's own transaction: either
 * both are stored or neither, so a retry either replays that result or runs the write itself.
 */
export interface WriteGuard {
  /** The result of an earlier request with this key that committed: the write must not run again. */
  readonly committed?: { result: unknown };
  /** Inside the write's transaction, records that it committed with `result`; throws when the claim was taken over. */
  commitIn(session: ClientSession, result: unknown): Promise<void>;
}

/** The part of a written document a change names: never its contents. */
export interface Written {
  _id: mongo.ObjectId;
  /** Absent for documents without versions (API keys). */
  version?: number;
}

/** A transaction of the unit of work: its session, and where the repositories' writes say what they changed. */
export interface Tx {
  readonly session: ClientSession;
  /** Records one document written: as it is after the write, or as it was before a deletion. */
  record(action: AuditAction, collection: string, document: Written): void;
  /** None: the transaction's session names its request (src/data/served-requests.ts). */
  readonly command?: undefined;
}

/** One atomic write of one document: no session; the write carries its stamp and keeps its ids. */
export interface AtomicTx {
  readonly session?: undefined;
  record(action: AuditAction, collection: string, document: Written): void;
  /** The audit stamp of the write of document `id` in `collection`: the same on every attempt. */
  stampFor(action: AuditAction, collection: string, id: mongo.ObjectId): AuditStamp;
  /** The id of a new document: the same on every attempt, so a second landing is a duplicate of the first. */
  newId(): mongo.ObjectId;
  /** The `comment` option of the write's command: its request's id (src/data/served-requests.ts). */
  readonly command: { comment?: string };
}

/** Where a write of one document runs: a caller's transaction, or an atomic write of its own. */
export type WriteTx = Tx | AtomicTx;

/** The document one atomic write wrote, as stored. */
export type WrittenDocument = Written & Record<string, unknown> & { version: number };

/** One document a committed write changed, as published after the commit (and as its audit entry says). */
export interface Change {
  collection: string;
  documentId: string;
  /** The version after the write; for a deletion, the version deleted; absent for API keys. */
  version?: number;
  action: AuditAction;
  requestId: string;
  actor: { keyId: string; keyName: string };
  /** When the write was made, just before its commit: one time for all the changes of one write. */
  at: Date;
}

/** Hears the changes of each committed write, together, in the order they were written. */
export type ChangeListener = (changes: readonly Change[]) => void;

/**
 * Where the changes of a write are kept: the audit trail (src/data/audit.ts), in the write's
 * transaction, or through its stream, once that runs, for atomic writes.
 */
export interface ChangeLog {
  insertIn(session: ClientSession, changes: readonly Change[]): Promise<void>;
  /** The entries of writes that carried their stamps; one stored already stays as it is. */
  insertStamped(writes: readonly StampedWrite[]): Promise<void>;
  /** The audit stream while it runs: writes of one document without an Idempotency-Key are then atomic writes. */
  readonly stream: AuditStream | undefined;
}

/** On whose behalf a write runs, and where it logs. */
export interface WriteContext {
  actor: Actor;
  log: FastifyBaseLogger;
}

/** The change a write of `document` makes, as published (without its time, which is the write's). */
function changeOf(actor: Actor, action: AuditAction, collection: string, document: Written): Omit<Change, 'at'> {
  return {
    collection,
    documentId: document._id.toHexString(),
    ...(document.version !== undefined && { version: document.version }),
    action,
    requestId: actor.requestId,
    actor: { keyId: actor.keyId, keyName: actor.keyName },
  };
}

/** The change a stamped write made, as published: the stamp names its actor, request and time. */
function changeOfStamped({ stamp, collection, documentId, version }: StampedWrite): Change {
  return {
    collection,
    documentId,
    ...(version !== undefined && { version }),
    action: stamp.action,
    requestId: stamp.requestId,
    actor: { keyId: stamp.keyId, keyName: stamp.keyName },
    at: stamp.at,
  };
}

export class UnitOfWork {
  private readonly listeners = new Set<ChangeListener>();

  constructor(
    private readonly connection: Connection,
    private readonly audit: ChangeLog,
  ) {}

  /** Hears every committed write from now on; returns the way to stop hearing. */
  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `work` in one transaction on behalf of `actor`: the audit entries of the changes it
   * recorded and the guard's result are written in that transaction, and the changes published
   * once it committed. When the guard says an earlier request with the same Idempotency-Key
   * committed, its result is returned: nothing runs, nothing is published.
   */
  async run<T>(
    { actor, log }: WriteContext,
    work: (tx: Tx) => Promise<T>,
    transaction: TransactionOptions = DEFAULT_TRANSACTION_OPTIONS,
  ): Promise<T> {
    const { guard } = actor;
    if (guard?.committed !== undefined) return guard.committed.result as T;
    let committed: Change[] = [];
    const result = await withTransaction(
      this.connection,
      async (session) => {
        // One list per attempt: what an aborted attempt recorded goes away with it.
        const recorded: Omit<Change, 'at'>[] = [];
        const tx: Tx = {
          session,
          record: (action, collection, document) => recorded.push(changeOf(actor, action, collection, document)),
        };
        const value = await work(tx);
        const at = new Date();
        const changes = recorded.map((change) => ({ ...change, at }));
        await this.audit.insertIn(session, changes);
        await guard?.commitIn(session, value);
        committed = changes;
        return value;
      },
      log,
      transaction,
      actor.deadline ?? Deadline.after(transaction.maxTimeMs, actor.requestId),
    );
    this.publish(committed, log);
    return result;
  }

  /**
   * Runs `work`, the write of one document, as one atomic MongoDB write carrying its audit stamp,
   * attempted again while MongoDB is unavailable and its outcome unknown (writeAtomically). With an
   * Idempotency-Key (its result is stored with the write) or before the audit stream runs, `work`
   * runs in a transaction instead; the answer is the same either way.
   */
  async runAtomic<T extends WrittenDocument>(context: WriteContext, work: (tx: WriteTx) => Promise<T>): Promise<T> {
    const { actor, log } = context;
    if (actor.guard !== undefined || this.audit.stream === undefined) return this.run(context, work);
    let stamp: AuditStamp | undefined;
    let target: { collection: string; id: mongo.ObjectId } | undefined;
    const ids: mongo.ObjectId[] = [];
    let recorded: Omit<Change, 'at'>[] = [];
    const attempt = (): Promise<T> => {
      recorded = [];
      let nextId = 0;
      const tx: AtomicTx = {
        record: (action, collection, document) => recorded.push(changeOf(actor, action, collection, document)),
        stampFor: (action, collection, id) => {
          target = { collection, id };
          stamp ??= AuditStream.stamp(action, actor);
          return stamp;
        },
        newId: () => {
          const id = ids[nextId] ?? new mongoose.mongo.ObjectId();
          ids[nextId++] = id;
          return id;
        },
        command: { comment: actor.requestId },
      };
      return work(tx);
    };
    const landed = async (): Promise<T | null> => {
      if (target === undefined || stamp === undefined) return null;
      const found = await this.database()
        .collection(target.collection)
        .findOne({ _id: target.id, [`${STAMP_FIELD}.id`]: stamp.id }, { comment: actor.requestId });
      if (found === null) return null;
      recorded = [changeOf(actor, stamp.action, target.collection, found)];
      return found as unknown as T;
    };
    const result = await writeAtomically({
      attempt,
      landed,
      deadline: actor.deadline ?? Deadline.after(DEFAULT_TRANSACTION_OPTIONS.maxTimeMs, actor.requestId),
      log,
      retryAfterSeconds: DEFAULT_TRANSACTION_OPTIONS.retryAfterSeconds,
    });
    const at = stamp?.at ?? new Date();
    this.publish(
      recorded.map((change) => ({ ...change, at })),
      log,
    );
    return result;
  }

  /**
   * Runs `work`, writes of several documents that need no transaction together (a bulk import's
   * batch), each an atomic write carrying an audit stamp of its own. Once `work` is done, the
   * entries of its writes are stored from their stamps and the changes published. When `work`
   * fails partway, the writes that landed are looked for and their entries stored before the
   * failure goes on. No Idempotency-Key: its writer keeps its own place (the import's checkpoint).
   */
  async runEach<T>({ actor, log }: WriteContext, work: (tx: AtomicTx) => Promise<T>): Promise<T> {
    const at = new Date();
    const stamps = new Map<string, { collection: string; id: mongo.ObjectId; stamp: AuditStamp }>();
    const written: StampedWrite[] = [];
    const tx: AtomicTx = {
      // The stamp says what the write did (the action stampFor was given).
      record: (_action, collection, document) => {
        const stamp = stamps.get(`${collection}/${document._id.toHexString()}`)?.stamp;
        if (stamp === undefined)
          throw new Error(`runEach: ${collection} ${document._id.toHexString()} carries no stamp`);
        written.push({ stamp, collection, documentId: document._id.toHexString(), version: document.version });
      },
      stampFor: (action, collection, id) => {
        const key = `${collection}/${id.toHexString()}`;
        let entry = stamps.get(key);
        if (entry === undefined) {
          entry = { collection, id, stamp: { ...AuditStream.stamp(action, actor), at } };
          stamps.set(key, entry);
        }
        return entry.stamp;
      },
      newId: () => new mongoose.mongo.ObjectId(),
      command: { comment: actor.requestId },
    };
    let result: T;
    try {
      result = await work(tx);
    } catch (error) {
      // What landed before the failure committed: its entries are owed now.
      const attempted = [...stamps.values()];
      for (const collection of new Set(attempted.map((entry) => entry.collection))) {
        const mine = attempted.filter((entry) => entry.collection === collection);
        await this.landed(collection, mine)
          .then((documents) => this.storeLanded(collection, documents, log))
          .catch((lookup: unknown) =>
            log.warn({ err: lookup }, 'the entries of writes that landed before a failure wait for the audit stream'),
          );
      }
      throw error;
    }
    await this.stored(written, log);
    return result;
  }

  /**
   * Stores the entries of stamped writes found stored (`documents`, each with its stamp and
   * version), and publishes their changes: an entry stored already stays as it is.
   */
  async storeLanded(
    collection: string,
    documents: readonly (Written & { _audit?: AuditStamp })[],
    log: FastifyBaseLogger,
  ): Promise<void> {
    const writes: StampedWrite[] = [];
    for (const { _id, version, _audit: stamp } of documents)
      if (stamp !== undefined) writes.push({ stamp, collection, documentId: _id.toHexString(), version });
    await this.stored(writes, log);
  }

  /** Stores the entries of stamped writes that committed, then publishes their changes. */
  private async stored(writes: readonly StampedWrite[], log: FastifyBaseLogger): Promise<void> {
    if (writes.length === 0) return;
    await this.audit.insertStamped(writes);
    this.publish(writes.map(changeOfStamped), log);
  }

  /** Of the documents these writes were for, those that carry their stamps (a majority read: committed for good). */
  private async landed(
    collection: string,
    attempted: readonly { id: mongo.ObjectId; stamp: AuditStamp }[],
  ): Promise<(Written & { _audit?: AuditStamp })[]> {
    return this.database()
      .collection(collection)
      .find(
        {
          _id: { $in: attempted.map((entry) => entry.id) },
          [`${STAMP_FIELD}.id`]: { $in: attempted.map((entry) => entry.stamp.id) },
        },
        { projection: { version: 1, [STAMP_FIELD]: 1 }, readConcern: { level: 'majority' } },
      )
      .toArray();
  }

  private database(): mongo.Db {
    const { db } = this.connection;
    if (db === undefined) throw new mongoose.mongo.MongoNotConnectedError('MongoDB is not connected yet');
    return db;
  }

  /** A listener's failure is its own: the write committed, and its answer stands. */
  private publish(changes: readonly Change[], log: FastifyBaseLogger): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (error) {
        log.error({ err: error }, 'a change listener failed');
      }
    }
  }
}
