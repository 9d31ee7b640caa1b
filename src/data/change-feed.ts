// The change feed's data: every write to the shop's collections, in the order MongoDB's oplog gives
// them, handed to the service's feed clients. Built this way because:
// - One change stream per instance, fanned out synchronously to every subscriber: a stream holds a
//   connection (its getMore waits on the server) and costs the server an oplog scan of its own, so
//   one per client would not scale with clients; one stream reads each event once, in order.
// - Positions are MongoDB's resume tokens: the same on every instance of one replica set and
//   ordered as their `_data` strings, so any instance can continue a feed another one served, and
//   a subscriber drops what it already has by comparing tokens.
// - A ring of the last events serves a reconnecting client from memory, without MongoDB. A
//   position the ring does not hold (older, or any after a restart) gets a short-lived catch-up
//   stream of its own that starts after it; once that has reached the live stream's head, the
//   subscriber joins the live fan-out and drops the live events the catch-up already gave it: no
//   gap, no repeat. Catch-ups are few at once (maxCatchUps), so a mass reconnect after a restart
//   queues rather than opening a stream per client.
// - The collections keep pre- and post-images (changeStreamPreAndPostImages, set by a migration),
//   so each event carries the document exactly as that change left it and as it was before, not
//   a later lookup: a filtered client sees a document leave its filter, and a delete names the
//   version it deleted.
// - The stream resumes itself after a failover or a dropped connection from its last token (the
//   driver first, then this module); when it cannot (the oplog no longer holds its position, or
//   MongoDB stays away longer than failAfterMs) its subscribers end with 'failed' and reconnect.

import { type mongo } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import { STAMP_FIELD } from './audit-stream.ts';
import type { StoredDocument } from './documents.ts';
import { failureKind } from './failures.ts';
import { signed, verified } from './query.ts';

export type ChangeType = 'insert' | 'update' | 'replace' | 'delete';

const CHANGE_TYPES: readonly ChangeType[] = ['insert', 'update', 'replace', 'delete'];

export interface Change {
  /** The event's resume token: a subscriber continues after it. */
  token: mongo.ResumeToken;
  collection: string;
  type: ChangeType;
  /** The document's _id, hex. */
  id: string;
  /** After the change; for a delete the version deleted, when MongoDB kept the pre-image. */
  version: number | undefined;
  /** The event's wallTime. */
  operationTime: Date;
  /** The document after the change: insert, update, replace. */
  after: StoredDocument | undefined;
  /** The document before the change: update, replace, delete, when MongoDB kept it. */
  before: StoredDocument | undefined;
}

export interface FeedSubscription {
  /** Everything up to here was offered to onChange: the last change's token or, when live and idle, the feed's head. */
  readonly position: mongo.ResumeToken;
  close(): void;
}

export interface SubscribeOptions {
  /** Changes of other collections are not offered (they still move `position`). */
  collections: readonly string[];
  /** Where to continue: changes after this position. Absent: from the feed's head now. */
  after?: mongo.ResumeToken;
  /**
   * Synchronous; in order; each change once. First called a macrotask after subscribe() resolved,
   * so the code right after the caller's await (writing a stream's first frame) comes before it.
   */
  onChange(change: Change): void;
  /** The feed ended the subscription: it stopped, or it could not go on without a gap. */
  onEnd(reason: 'stopped' | 'failed'): void;
}

/** The position is older than MongoDB's oplog: what happened since cannot be told. */
export class FeedPositionLost extends Error {
  override readonly name = 'FeedPositionLost';
}

/** MongoDB refused the position: no resume token of this replica set. */
export class FeedPositionInvalid extends Error {
  override readonly name = 'FeedPositionInvalid';
}

export interface ChangeFeedOptions {
  /** The collections whose writes the feed carries. */
  collections: readonly string[];
  /** Events kept in memory for reconnecting clients (default 10,000). */
  replayEvents?: number;
  /** Catch-up streams open at once (default 4); more subscribers wait for one to finish. */
  maxCatchUps?: number;
  /** How long a getMore waits for new events: how often the head moves while nothing happens. */
  maxAwaitMs?: number;
  /** How long the stream may stay interrupted before its subscribers end with 'failed'. */
  failAfterMs?: number;
}

// --- positions -----------------------------------------------------------------------------

/** A resume token as MongoDB gives it (db.watch with ObjectId keys: no type bits). */
interface Token {
  _data: string;
}

/** The `_data` of a token, which orders tokens of one replica set as MongoDB orders its events. */
function dataOf(token: mongo.ResumeToken): string {
  const data = (token as Partial<Token> | null | undefined)?._data;
  if (typeof data !== 'string' || !/^(?:[0-9A-F]{2})+$/.test(data)) {
    throw new TypeError('not a resume token of a change stream: no _data of upper-case hex');
  }
  return data;
}

/** A position as clients hold it: the token's `_data` bytes, signed with the cursors' key in a domain of its own. */
export function encodePosition(key: Buffer, token: mongo.ResumeToken): string {
  return signed(key, 'feed.v1.', Buffer.from(dataOf(token), 'hex'));
}

/** The token of a position this service issued; undefined for a forged, altered or garbled one. */
export function decodePosition(key: Buffer, text: string): Token | undefined {
  const bytes = verified(key, 'feed.v1.', text);
  // MongoDB writes _data in upper-case hex: the same spelling keeps tokens comparable as strings.
  return bytes === undefined ? undefined : { _data: bytes.toString('hex').toUpperCase() };
}

// --- events as the stream delivers them ----------------------------------------------------

interface RawChange {
  _id: Token;
  operationType: ChangeType;
  ns: { db: string; coll: string };
  documentKey: { _id: { toString(): string } };
  clusterTime: mongo.Timestamp;
  wallTime?: Date;
  fullDocument?: StoredDocument | null;
  fullDocumentBeforeChange?: StoredDocument | null;
}

function changeOf(raw: RawChange): Change {
  const after = raw.fullDocument ?? undefined;
  const before = raw.fullDocumentBeforeChange ?? undefined;
  return {
    token: raw._id,
    collection: raw.ns.coll,
    type: raw.operationType,
    id: raw.documentKey._id.toString(),
    version: raw.operationType === 'delete' ? before?.version : after?.version,
    operationTime: raw.wallTime ?? new Date(raw.clusterTime.t * 1000),
    after,
    before,
  };
}

/**
 * MongoDB's codes for a position of this replica set it cannot continue from: ChangeStreamHistoryLost
 * when the oplog was truncated past it; ChangeStreamFatalError when the event it names is not there
 * (rolled back, or older than an oplog that was never truncated, which MongoDB reports so). Either
 * way what happened since cannot be told.
 */
const POSITION_LOST_CODES = new Set([
  280, // ChangeStreamFatalError
  286, // ChangeStreamHistoryLost
]);
const INVALID_TOKEN_CODES = new Set([
  9, // FailedToParse
  260, // InvalidResumeToken
  40647, // resume token must be a document
  50811, // KeyString format error
]);

function codeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

// --- the ring ------------------------------------------------------------------------------

/** A bounded queue of items in ascending token order, looked up by token. */
class Ring<T> {
  private readonly items: (T | undefined)[];
  private start = 0;
  private size = 0;

  constructor(
    readonly capacity: number,
    private readonly tokenOf: (item: T) => string,
  ) {
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  at(index: number): T {
    return this.items[(this.start + index) % this.capacity] as T;
  }

  /** Appends; answers the item it pushed out to make room, if any. */
  push(item: T): T | undefined {
    if (this.capacity === 0) return item;
    let evicted: T | undefined;
    if (this.size === this.capacity) evicted = this.shift();
    this.items[(this.start + this.size) % this.capacity] = item;
    this.size++;
    return evicted;
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.at(0);
    this.items[this.start] = undefined;
    this.start = (this.start + 1) % this.capacity;
    this.size--;
    return item;
  }

  /** The index of the first item whose token is above `data` (length: none). */
  firstAbove(data: string): number {
    let low = 0;
    let high = this.size;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.tokenOf(this.at(middle)) <= data) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  clear(): void {
    this.items.fill(undefined);
    this.start = 0;
    this.size = 0;
  }
}

// --- subscribers ---------------------------------------------------------------------------

class Subscriber implements FeedSubscription {
  /** Every event up to this token was offered (or held to be): what a catch-up or the live fan-out must not repeat. */
  seen: string;
  /** The position clients see: everything up to here went through onChange (or was not theirs). */
  private offered: Token;
  /** What arrived before the subscriber was handed out (changes, and positions a catch-up passed); undefined once released. */
  private held: (Change | Token)[] | undefined = [];
  live = false;
  ended = false;
  private readonly collections: ReadonlySet<string>;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly options: SubscribeOptions,
    from: Token,
  ) {
    this.collections = new Set(options.collections);
    this.offered = from;
    this.seen = from._data;
  }

  get position(): mongo.ResumeToken {
    if (this.live && this.held === undefined) {
      const head = this.feed.headData;
      if (head !== undefined && head > this.offered._data) return { _data: head };
    }
    return this.offered;
  }

  /** One event, in token order; one this subscriber already has is dropped. */
  offer(change: Change): void {
    const data = (change.token as Token)._data;
    if (this.ended || data <= this.seen) return;
    this.seen = data;
    if (this.held !== undefined) {
      this.held.push(change);
      return;
    }
    this.deliver(change);
  }

  /** Everything up to `data` was offered: a catch-up's position past its last event. */
  passed(data: string): void {
    if (this.ended || data <= this.seen) return;
    this.seen = data;
    if (this.held === undefined) this.offered = { _data: data };
    else this.held.push({ _data: data });
  }

  /** From now on changes go to onChange as they come, those held first. */
  release(): void {
    // Still held while they go out, so that the position is theirs meanwhile, not the head's.
    for (const entry of this.held ?? []) {
      if (this.ended) break;
      if ('collection' in entry) this.deliver(entry);
      else this.offered = entry;
    }
    this.held = undefined;
  }

  private deliver(change: Change): void {
    this.offered = change.token as Token;
    // Another collection's change moves the position and is not offered.
    if (!this.collections.has(change.collection)) return;
    try {
      this.options.onChange(change);
    } catch (error) {
      this.feed.log.error({ err: error }, 'change feed: a subscriber failed on a change; ending it');
      this.end('failed');
    }
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.feed.forget(this);
  }

  end(reason: 'stopped' | 'failed'): void {
    if (this.ended) return;
    this.close();
    try {
      this.options.onEnd(reason);
    } catch (error) {
      this.feed.log.error({ err: error }, 'change feed: a subscriber failed on its end');
    }
  }
}

// --- the feed ------------------------------------------------------------------------------

const RESTART_DELAY_MS = 500;
/** How long past maxAwaitMs stop() waits for a getMore to return before closing its stream under it. */
const STOP_GRACE_MS = 1_000;

interface Settlement {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function settlement(): Settlement {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A timer that resolves `promise` with false, and can be cancelled (stop() must not wait for it). */
function delay(ms: number): { promise: Promise<false>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

type Stream = mongo.ChangeStream<mongo.Document, RawChange>;

export class ChangeFeed {
  private readonly db: mongo.Db;
  private readonly collections: readonly string[];
  private readonly maxCatchUps: number;
  private readonly maxAwaitMs: number;
  private readonly failAfterMs: number;
  /** The last events the live stream delivered, oldest first. */
  private readonly ring: Ring<Change>;
  /** The heads the live stream passed between events (a client may hold one), within the ring's span. */
  private readonly heads: Ring<string>;
  /** The position just before the ring's oldest event: the ring serves every position from here to the head. */
  private floor: string | undefined;
  private current: Token | undefined;
  private live: Stream | undefined;
  private following: Promise<void> | undefined;
  private stopped = true;
  private readonly isStopped = () => this.stopped;
  /** Since when the live stream has been failing; undefined while it runs. */
  private failingSince: number | undefined;
  private readonly subscribers = new Set<Subscriber>();
  /** Open catch-up streams, each with its closing once that began. */
  private readonly catchUpStreams = new Map<Stream, Promise<void> | undefined>();
  /** The loops reading catch-up streams, which stop() waits for. */
  private readonly catchUpReaders = new Set<Promise<void>>();
  private catchUpsOpen = 0;
  /** An update without its post-image was logged once. */
  private warnedImages = false;
  private readonly waiting: { resolve: () => void; reject: (error: Error) => void }[] = [];

  /** What the feed did since it was built, for /metrics and the tests. */
  readonly stats = { subscribers: 0, events: 0, restarts: 0, catchUps: 0 };

  constructor(
    client: mongo.MongoClient,
    dbName: string,
    options: ChangeFeedOptions,
    readonly log: FastifyBaseLogger,
  ) {
    this.db = client.db(dbName);
    this.collections = [...options.collections];
    this.maxCatchUps = Math.max(1, options.maxCatchUps ?? 4);
    this.maxAwaitMs = options.maxAwaitMs ?? 500;
    this.failAfterMs = options.failAfterMs ?? 30_000;
    const replayEvents = Math.max(0, options.replayEvents ?? 10_000);
    this.ring = new Ring(replayEvents, (change) => (change.token as Token)._data);
    this.heads = new Ring(Math.max(1, replayEvents), (data) => data);
  }

  /** The position of the live stream now: a subscriber without `after` starts here. */
  get head(): mongo.ResumeToken {
    if (this.current === undefined) throw new Error('the change feed has no position yet: start() it');
    return this.current;
  }

  /** Started, not stopped, and its head known: subscribe() can serve. */
  get running(): boolean {
    return !this.stopped && this.current !== undefined;
  }

  /** @internal The head's `_data`, for subscribers' positions. */
  get headData(): string | undefined {
    return this.current?._data;
  }

  /**
   * Opens the one change stream; resolves once it is open and the head is known. (Whether the
   * collections keep their images is not asked here: the service's MongoDB user may not list
   * collections' options. Pending migrations keep an instance unready; an update that comes
   * without its document says so in the log.)
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    const stream = this.open(undefined);
    this.live = stream;
    // The initial aggregate's postBatchResumeToken: the position the feed starts from.
    stream.once('resumeTokenChanged', (token: mongo.ResumeToken) => {
      this.floor ??= dataOf(token);
    });
    const opened = settlement();
    this.following = this.follow(stream, opened);
    await opened.promise;
  }

  /**
   * Ends every subscription with onEnd('stopped') and closes every stream. Each stream is closed
   * by its reader between two getMores: closed under a getMore in flight, the driver's kill of
   * its cursor can lose the race with the getMore's end and leave the cursor open on the server.
   * A getMore returns within maxAwaitMs; one that does not (MongoDB gone) is closed under.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(new Error('the change feed stopped'));
    const readers = Promise.all([this.following, ...this.catchUpReaders]);
    const timer = delay(this.maxAwaitMs + STOP_GRACE_MS);
    if (!(await Promise.race([readers.then(() => true), timer.promise]))) {
      await this.live?.close().catch(() => undefined);
      await Promise.all([...this.catchUpStreams.keys()].map((stream) => this.closeCatchUp(stream)));
      await readers;
    }
    timer.cancel();
    for (const subscriber of [...this.subscribers]) subscriber.end('stopped');
  }

  /**
   * Changes after `after` (or from the head now), in order, each once. Rejects with
   * FeedPositionLost or FeedPositionInvalid before any onChange; a position the ring does not
   * hold waits for a catch-up stream of its own while maxCatchUps are open.
   */
  async subscribe(options: SubscribeOptions): Promise<FeedSubscription> {
    if (this.stopped) throw new Error('the change feed is not running');
    const after = options.after === undefined ? undefined : { _data: dataOf(options.after) };
    const subscriber = new Subscriber(this, options, after ?? (this.head as Token));
    this.subscribers.add(subscriber);
    this.stats.subscribers = this.subscribers.size;
    try {
      const replay = after === undefined ? [] : this.replayFrom(after._data);
      if (replay !== undefined) {
        for (const change of replay) subscriber.offer(change);
        subscriber.live = true;
      } else {
        await this.catchUp(subscriber, after as Token);
      }
    } catch (error) {
      subscriber.close();
      throw error;
    }
    setImmediate(() => subscriber.release());
    return subscriber;
  }

  /** @internal A subscriber that ended or closed. */
  forget(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    this.stats.subscribers = this.subscribers.size;
  }

  /**
   * The ring's events after `data`, when the ring holds everything after it and the position is
   * one the feed passed (an event, a head, the floor); undefined otherwise: MongoDB decides.
   */
  private replayFrom(data: string): Change[] | undefined {
    const head = this.current?._data;
    if (this.floor === undefined || head === undefined || data < this.floor || data > head) return undefined;
    const first = this.ring.firstAbove(data);
    const known =
      data === this.floor ||
      data === head ||
      (first > 0 && (this.ring.at(first - 1).token as Token)._data === data) ||
      this.isHead(data);
    if (!known) return undefined;
    const replay: Change[] = [];
    for (let index = first; index < this.ring.length; index++) replay.push(this.ring.at(index));
    return replay;
  }

  private isHead(data: string): boolean {
    const above = this.heads.firstAbove(data);
    return above > 0 && this.heads.at(above - 1) === data;
  }

  /** The one stream's pipeline, or a catch-up's: the feed's collections and the four kinds of write. */
  private open(after: Token | undefined): Stream {
    const pipeline = [
      { $match: { 'ns.coll': { $in: [...this.collections] }, operationType: { $in: [...CHANGE_TYPES] } } },
      // The documents travel whole in the images: the update's delta is not needed, nor the audit
      // stamps, which are the audit stream's and no part of a resource (they would only fill the ring).
      { $unset: ['updateDescription', `fullDocument.${STAMP_FIELD}`, `fullDocumentBeforeChange.${STAMP_FIELD}`] },
    ];
    return this.db.watch<mongo.Document, RawChange>(pipeline, {
      fullDocument: 'whenAvailable',
      fullDocumentBeforeChange: 'whenAvailable',
      maxAwaitTimeMS: this.maxAwaitMs,
      ...(after !== undefined && { startAfter: after }),
    });
  }

  /** One read of the live stream: an event fanned out, or the head moved past what it scanned. */
  private async step(stream: Stream): Promise<void> {
    const raw = await stream.tryNext();
    if (this.stopped) return;
    if (raw !== null) {
      const change = changeOf(raw);
      if (change.type === 'update' && change.after === undefined && !this.warnedImages) {
        this.warnedImages = true;
        this.log.warn(
          { collection: change.collection },
          'change feed: an update came without its document: the collections keep no pre- and post-images ' +
            '(migrations pending?); updates reach clients without documents until they do',
        );
      }
      this.publish(change);
    }
    // After the last event of a batch the driver holds the batch's postBatchResumeToken: at or
    // past that event, and past whatever it scanned that the $match left out.
    const token = stream.resumeToken as Token | null | undefined;
    if (token != null) {
      const data = dataOf(token);
      if (this.current === undefined || data > this.current._data) {
        this.current = { _data: data };
        if (raw === null || data !== raw._id._data) this.heads.push(data);
      }
    }
    this.floor ??= this.current?._data;
  }

  private publish(change: Change): void {
    const data = (change.token as Token)._data;
    this.stats.events++;
    this.current = change.token as Token;
    this.floor ??= data;
    // The ring pushes out its oldest event (or, holding none, this one): the floor moves to it.
    const evicted = this.ring.push(change);
    if (evicted !== undefined) {
      const floor = (evicted.token as Token)._data;
      this.floor = floor;
      while (this.heads.length > 0 && this.heads.at(0) < floor) this.heads.shift();
    }
    for (const subscriber of this.subscribers) if (subscriber.live) subscriber.offer(change);
  }

  /**
   * Reads the live stream until stopped, reopening it from its head after a failure; the first
   * read settles `opened` (start() waits for it). Closes the stream when done.
   */
  private async follow(stream: Stream, opened: Settlement): Promise<void> {
    try {
      await this.step(stream);
    } catch (error) {
      this.stopped = true;
      await stream.close().catch(() => undefined);
      opened.reject(error);
      return;
    }
    opened.resolve();
    while (!this.isStopped()) {
      try {
        if (this.live === undefined) throw new Error('the change feed has no stream');
        await this.step(this.live);
        this.failingSince = undefined;
      } catch (error) {
        if (this.isStopped()) break;
        await this.interrupted(error);
      }
    }
    await this.live?.close().catch(() => undefined);
  }

  private async interrupted(error: unknown): Promise<void> {
    this.stats.restarts++;
    await this.live?.close().catch(() => undefined);
    if (POSITION_LOST_CODES.has(codeOf(error) ?? 0)) {
      // The oplog moved past the head (the stream was away too long): what happened meanwhile is
      // unknown, so nobody may go on from here. The feed starts again from now.
      this.log.error(
        { reason: (error as Error).message },
        'change feed: the oplog no longer holds its position; its subscribers end and it starts again from now',
      );
      this.endAll('failed');
      this.current = undefined;
      this.floor = undefined;
      this.ring.clear();
      this.heads.clear();
    } else {
      // Expected with any failover or restart, and recovered from: the reason, not a stack.
      this.log.warn(
        { reason: (error as Error).message, kind: failureKind(error) },
        'change feed interrupted; resuming',
      );
      this.failingSince ??= Date.now();
      if (Date.now() - this.failingSince >= this.failAfterMs) {
        this.failingSince = Date.now();
        this.endAll('failed');
      }
    }
    await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
    if (this.isStopped()) return;
    this.live = this.open(this.current);
  }

  private endAll(reason: 'stopped' | 'failed'): void {
    for (const subscriber of [...this.subscribers]) subscriber.end(reason);
  }

  // --- catch-ups ---------------------------------------------------------------------------

  /**
   * Opens a catch-up stream after `after` for the subscriber, once a slot is free; resolves once
   * MongoDB accepted the position, rejects FeedPositionLost or FeedPositionInvalid when it did not.
   * The stream then runs on its own until it reaches the live head, and hands the subscriber over.
   */
  private async catchUp(subscriber: Subscriber, after: Token): Promise<void> {
    await this.slot();
    this.stats.catchUps++;
    const stream = this.open(after);
    this.catchUpStreams.set(stream, undefined);
    const opened = settlement();
    const reading = this.followCatchUp(subscriber, stream, opened);
    this.catchUpReaders.add(reading);
    void reading.then(() => this.catchUpReaders.delete(reading));
    await opened.promise;
  }

  /** Reads a catch-up stream until its subscriber joins the live fan-out or ends; then closes it. */
  private async followCatchUp(subscriber: Subscriber, stream: Stream, opened: Settlement): Promise<void> {
    try {
      let raw: RawChange | null;
      try {
        raw = await stream.tryNext();
      } catch (error) {
        opened.reject(positionError(error));
        return;
      }
      if (this.isStopped()) {
        opened.reject(new Error('the change feed stopped'));
        return;
      }
      opened.resolve();
      for (;;) {
        if (raw !== null) subscriber.offer(changeOf(raw));
        const token = stream.resumeToken as Token | null | undefined;
        if (token != null) subscriber.passed(dataOf(token));
        if (subscriber.ended || this.isStopped()) return;
        const head = this.current?._data;
        // Everything up to the live head was offered: live events from here on are new or dropped as seen.
        if (head !== undefined && subscriber.seen >= head) {
          subscriber.live = true;
          return;
        }
        raw = await stream.tryNext();
      }
    } catch (error) {
      if (subscriber.ended || this.isStopped()) return;
      this.log.warn(
        { reason: (error as Error).message, kind: failureKind(error) },
        'change feed: a catch-up stream failed; its subscriber ends',
      );
      subscriber.end('failed');
    } finally {
      await this.closeCatchUp(stream);
    }
  }

  /** Waits for a free catch-up slot, first come first served. */
  private async slot(): Promise<void> {
    if (this.catchUpsOpen < this.maxCatchUps) {
      this.catchUpsOpen++;
      return;
    }
    // The slot is handed over by the catch-up that frees it: the count stays.
    await new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Closes a catch-up stream (once, whoever asks first) and hands its slot on once MongoDB let go of its cursor. */
  private closeCatchUp(stream: Stream): Promise<void> {
    const known = this.catchUpStreams.get(stream);
    if (known !== undefined) return known;
    const closing = (async () => {
      await stream.close().catch(() => undefined);
      this.catchUpStreams.delete(stream);
      const next = this.waiting.shift();
      if (next !== undefined) next.resolve();
      else this.catchUpsOpen--;
    })();
    this.catchUpStreams.set(stream, closing);
    return closing;
  }
}

/** What a refused catch-up means for the client: its position expired, or was never MongoDB's. */
function positionError(error: unknown): unknown {
  const code = codeOf(error) ?? 0;
  if (POSITION_LOST_CODES.has(code)) return new FeedPositionLost((error as Error).message, { cause: error });
  if (INVALID_TOKEN_CODES.has(code)) {
    return new FeedPositionInvalid((error as Error).message, { cause: error });
  }
  return error;
}
