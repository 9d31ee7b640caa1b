// The audit trail on MongoDB: an entry per document that a committed write changed, inserted by the
// unit of work (src/data/unit-of-work.ts) in the write's own transaction, right before its commit.
// Entries expire through the TTL index on expiresAt, AUDIT_RETENTION_DAYS after their write.
// Reading them is the generic list machinery's: a DocumentRepository over the AuditEvent
// declaration (src/domain/audit.ts), which allows no writes.

import mongoose, { type ClientSession, type Connection, type mongo } from 'mongoose';
import { AuditEvent, type AuditAction } from '../domain/audit.ts';
import { DocumentRepository, type RepositoryOptions } from './documents.ts';
import type { Change } from './unit-of-work.ts';
import type { AuditStamp, AuditStream } from './audit-stream.ts';
import { Deadline } from './deadline.ts';

const { ObjectId } = mongoose.Types;

export const AUDIT_COLLECTION = AuditEvent.collection;

const DAY_MS = 86_400_000;
const DUPLICATE_KEY = 11000;

export interface AuditEntry {
  _id: mongo.ObjectId;
  at: Date;
  keyId: string;
  keyName: string;
  action: AuditAction;
  collection: string;
  documentId: string;
  documentVersion?: number;
  requestId: string;
  expiresAt: Date;
}

/** A write that carried its audit stamp: which document it wrote, and that document's version after it. */
export interface StampedWrite {
  stamp: AuditStamp;
  collection: string;
  documentId: string;
  version?: number;
}

/** The entry a stamp names, stored under the stamp's id. */
export function entryOfStamp(
  { stamp, collection, documentId, version }: StampedWrite,
  retentionMs: number,
): AuditEntry {
  return {
    _id: stamp.id,
    at: stamp.at,
    keyId: stamp.keyId,
    keyName: stamp.keyName,
    action: stamp.action,
    collection,
    documentId,
    ...(version !== undefined && { documentVersion: version }),
    requestId: stamp.requestId,
    expiresAt: new Date(stamp.at.getTime() + retentionMs),
  };
}

/**
 * Stores the entries of stamped writes, in any order; an entry stored already (by the audit stream,
 * or an earlier try) stays as it was, since its _id is its stamp's. Answers how many were new.
 */
export async function storeStampedEntries(
  db: mongo.Db,
  entries: readonly AuditEntry[],
): Promise<{ stored: number; duplicates: number }> {
  if (entries.length === 0) return { stored: 0, duplicates: 0 };
  try {
    await db.collection<AuditEntry>(AUDIT_COLLECTION).insertMany([...entries], { ordered: false });
    return { stored: entries.length, duplicates: 0 };
  } catch (error) {
    // Only an insert whose every entry is either stored now or was before has stored them all. A
    // command MongoDB refused as a whole also comes as a bulk error, with no write errors at all.
    if (!(error instanceof mongoose.mongo.MongoBulkWriteError)) throw error;
    const writeErrors = [error.writeErrors].flat();
    const duplicates = writeErrors.filter((writeError) => writeError.code === DUPLICATE_KEY).length;
    if (duplicates === 0 || duplicates !== writeErrors.length || error.insertedCount + duplicates !== entries.length)
      throw error;
    return { stored: error.insertedCount, duplicates };
  }
}

export interface AuditTrailOptions extends RepositoryOptions {
  retentionDays: number;
}

/**
 * The model only reads, lean: the collection's validator (its migration) is what holds entries to
 * their shape, and a Mongoose schema could not declare the `collection` field (a path name
 * Mongoose reserves). (The return type is inferred on purpose: written out as Model<any>, it
 * changes how TypeScript compares the entity models elsewhere.)
 */
function readerModel(connection: Connection) {
  const schema = new mongoose.Schema(
    {},
    {
      collection: AUDIT_COLLECTION,
      strict: false,
      strictQuery: false,
      versionKey: false,
      id: false,
      autoIndex: false,
      autoCreate: false,
    },
  );
  return connection.model(AuditEvent.schemaName, schema, AUDIT_COLLECTION);
}

/** How long settled() waits without a deadline of its caller's (the tests, the command-line tools). */
const SETTLE_TIMEOUT_MS = 30_000;

export class AuditTrail {
  /** Reads and lists entries (its entity allows no writes). */
  readonly events: DocumentRepository;
  private readonly retentionMs: number;

  constructor(connection: Connection, options: AuditTrailOptions) {
    this.retentionMs = options.retentionDays * DAY_MS;
    this.events = new DocumentRepository(AuditEvent, readerModel(connection), options);
  }

  /** The audit stream, while it runs: it stores the entries of atomic writes. */
  private running?: AuditStream;
  private streamStarted!: (stream: AuditStream) => void;
  private readonly started = new Promise<AuditStream>((resolve) => (this.streamStarted = resolve));

  get stream(): AuditStream | undefined {
    return this.running;
  }

  /** From now on (a stream) or no longer (undefined), the stream stores the entries of atomic writes. */
  followedBy(stream: AuditStream | undefined): void {
    this.running = stream;
    if (stream !== undefined) this.streamStarted(stream);
  }

  /**
   * Resolves once the entries of every write answered before the call can be read: the entries of
   * transactions commit with them; those of atomic writes (of this or another instance, before or
   * after a restart) once the audit stream has passed that moment, which needs it running. By the
   * deadline (or SETTLE_TIMEOUT_MS without one), or DeadlineExceeded.
   */
  async settled(deadline: Deadline = Deadline.after(SETTLE_TIMEOUT_MS)): Promise<void> {
    const stream = this.running ?? (await deadline.race(this.started));
    await stream.settled(deadline);
  }

  /** The entries of one write, in its transaction: they are one change, committed together. */
  async insertIn(session: ClientSession, changes: readonly Change[]): Promise<void> {
    const [first] = changes;
    if (first === undefined) return;
    const expiresAt = new Date(first.at.getTime() + this.retentionMs);
    const entries: AuditEntry[] = changes.map((change) => ({
      _id: new ObjectId(),
      at: change.at,
      keyId: change.actor.keyId,
      keyName: change.actor.keyName,
      action: change.action,
      collection: change.collection,
      documentId: change.documentId,
      ...(change.version !== undefined && { documentVersion: change.version }),
      requestId: change.requestId,
      expiresAt,
    }));
    await this.events.collection<AuditEntry>().insertMany(entries, { session });
  }

  /** The entries of writes that carried their stamps, stored by their writer (see UnitOfWork.runEach). */
  async insertStamped(writes: readonly StampedWrite[]): Promise<void> {
    const db = this.events.collection().db;
    await storeStampedEntries(
      db,
      writes.map((write) => entryOfStamp(write, this.retentionMs)),
    );
  }
}
