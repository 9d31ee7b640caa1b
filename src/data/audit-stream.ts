// The audit entries of the writes that carry their own: read back from MongoDB's change stream.
//
// A write of one document that needs no transaction is one atomic MongoDB operation, and its audit
// entry travels in it as a stamp on the document (STAMP_FIELD: the entry's id, the action, the key
// and the request). The stamp reaches the oplog if and only if the write committed. This stream
// turns every stamp it reads into its entry in the audit trail, with the stamp's id as the entry's
// _id (an entry written twice is stored once), then persists its resume position: only after the
// entries it has read are stored. Stopped or killed between a write and its entry, the next start
// resumes from the last persisted position and writes the entry then. So every committed write is
// audited exactly once, nothing that did not commit is audited, and an entry is readable once the
// stream has passed its write: `settled()` waits for that, and the audit routes call it.
//
// Every instance runs one; they share the persisted position, and their entries collide on _id
// rather than repeat. A position older than the oplog keeps is lost history: the stream says so
// at error level, counts it (auditStreamEvents.historyLost) and starts again from now.

import mongoose, { type mongo } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import type { AuditAction } from '../domain/audit.ts';
import { entryOfStamp, storeStampedEntries, type AuditEntry } from './audit.ts';
import type { Deadline } from './deadline.ts';
import { bounded } from './deadline.ts';
import { failureKind } from './failures.ts';
import { stopReading } from './stream-stop.ts';

const { ObjectId } = mongoose.mongo;

/** The field of a stored document that carries the audit entry of the write that made it. */
export const STAMP_FIELD = '_audit';

/** Where the stream keeps its resume position, and the barrier settled() writes. */
export const POSITIONS_COLLECTION = 'stream_positions';

const POSITION_ID = 'audit';
const BARRIER_ID = 'audit-barrier';

/** An audit entry as it travels on the document it names. */
export interface AuditStamp {
  id: InstanceType<typeof ObjectId>;
  action: AuditAction;
  keyId: string;
  keyName: string;
  requestId: string;
  at: Date;
}

interface Position {
  _id: string;
  /** The resume token after the last event whose entry is stored; absent until the first one. */
  token?: mongo.ResumeToken;
  /** Where the stream starts when it has no token yet. */
  startAt: mongo.Timestamp;
}

interface StampedChange {
  _id: mongo.ResumeToken;
  operationType: string;
  clusterTime: mongo.Timestamp;
  ns: { db: string; coll: string };
  documentKey: { _id: unknown };
  fullDocument?: { _audit?: AuditStamp; version?: number };
  updateDescription?: { updatedFields?: { _audit?: AuditStamp; version?: number } };
}

export interface AuditStreamOptions {
  /** The collections whose documents carry stamps. */
  collections: readonly string[];
  retentionDays: number;
  /** Entries stored in one insert at most. */
  batchSize?: number;
  /** How long a getMore waits for new events before the stream stores what it holds. */
  maxAwaitMs?: number;
}

/** What the stream did since the process started, for /metrics and the tests. */
export const auditStreamEvents = { entries: 0, duplicates: 0, restarts: 0, historyLost: 0 };

/** From the write of the newest entry of the last batch stored to its storing: how far behind entries are. */
export const auditStreamLag = { seconds: 0 };

const DAY_MS = 86_400_000;
const RESTART_DELAY_MS = 500;

const timeOf = (timestamp: mongo.Timestamp): bigint => (BigInt(timestamp.t) << 32n) | BigInt(timestamp.i);

export class AuditStream {
  private readonly db: mongo.Db;
  private readonly retentionMs: number;
  private readonly batchSize: number;
  private readonly maxAwaitMs: number;
  private stream?: mongo.ChangeStream<mongo.Document, StampedChange>;
  private running?: Promise<void>;
  private stopped = false;
  private readonly isStopped = () => this.stopped;
  /** The cluster time of the last event whose entry is stored (0: none yet). */
  private storedUpTo = 0n;
  private readonly waiters = new Set<{ at: bigint; resolve: () => void }>();

  constructor(
    private readonly client: mongo.MongoClient,
    dbName: string,
    private readonly options: AuditStreamOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.db = client.db(dbName);
    this.retentionMs = options.retentionDays * DAY_MS;
    this.batchSize = options.batchSize ?? 500;
    this.maxAwaitMs = options.maxAwaitMs ?? 100;
  }

  private get positions(): mongo.Collection<Position> {
    return this.db.collection<Position>(POSITIONS_COLLECTION);
  }

  /** A stamp for a write made now on behalf of `actor`. */
  static stamp(action: AuditAction, actor: { keyId: string; keyName: string; requestId: string }): AuditStamp {
    return {
      id: new ObjectId(),
      action,
      keyId: actor.keyId,
      keyName: actor.keyName,
      requestId: actor.requestId,
      at: new Date(),
    };
  }

  /**
   * Opens the stream where the last run left it (the first run ever: where the migration that made
   * its collection left it). Every stamp written after that position is read by some run.
   */
  async start(): Promise<void> {
    // Its migration creates the collection with the first position: without one, it is pending.
    if ((await this.positions.findOne({ _id: POSITION_ID })) === null) {
      throw new Error(`${POSITIONS_COLLECTION} holds no position: migrations are pending`);
    }
    this.stopped = false;
    await this.open();
    this.running = this.follow();
  }

  /**
   * Ends the reading loop, which closes the stream itself once the command it has in flight is
   * answered (see stream-stop.ts); one that does not (MongoDB gone) has its stream closed under it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = this.running;
    if (running !== undefined) {
      await stopReading(running, this.maxAwaitMs, async () => this.stream?.close().catch(() => undefined));
    }
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }

  /**
   * Resolves once the entries of every write committed before the call are stored: it writes a
   * barrier and waits for the stream to pass it, by the deadline.
   */
  async settled(deadline?: Deadline): Promise<void> {
    const at = timeOf(await bounded(this.barrier(), deadline));
    if (this.storedUpTo >= at) return;
    const passed = new Promise<void>((resolve) => this.waiters.add({ at, resolve }));
    await bounded(passed, deadline);
  }

  /** Writes the barrier document and answers the cluster time of that write. */
  private async barrier(): Promise<mongo.Timestamp> {
    const session = this.client.startSession();
    try {
      await this.db
        .collection(POSITIONS_COLLECTION)
        .updateOne({ _id: BARRIER_ID as never }, { $inc: { n: 1 } }, { upsert: true, session });
      const time = session.operationTime;
      if (time === undefined) throw new Error('MongoDB did not say when the audit barrier was written');
      return time;
    } finally {
      await session.endSession();
    }
  }

  private async open(): Promise<void> {
    const position = await this.positions.findOne({ _id: POSITION_ID });
    if (position === null) throw new Error('the audit stream has no position; start() stores one');
    const pipeline = [
      {
        $match: {
          $or: [
            {
              'ns.coll': { $in: [...this.options.collections] },
              operationType: { $in: ['insert', 'replace'] },
              [`fullDocument.${STAMP_FIELD}`]: { $exists: true },
            },
            {
              'ns.coll': { $in: [...this.options.collections] },
              operationType: 'update',
              [`updateDescription.updatedFields.${STAMP_FIELD}`]: { $exists: true },
            },
            { 'ns.coll': POSITIONS_COLLECTION, 'documentKey._id': BARRIER_ID },
          ],
        },
      },
      // Only what an entry needs crosses the wire, not the documents themselves.
      {
        $project: {
          operationType: 1,
          clusterTime: 1,
          ns: 1,
          documentKey: 1,
          [`fullDocument.${STAMP_FIELD}`]: 1,
          'fullDocument.version': 1,
          [`updateDescription.updatedFields.${STAMP_FIELD}`]: 1,
          'updateDescription.updatedFields.version': 1,
        },
      },
    ];
    this.stream = this.db.watch<mongo.Document, StampedChange>(pipeline, {
      ...(position.token !== undefined ? { resumeAfter: position.token } : { startAtOperationTime: position.startAt }),
      batchSize: this.batchSize,
      maxAwaitTimeMS: this.maxAwaitMs,
    });
  }

  /**
   * Reads events, stores their entries a batch at a time, then the position; restarts on failure.
   * Closes the stream when stopped, between two commands (see stop()).
   */
  private async follow(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.drain();
      } catch (error) {
        if (this.isStopped()) break;
        auditStreamEvents.restarts++;
        const code = (error as { code?: number }).code;
        if (code === 286) {
          // ChangeStreamHistoryLost: the oplog no longer holds the position.
          auditStreamEvents.historyLost++;
          this.log.error(
            { err: error },
            'audit stream: the oplog no longer holds its position; writes made while it was behind may lack entries',
          );
          await this.positions.updateOne(
            { _id: POSITION_ID },
            { $set: { startAt: await this.barrier() }, $unset: { token: '' } },
          );
        } else {
          // Expected with any failover or restart, and recovered from: the reason, not a stack.
          this.log.warn(
            { reason: (error as Error).message, kind: failureKind(error) },
            'audit stream interrupted; resuming',
          );
        }
        await this.stream?.close().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
        if (this.isStopped()) break;
        await this.open().catch((reopen: unknown) => this.log.warn({ err: reopen }, 'audit stream: reopening failed'));
      }
    }
    await this.stream?.close().catch(() => undefined);
  }

  private async drain(): Promise<void> {
    const stream = this.stream;
    if (stream === undefined) throw new Error('the audit stream is not open');
    let entries: AuditEntry[] = [];
    let lastTime: mongo.Timestamp | undefined;
    while (!this.stopped) {
      const change = await stream.tryNext();
      if (change !== null) {
        lastTime = change.clusterTime;
        const entry = this.entryOf(change);
        if (entry !== undefined) entries.push(entry);
        if (entries.length < this.batchSize) continue;
      }
      if (lastTime === undefined) continue;
      await this.store(entries, stream.resumeToken);
      this.passed(timeOf(lastTime));
      entries = [];
      lastTime = undefined;
    }
  }

  private entryOf(change: StampedChange): AuditEntry | undefined {
    if (change.ns.coll === POSITIONS_COLLECTION) return undefined;
    const stamp = change.fullDocument?._audit ?? change.updateDescription?.updatedFields?._audit;
    if (stamp === undefined) return undefined;
    const version = change.fullDocument?.version ?? change.updateDescription?.updatedFields?.version;
    return entryOfStamp(
      { stamp, collection: change.ns.coll, documentId: String(change.documentKey._id), version },
      this.retentionMs,
    );
  }

  /** Stores entries (those already stored are left as they are), then the position after them. */
  private async store(entries: AuditEntry[], token: mongo.ResumeToken): Promise<void> {
    const newest = entries.at(-1)?.at;
    if (newest !== undefined) auditStreamLag.seconds = Math.max(0, Date.now() - newest.getTime()) / 1000;
    const { stored, duplicates } = await storeStampedEntries(this.db, entries);
    auditStreamEvents.entries += stored;
    auditStreamEvents.duplicates += duplicates;
    await this.positions.updateOne({ _id: POSITION_ID }, { $set: { token } });
  }

  private passed(at: bigint): void {
    if (at > this.storedUpTo) this.storedUpTo = at;
    for (const waiter of this.waiters) {
      if (waiter.at <= this.storedUpTo) {
        waiter.resolve();
        this.waiters.delete(waiter);
      }
    }
  }
}
