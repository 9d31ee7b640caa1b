// Changes to API keys as they happen: a change stream on the api_keys collection alone, so that
// every instance forgets a revoked or changed key within the stream's lag (well under a second)
// instead of after its key cache's time. Keys change rarely: one small stream, on a client of its
// own (see stores.ts), that reads only ids and prefixes. When the stream breaks and the driver
// cannot resume it, the instance says so and reopens it from now; meanwhile the cache's time
// (AUTH_CACHE_TTL_MS) is what bounds a revoked key, and once the stream is back everything cached
// is forgotten, since what changed while it was down is unknown.

import type { mongo } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import { API_KEYS_COLLECTION, type KeyChange } from './api-keys.ts';
import { failureKind } from './failures.ts';
import { stopReading } from './stream-stop.ts';

interface RawKeyChange {
  operationType: string;
  documentKey?: { _id: mongo.ObjectId };
  fullDocument?: { prefix?: string };
}

export interface KeyChangesOptions {
  /** How long one getMore waits for a change: stop() waits at most this (plus a grace) for it. */
  maxAwaitMs?: number;
  /** How soon a broken stream is opened again. */
  reopenMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

export class KeyChanges {
  private stream: mongo.ChangeStream<mongo.Document, RawKeyChange> | undefined;
  private stopped = true;
  private reading: Promise<void> | undefined;
  private readonly maxAwaitMs: number;
  private readonly reopenMs: number;

  constructor(
    private readonly client: mongo.MongoClient,
    private readonly dbName: string,
    /** Told of each change; 'all' when anything may have changed unseen (the stream (re)opened). */
    private readonly changed: (change: KeyChange) => void,
    private readonly log: FastifyBaseLogger,
    options: KeyChangesOptions = {},
  ) {
    this.maxAwaitMs = options.maxAwaitMs ?? 500;
    this.reopenMs = options.reopenMs ?? 2_000;
  }

  /** Opens the stream; resolves once MongoDB has opened it, rejects when it cannot. */
  async start(): Promise<void> {
    this.stopped = false;
    try {
      await this.open();
    } catch (error) {
      this.stopped = true;
      throw error;
    }
    this.reading = this.follow();
  }

  /**
   * Ends the reading loop, which closes the stream between two commands (see stream-stop.ts); one
   * that does not end in time (MongoDB gone) has its stream closed under it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const closeStream = async () => this.stream?.close().catch(() => undefined);
    await stopReading(this.reading ?? Promise.resolve(), this.maxAwaitMs, closeStream);
    await closeStream();
  }

  /** A stream from now; its first read opens it, and whatever was known before may be stale. */
  private async open(): Promise<void> {
    const stream = this.client
      .db(this.dbName)
      .collection(API_KEYS_COLLECTION)
      .watch<mongo.Document, RawKeyChange>(
        [{ $project: { operationType: 1, documentKey: 1, 'fullDocument.prefix': 1 } }],
        { maxAwaitTimeMS: this.maxAwaitMs },
      );
    try {
      await this.read(stream);
    } catch (error) {
      await stream.close().catch(() => undefined);
      throw error;
    }
    this.stream = stream;
    this.changed('all');
  }

  private async read(stream: mongo.ChangeStream<mongo.Document, RawKeyChange>): Promise<void> {
    const raw = await stream.tryNext();
    if (raw === null) return;
    const id = raw.documentKey?._id;
    if (id === undefined) {
      // drop, rename, invalidate: the collection itself changed.
      this.changed('all');
      return;
    }
    const prefix = raw.fullDocument?.prefix;
    this.changed({ id: id.toHexString(), ...(prefix !== undefined && { prefix }) });
  }

  /** Reads until stopped; a broken stream is reported once and reopened until it opens. */
  private async follow(): Promise<void> {
    while (!this.isStopped()) {
      try {
        if (this.stream === undefined) throw new Error('the key change stream is not open');
        await this.read(this.stream);
      } catch (error) {
        if (this.isStopped()) break;
        // The driver resumes what it can by itself: this one it could not.
        this.log.warn(
          { reason: (error as Error).message, kind: failureKind(error) },
          'key change stream down: until it is back, a revoked key stops within AUTH_CACHE_TTL_MS',
        );
        await this.stream?.close().catch(() => undefined);
        this.stream = undefined;
        if (await this.reopen()) this.log.info('key change stream back: a revoked key stops within its lag');
      }
    }
    await this.stream?.close().catch(() => undefined);
  }

  /** Tries to open the stream again every reopenMs until it opens (true) or the stream stops (false). */
  private async reopen(): Promise<boolean> {
    while (!this.isStopped()) {
      await sleep(this.reopenMs);
      if (this.isStopped()) return false;
      if (
        await this.open().then(
          () => true,
          () => false,
        )
      )
        return true;
    }
    return false;
  }

  /** Read through a call: stop() sets it while a read awaits. */
  private isStopped(): boolean {
    return this.stopped;
  }
}
