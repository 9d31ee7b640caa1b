// The change feed's data: every write to the shop's collections, in the order MongoDB's oplog gives
// them, handed to the service's feed clients. Built this way because:
// - One change stream per instance, fanned out synchronously to every subscriber: a stream holds a
//   connection (its getMore waits on the server) and costs the server an oplog scan of its own, so
//   one per client would not scale with clients; one stream reads each event once, in order.
// - Positions are MongoDB's resume tokens: the same on every instance of one replica set and
//   ordered as their `_data` strings, so any instance can continue a feed another one served, and
//   a subscriber drops what it already has by comparing tokens.
// - A subscriber is a reader at a position, paced by its own client: onChange answers false when
//   the client's buffer is full, and nothing more is offered until resume(). At the head it gets
//   the live fan-out; behind it (paused, or resuming from a recent position) it reads the ring of
//   the last events, in batches, until it is at the head again; further behind (older, or any
//   position after a restart) a short-lived catch-up stream of its own reads MongoDB from its
//   position until the ring holds the rest. So a client that reads is never cut off, however much
//   it has to catch up, and what waits for a slow one is the ring, shared, not a queue of its own.
// - A subscriber whose position the ring no longer holds (it stayed paused while the ring turned
//   over) ends with 'behind', and so does a catch-up paused longer than catchUpPauseMs, giving its
//   slot back: catch-ups are few at once (maxCatchUps), so a mass reconnect after a restart queues
//   rather than opening a stream per client. Its client resumes from its last position.
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
import { stopReading } from './stream-stop.ts';

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
  /** After onChange answered false: offer changes again, from the position on. */
  resume(): void;
  close(): void;
}

/**
 * Why the feed ended a subscription: it stopped; it could not go on without a gap; or the
 * subscriber stayed paused while the ring turned over past its position (or, catching up, longer
 * than catchUpPauseMs), and resumes from its position with a new subscription.
 */
export type EndReason = 'stopped' | 'failed' | 'behind';

export interface SubscribeOptions {
  /** Changes of other collections are not offered (they still move `position`). */
  collections: readonly string[];
  /** Where to continue: changes after this position. Absent: from the feed's head now. */
  after?: mongo.ResumeToken;
  /**
   * Synchronous; in order; each change once. First called a macrotask after subscribe() resolved,
   * so the code right after the caller's await (writing a stream's first frame) comes before it.
   * Answers false when the subscriber can take no more for now (its client's buffer is full):
   * nothing more is offered until it calls resume(). Any other answer, or none, takes the next.
   */
  onChange(change: Change): unknown;
  /** The feed ended the subscription. */
  onEnd(reason: EndReason): void;
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
  /** Events kept in memory for paused and reconnecting subscribers (default 2,000). */
  replayEvents?: number;
  /** Catch-up streams open at once (default 4); more subscribers wait for one to finish. */
  maxCatchUps?: number;
  /** How long a catch-up stream waits for its paused subscriber before ending it ('behind') to give its slot back. */
  catchUpPauseMs?: number;
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

/** Where a subscriber's changes come from next. */
type Source = 'catch-up' | 'ring' | 'live';

class Subscriber implements FeedSubscription {
  /** Everything up to here went through onChange (or was not theirs): the position, and what is never offered again. */
  private offered: Token;
  source: Source = 'ring';
  /** Nothing is offered before the macrotask after subscribe() resolved. */
  released = false;
  paused = false;
  ended = false;
  /** A batch of the ring is due in a coming macrotask. */
  private scheduled = false;
  /** A catch-up waiting for the subscriber to be released or resumed. */
  private waking: (() => void) | undefined;
  private readonly collections: ReadonlySet<string>;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly options: SubscribeOptions,
    from: Token,
  ) {
    this.collections = new Set(options.collections);
    this.offered = from;
  }

  get position(): mongo.ResumeToken {
    if (this.source === 'live') {
      const head = this.feed.headData;
      if (head !== undefined && head > this.offered._data) return { _data: head };
    }
    return this.offered;
  }

  /** Neither ended nor paused: a change offered now goes to onChange. */
  takes(): boolean {
    return !this.ended && !this.paused;
  }

  /** The `_data` of the position: changes up to it are dropped. */
  get data(): string {
    return this.offered._data;
  }

  /** One change, in token order; one this subscriber already has is dropped. Another collection's only moves the position. */
  offer(change: Change): void {
    if (!this.takes() || (change.token as Token)._data <= this.offered._data) return;
    this.offered = change.token as Token;
    if (!this.collections.has(change.collection)) return;
    let more: unknown;
    try {
      more = this.options.onChange(change);
    } catch (error) {
      this.feed.log.error({ err: error }, 'change feed: a subscriber failed on a change; ending it');
      this.end('failed');
      return;
    }
    if (more === false && this.takes()) {
      this.paused = true;
      this.feed.stats.pauses++;
      // The live fan-out waits for no one: the ring holds what comes meanwhile.
      if (this.source === 'live') this.feed.readRing(this);
    }
  }

  /** Everything up to `data` was offered: a catch-up's position past its last event. */
  passed(data: string): void {
    if (!this.ended && data > this.offered._data) this.offered = { _data: data };
  }

  /** The caller has its subscription (and wrote what comes first): changes may go out. */
  release(): void {
    this.released = true;
    if (this.source === 'ring') this.feed.serve(this);
    this.wake();
  }

  resume(): void {
    if (this.ended || !this.paused) return;
    this.paused = false;
    // In a macrotask of its own: the caller (a 'drain' listener, or onChange itself) is not re-entered.
    if (this.source === 'ring') this.schedule();
    this.wake();
  }

  /** The ring's next batch, in a coming macrotask (others' I/O goes first). */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.feed.serve(this);
    });
  }

  /** Waits until released, resumed or ended; false after `ms` without. */
  woken(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waking = undefined;
        resolve(false);
      }, ms).unref();
      this.waking = () => {
        clearTimeout(timer);
        this.waking = undefined;
        resolve(true);
      };
    });
  }

  /** A catch-up waiting for this subscriber looks again. */
  wake(): void {
    this.waking?.();
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.feed.forget(this);
    this.wake();
  }

  end(reason: EndReason): void {
    if (this.ended) return;
    this.close();
    if (reason === 'behind') this.feed.stats.behind++;
    try {
      this.options.onEnd(reason);
    } catch (error) {
      this.feed.log.error({ err: error }, 'change feed: a subscriber failed on its end');
    }
  }
}

// --- the feed ------------------------------------------------------------------------------

const RESTART_DELAY_MS = 500;
/** Events a subscriber reading the ring gets per macrotask: a long replay does not hold the event loop. */
const RING_BATCH = 256;
/**
 * Events per batch of a catch-up stream: what a paused catch-up holds in memory (the driver keeps
 * its batch), rather than up to 16 MB.
 */
const CATCH_UP_BATCH = 100;

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

type Stream = mongo.ChangeStream<mongo.Document, RawChange>;

export class ChangeFeed {
  private readonly db: mongo.Db;
  private readonly collections: readonly string[];
  private readonly maxCatchUps: number;
  private readonly catchUpPauseMs: number;
  private readonly maxAwaitMs: number;
  private readonly failAfterMs: number;
  /** The last events the live stream delivered, oldest first. */
  private readonly ring: Ring<Change>;
  /** The heads the live stream passed between events (a client may hold one), within the ring's span. */
  private readonly heads: Ring<string>;
  /** The position just before the ring's oldest event: the ring serves every position from here to the head. */
  private floor: string | undefined;
  /** The ring pushed out an event: its floor is that event's, no longer where the live stream started. */
  private turnedOver = false;
  private current: Token | undefined;
  private live: Stream | undefined;
  private following: Promise<void> | undefined;
  private stopped = true;
  private readonly isStopped = () => this.stopped;
  /** Since when the live stream has been failing; undefined while it runs. */
  private failingSince: number | undefined;
  /** When (Date.now()) the live stream last answered: every getMore does, within maxAwaitMs when idle. */
  private answeredAt = 0;
  private readonly subscribers = new Set<Subscriber>();
  /** The subscribers reading the ring (or paused on it): those the ring must not turn over past. */
  private readonly ringReaders = new Set<Subscriber>();
  /** Open catch-up streams, each with its closing once that began. */
  private readonly catchUpStreams = new Map<Stream, Promise<void> | undefined>();
  /** The loops reading catch-up streams, which stop() waits for. */
  private readonly catchUpReaders = new Set<Promise<void>>();
  private catchUpsOpen = 0;
  /** An update without its post-image was logged once. */
  private warnedImages = false;
  private readonly waiting: { resolve: () => void; reject: (error: Error) => void }[] = [];

  /**
   * What the feed did since it was built, for /metrics and the tests: subscribers now; events read;
   * restarts of the live stream; catch-up streams opened; pauses (a subscriber answered false);
   * subscribers ended 'behind'.
   */
  readonly stats = { subscribers: 0, events: 0, restarts: 0, catchUps: 0, pauses: 0, behind: 0 };

  constructor(
    client: mongo.MongoClient,
    dbName: string,
    options: ChangeFeedOptions,
    readonly log: FastifyBaseLogger,
  ) {
    this.db = client.db(dbName);
    this.collections = [...options.collections];
    this.maxCatchUps = Math.max(1, options.maxCatchUps ?? 4);
    this.catchUpPauseMs = options.catchUpPauseMs ?? 30_000;
    this.maxAwaitMs = options.maxAwaitMs ?? 500;
    this.failAfterMs = options.failAfterMs ?? 30_000;
    const replayEvents = Math.max(0, options.replayEvents ?? 2_000);
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

  /**
   * Whether the live stream answered within `ms`: it does at least every maxAwaitMs while MongoDB
   * serves it, so a longer silence means it is interrupted or stuck (a failover, a frozen server, a
   * resume in progress) and what happened since on other instances is not known here yet.
   */
  answeredWithin(ms: number): boolean {
    return this.running && Date.now() - this.answeredAt <= ms;
  }

  /** How long the live stream waits for events before answering empty (its getMores' maxAwaitTimeMS). */
  get awaitMs(): number {
    return this.maxAwaitMs;
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
   * by its reader between two commands (see stream-stop.ts); one whose command does not return in
   * time (MongoDB gone) is closed under it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(new Error('the change feed stopped'));
    // A catch-up waiting for its paused subscriber stops waiting.
    for (const subscriber of this.subscribers) subscriber.wake();
    await stopReading(Promise.all([this.following, ...this.catchUpReaders]), this.maxAwaitMs, async () => {
      await this.live?.close().catch(() => undefined);
      await Promise.all([...this.catchUpStreams.keys()].map((stream) => this.closeCatchUp(stream)));
    });
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
    // From the head, what comes before the release waits in the ring like any other.
    if (after === undefined || this.replayable(after._data)) {
      this.readRing(subscriber);
    } else {
      subscriber.source = 'catch-up';
      try {
        await this.catchUp(subscriber, after);
      } catch (error) {
        subscriber.close();
        throw error;
      }
    }
    setImmediate(() => subscriber.release());
    return subscriber;
  }

  /** @internal A subscriber that ended or closed. */
  forget(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    this.ringReaders.delete(subscriber);
    this.stats.subscribers = this.subscribers.size;
  }

  /** @internal From now on the subscriber reads the ring, from its position. */
  readRing(subscriber: Subscriber): void {
    subscriber.source = 'ring';
    this.ringReaders.add(subscriber);
    if (subscriber.released && !subscriber.paused) subscriber.schedule();
  }

  /**
   * @internal Offers a subscriber reading the ring the events after its position, a batch per
   * macrotask, until it pauses or reaches the head, where it joins the live fan-out. One whose
   * position the ring no longer holds ends ('behind').
   */
  serve(subscriber: Subscriber): void {
    if (!subscriber.takes() || !subscriber.released || subscriber.source !== 'ring') return;
    if (!this.holdsAfter(subscriber.data)) {
      subscriber.end('behind');
      return;
    }
    const first = this.ring.firstAbove(subscriber.data);
    const last = Math.min(this.ring.length, first + RING_BATCH);
    for (let index = first; index < last; index++) {
      subscriber.offer(this.ring.at(index));
      if (!subscriber.takes()) return;
    }
    if (last < this.ring.length) {
      subscriber.schedule();
    } else {
      // Everything up to the head went out: the live fan-out brings what follows.
      this.ringReaders.delete(subscriber);
      subscriber.source = 'live';
    }
  }

  /**
   * Whether the ring holds every event after a subscriber's position: it is at or past the floor,
   * or the ring has pushed nothing out (a subscriber's position is never before the live stream's
   * start with events in between: catch-ups hand over only once they have them).
   */
  private holdsAfter(data: string): boolean {
    return this.floor !== undefined && (data >= this.floor || !this.turnedOver);
  }

  /**
   * Whether the ring serves a subscriber from `data`: it holds everything after it, and the position
   * is one the feed passed (an event, a head, the floor). Otherwise MongoDB decides.
   */
  private replayable(data: string): boolean {
    const head = this.current?._data;
    if (this.floor === undefined || head === undefined || data < this.floor || data > head) return false;
    const first = this.ring.firstAbove(data);
    return (
      data === this.floor ||
      data === head ||
      (first > 0 && (this.ring.at(first - 1).token as Token)._data === data) ||
      this.isHead(data)
    );
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
      ...(after !== undefined && { startAfter: after, batchSize: CATCH_UP_BATCH }),
    });
  }

  /** One read of the live stream: an event fanned out, or the head moved past what it scanned. */
  private async step(stream: Stream): Promise<void> {
    const raw = await stream.tryNext();
    if (this.stopped) return;
    if (stream === this.live) this.answeredAt = Date.now();
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
      this.turnedOver = true;
      while (this.heads.length > 0 && this.heads.at(0) < floor) this.heads.shift();
      // A subscriber still before the floor would lose the event pushed out: it resumes elsewhere.
      for (const reader of this.ringReaders) if (!this.holdsAfter(reader.data)) reader.end('behind');
    }
    for (const subscriber of this.subscribers) if (subscriber.source === 'live') subscriber.offer(change);
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
      this.turnedOver = false;
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

  private endAll(reason: EndReason): void {
    for (const subscriber of [...this.subscribers]) subscriber.end(reason);
  }

  // --- catch-ups ---------------------------------------------------------------------------

  /**
   * Opens a catch-up stream after `after` for the subscriber, once a slot is free; resolves once
   * MongoDB accepted the position, rejects FeedPositionLost or FeedPositionInvalid when it did not.
   * The stream then runs on its own until the ring holds what follows, and hands the subscriber over.
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

  /**
   * Reads a catch-up stream, as fast as its subscriber takes it, until the subscriber's position is
   * one the ring serves from (it reads the ring from there) or it ends; then closes the stream.
   */
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
      if (!(await this.turnOf(subscriber))) return;
      for (;;) {
        if (raw !== null) subscriber.offer(changeOf(raw));
        const token = stream.resumeToken as Token | null | undefined;
        if (token != null) subscriber.passed(dataOf(token));
        if (subscriber.ended || this.isStopped()) return;
        // The ring holds every event after its floor: the subscriber goes on from it, and the slot is free.
        // So it does at the present (an empty batch) while the floor is where the live stream started:
        // MongoDB started it after every write committed then, all of which the catch-up has read since.
        if (this.floor !== undefined && (subscriber.data >= this.floor || (raw === null && !this.turnedOver))) {
          this.readRing(subscriber);
          return;
        }
        // Paused: the cursor is not read (nor its next batch asked for) until the subscriber resumes.
        if (!(await this.turnOf(subscriber))) return;
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

  /**
   * Waits while a catch-up's subscriber is not released yet or paused. False when the catch-up
   * is over: the subscriber ended, the feed stopped, or the subscriber stayed paused for
   * catchUpPauseMs (it ends 'behind', and the slot goes to a subscriber waiting for one).
   */
  private async turnOf(subscriber: Subscriber): Promise<boolean> {
    const giveUpAt = Date.now() + this.catchUpPauseMs;
    while (!subscriber.ended && !this.isStopped() && (!subscriber.released || subscriber.paused)) {
      if (!(await subscriber.woken(giveUpAt - Date.now()))) {
        subscriber.end('behind');
        return false;
      }
    }
    return !subscriber.ended && !this.isStopped();
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
