// The audit trail on MongoDB: an entry per document that a committed write changed, inserted by the
// unit of work (src/data/unit-of-work.ts) in the write's own transaction, right before its commit.
// Entries expire through the TTL index on expiresAt, AUDIT_RETENTION_DAYS after their write.
// Reading them is the generic list machinery's: a DocumentRepository over the AuditEvent
// declaration (src/domain/audit.ts), which allows no writes.

import mongoose, { type ClientSession, type Connection, type mongo } from 'mongoose';
import { AuditEvent, type AuditAction } from '../domain/audit.ts';
import { DocumentRepository, type RepositoryOptions } from './documents.ts';
import type { Change } from './unit-of-work.ts';

const { ObjectId } = mongoose.Types;

export const AUDIT_COLLECTION = AuditEvent.collection;

const DAY_MS = 86_400_000;

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

export class AuditTrail {
  /** Reads and lists entries (its entity allows no writes). */
  readonly events: DocumentRepository;
  private readonly retentionMs: number;

  constructor(connection: Connection, options: AuditTrailOptions) {
    this.retentionMs = options.retentionDays * DAY_MS;
    this.events = new DocumentRepository(AuditEvent, readerModel(connection), options);
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
}
