// The audit trail on MongoDB. Every write of the service runs through AuditTrail.transaction: one
// replica-set transaction (withTransaction) in which the write records each document it changes
// (Tx.record), and the entries are inserted with the same session right before the commit. So a
// write that fails or aborts leaves no entry, a committed write always has its entries, and an
// attempt retried after a transient error starts again from no entries (none is duplicated).
// Entries expire through the TTL index on expiresAt, AUDIT_RETENTION_DAYS after their write.
// Reading them is the generic list machinery's: a DocumentRepository over the AuditEvent
// declaration (src/domain/audit.ts), which allows no writes.

import mongoose, { type ClientSession, type Connection, type mongo } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import { AuditEvent, type AuditAction } from '../domain/audit.ts';
import { DocumentRepository, type RepositoryOptions } from './documents.ts';
import type { Deadline } from './deadline.ts';
import { DEFAULT_TRANSACTION_OPTIONS, withTransaction, type TransactionOptions } from './transactions.ts';

const { ObjectId } = mongoose.Types;

export const AUDIT_COLLECTION = AuditEvent.collection;

const DAY_MS = 86_400_000;

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

/** The part of a written document an entry names: never its contents. */
export interface Written {
  _id: InstanceType<typeof ObjectId>;
  /** Absent for documents without versions (API keys). */
  version?: number;
}

/** A transaction of the audit trail: its session, and where its writes say what they changed. */
export interface Tx {
  readonly session: ClientSession;
  /** Records one document this transaction wrote: as it is after the write, or as it was before a deletion. */
  record(action: AuditAction, collection: string, document: Written): void;
}

export interface AuditEntry {
  _id: InstanceType<typeof ObjectId>;
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

export interface AuditTrailOptions extends RepositoryOptions {
  retentionDays: number;
}

interface Change {
  action: AuditAction;
  collection: string;
  documentId: string;
  documentVersion?: number;
}

/**
 * The model only reads, lean: the collection's validator (its migration) is what holds entries to
 * their shape, and a Mongoose schema could not declare the `collection` field (a path name
 * Mongoose reserves). Filters reach it compiled from the declaration's allowlist (query.ts),
 * already typed, so nothing is left for Mongoose to cast. (The return type is inferred on purpose:
 * written out as Model<any>, it changes how TypeScript compares the entity models elsewhere.)
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

export class AuditTrail {
  /** Reads and lists entries (its entity allows no writes). */
  readonly events: DocumentRepository;
  private readonly model: mongoose.Model<any>;
  private readonly retentionMs: number;

  constructor(
    private readonly connection: Connection,
    options: AuditTrailOptions,
  ) {
    this.model = readerModel(connection);
    this.retentionMs = options.retentionDays * DAY_MS;
    this.events = new DocumentRepository(AuditEvent, this.model, options, this);
  }

  private get entries(): mongo.Collection<AuditEntry> {
    return this.model.collection as unknown as mongo.Collection<AuditEntry>;
  }

  /**
   * Runs `work` in one transaction on behalf of `actor`, and inserts an entry for every document
   * it recorded, in that transaction, and the actor's guard records its result there too. Retries,
   * the deadline and the outcome (committed, not written, unknown) are withTransaction's. When the
   * guard says an earlier request with the same Idempotency-Key committed, its result is returned
   * and nothing runs again.
   */
  async transaction<T>(
    actor: Actor,
    work: (tx: Tx) => Promise<T>,
    log: FastifyBaseLogger,
    options: TransactionOptions = DEFAULT_TRANSACTION_OPTIONS,
  ): Promise<T> {
    const { guard } = actor;
    if (guard?.committed !== undefined) return guard.committed.result as T;
    return withTransaction(
      this.connection,
      async (session) => {
        // One list per attempt: what an aborted attempt recorded goes away with it.
        const changes: Change[] = [];
        const tx: Tx = {
          session,
          record: (action, collection, document) =>
            changes.push({
              action,
              collection,
              documentId: document._id.toHexString(),
              ...(document.version !== undefined && { documentVersion: document.version }),
            }),
        };
        const result = await work(tx);
        await this.insert(session, actor, changes);
        await guard?.commitIn(session, result);
        return result;
      },
      log,
      options,
      actor.deadline,
    );
  }

  /** The entries of one attempt, all at one time: they are one change, committed together. */
  private async insert(session: ClientSession, actor: Actor, changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    const at = new Date();
    const expiresAt = new Date(at.getTime() + this.retentionMs);
    const entries = changes.map((change) => ({
      _id: new ObjectId(),
      at,
      keyId: actor.keyId,
      keyName: actor.keyName,
      ...change,
      requestId: actor.requestId,
      expiresAt,
    }));
    await this.entries.insertMany(entries as AuditEntry[], { session });
  }
}
