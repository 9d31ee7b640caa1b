// The document cache: the answers of reads by id (GET /v1/<collection>/<id>), kept per instance in
// memory, bounded in bytes (least recently used out first), so a hot document costs no query. It
// holds the answer as GET writes it (the serialized body, as the UTF-8 bytes sent) with its version,
// stores only what is read again, and is never stale for the writer: built this way because:
// - A document read once and never again would cost its reader the storing and evict one that is
//   read again (a scan of cold ids would empty the cache of its hot set). So a miss stores its
//   answer only if its document was missed recently (its second miss; the "doorkeeper" of TinyLFU):
//   the first only records the key in a set of recent misses bounded by count (one key per 2 KiB
//   of budget, at least 1,024; about 120 bytes a key, so some 6% beyond CACHE_MAX_MB, not counted
//   in it). That set holds keys only: it decides whether a settled load may be kept, never what is
//   served, so it cannot admit a stale answer and outlives evictions and resets (a document that
//   was popular is stored again at its next miss). A refresh (Cache-Control: no-cache) is a miss
//   like any other, except that it replaces an answer already stored: its client asked for the
//   current one, and the next reads should see it too.
// - The bytes are kept, not the string: they are what a hit sends (no encoding per hit), they live
//   outside V8's heap (a full cache neither grows old space nor is compacted by the GC), and each
//   body is a Buffer of its own rather than a slice of Node's shared 8 KiB pool, which would keep
//   the whole slab alive. CACHE_MAX_MB counts those bytes, the key and a measured overhead.
// - This instance's writes are heard from the unit of work, which publishes each write's changes
//   after its commit and before its answer leaves: the entry is gone before the writer can read again.
// - Other instances' and tools' writes come through the change feed, followed from its head and
//   never paused: they evict within the feed's lag (storekeeper_cache_invalidation_lag_seconds).
// - Without the feed nothing could tell it of those, so it stores only while its subscription is
//   live: before the feed started, and from the moment the subscription ends (any reason), it is
//   empty and every read goes to MongoDB, until a new subscription is live. The same while the
//   feed's stream is silent (a failover, a frozen server, a resume in progress: it answers every
//   maxAwaitMs while it runs): the first read that notices empties the cache, and nothing is stored
//   until the stream answers again, so an answer is never staler than the feed's lag plus that bound.
// - A read that started before an invalidation of its document never stores its older answer after
//   it: an invalidation takes the document's load in flight out of use (later reads query anew) and
//   raises the version that load must have read to be stored; a reset stores none of those in
//   flight. Versions only grow, so a change the feed reports late (this instance's own write, read
//   back meanwhile) leaves a stored answer of that version or a later one where it is.
// - Concurrent misses of one document make one query, which each reader awaits within its own deadline.

import { LRUCache } from 'lru-cache';
import type { FastifyBaseLogger } from 'fastify';
import type { Change as FeedChange, ChangeFeed, FeedSubscription } from './change-feed.ts';
import { bounded, type Deadline } from './deadline.ts';
import type { Change as WrittenChange } from './unit-of-work.ts';

/** The answer of a read by id, as GET's serializer writes it: what a load gives. */
export interface LoadedAnswer {
  /** The resource, serialized: the exact body of the 200. */
  body: string;
  version: number;
}

/** The answer of a read by id: a load's, or the stored one, whose body is its UTF-8 bytes. */
export interface CachedAnswer {
  body: string | Buffer;
  version: number;
}

/** A stored answer. */
interface Entry {
  body: Buffer;
  version: number;
}

/**
 * Bytes an entry costs beyond its body's and key's (the entry and Buffer objects, the Buffer's
 * allocation, the LRU's slots): measured on Node 20 at about 270 bytes of V8 heap and 520 of RSS
 * for an entry with a 1-byte body; its body outside V8's heap on top of that.
 */
export const ENTRY_OVERHEAD_BYTES = 512;

/** Recent misses remembered per byte of budget: one key per 2 KiB. */
const BYTES_PER_RECENT_MISS = 2_048;

/** The fewest recent misses remembered, however small the budget. */
const MIN_RECENT_MISSES = 1_024;

/** How much longer than its getMores' wait the feed's stream may be silent before the cache stops trusting it. */
const SILENCE_BEYOND_AWAIT_MS = 1_500;

/** How soon a subscription that ended or could not start is tried again. */
const RESUBSCRIBE_MS = 1_000;

/** Why an entry left: room for another (size), this instance's write, or a change the feed reported. */
export type EvictionCause = 'size' | 'write' | 'feed';

/** One load of a document in flight, which its readers share. */
interface Load {
  answer: Promise<LoadedAnswer | null>;
  /** The lowest version it may store: changes reported since it started may be newer than what it read. */
  floor: number;
  /** New readers may share it: no change was reported since it started. */
  joinable: boolean;
  /** Its answer may be stored: one of its readers missed the document recently before, or it replaces a stored one. */
  admitted: boolean;
}

export class DocumentCache {
  private readonly entries: LRUCache<string, Entry>;
  /** The keys missed lately, stored or not: a miss of one of them may store its answer. */
  private readonly recentMisses: LRUCache<string, true>;
  /** Every load in flight, by document, until it settles: each later invalidation raises their floors. */
  private readonly loads = new Map<string, Set<Load>>();
  private readonly collections: ReadonlySet<string>;
  /** The subscription that makes storing safe; undefined: the cache is empty and stores nothing. */
  private subscription: FeedSubscription | undefined;
  private feed: ChangeFeed | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** The feed's stream went silent: the entries were dropped, and nothing is stored until it answers. */
  private silent = false;
  /** What the cache did since it was built, for /metrics and the tests. */
  readonly stats = {
    hits: 0,
    misses: 0,
    /** Misses of a document not missed recently: they only remembered its key (their load may still be stored, if another reader of it was admitted). */
    unadmitted: 0,
    evictions: { size: 0, write: 0, feed: 0 } as Record<EvictionCause, number>,
    resets: {} as Record<string, number>,
  };
  /** Told, for each change the feed reports, how long after it the cache heard it (seconds). */
  onInvalidationLag: ((seconds: number) => void) | undefined;

  constructor(
    { maxBytes, collections }: { maxBytes: number; collections: readonly string[] },
    private readonly log: FastifyBaseLogger,
  ) {
    this.collections = new Set(collections);
    this.entries = new LRUCache<string, Entry>({
      maxSize: maxBytes,
      sizeCalculation: (entry, key) => sizeOf(key, entry),
      dispose: (_entry, _key, reason) => {
        if (reason === 'evict') this.stats.evictions.size++;
      },
    });
    this.recentMisses = new LRUCache<string, true>({
      max: Math.max(MIN_RECENT_MISSES, Math.floor(maxBytes / BYTES_PER_RECENT_MISS)),
    });
  }

  /** Bytes the entries take, as the cache counts them (bounded by CACHE_MAX_MB): bodies, keys, overhead. */
  get bytes(): number {
    return this.entries.calculatedSize;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A subscription to the feed is live and its stream answers: answers are stored. */
  get live(): boolean {
    return this.subscription !== undefined && this.heard();
  }

  /** Whether the feed's stream answered lately; the first time it has not, the cache empties. */
  private heard(): boolean {
    const feed = this.feed;
    if (feed === undefined) return false;
    if (feed.answeredWithin(feed.awaitMs + SILENCE_BEYOND_AWAIT_MS)) {
      this.silent = false;
      return true;
    }
    if (!this.silent) {
      this.silent = true;
      this.log.warn('document cache: the change feed is silent; emptied, and storing nothing until it answers');
      this.empty('feed-silent');
    }
    return false;
  }

  /**
   * The answer of `collection`/`id`: the stored one (its body the bytes to send), or `load`'s
   * (null: no such document), stored while the cache is live if the document was missed recently.
   * `refresh` (Cache-Control: no-cache) skips the stored answer and replaces it. The read is
   * bounded by `deadline`; the shared load is not cut by one reader's.
   */
  async read(
    collection: string,
    id: string,
    load: () => Promise<LoadedAnswer | null>,
    { refresh = false, deadline }: { refresh?: boolean; deadline?: Deadline } = {},
  ): Promise<CachedAnswer | null> {
    const key = keyOf(collection, id);
    const live = this.live;
    if (!refresh && live) {
      const stored = this.entries.get(key);
      if (stored !== undefined) {
        this.stats.hits++;
        return stored;
      }
    }
    this.stats.misses++;
    if (!live) return bounded(load(), deadline);
    const admitted = this.missedBefore(key) || (refresh && this.entries.has(key));
    // A refresh must see the database now, not join a load that started before it.
    let pending = refresh ? undefined : [...(this.loads.get(key) ?? [])].find((candidate) => candidate.joinable);
    // What it loads replaces what is stored, unless that is newer.
    pending ??= this.start(key, load);
    pending.admitted ||= admitted;
    if (!admitted) this.stats.unadmitted++;
    return bounded(pending.answer, deadline);
  }

  /** Whether `key` was missed recently; this miss is remembered either way. */
  private missedBefore(key: string): boolean {
    if (this.recentMisses.get(key) !== undefined) return true;
    this.recentMisses.set(key, true);
    return false;
  }

  /** This instance's committed writes: their documents' entries go before their answers leave. */
  written(changes: readonly WrittenChange[]): void {
    for (const change of changes) {
      // Newer than anything read before by construction: whatever is stored goes.
      if (this.collections.has(change.collection) && this.invalidate(keyOf(change.collection, change.documentId))) {
        this.stats.evictions.write++;
      }
    }
  }

  /**
   * Follows `feed` from its head: each change it reports evicts its document; when the subscription
   * ends, the cache empties and stores nothing until a new one is live.
   */
  follow(feed: ChangeFeed): void {
    this.unfollow('feed-replaced');
    this.feed = feed;
    void this.subscribe(feed);
  }

  /**
   * Forgets every entry now, and every load in flight stores nothing: for data changed behind the
   * service's back whose changes the feed would bring only within its lag (a test shop's reset).
   */
  clear(): void {
    this.empty('cleared');
  }

  /** The feed stops (the app closes): nothing more is stored, nothing is tried again. */
  stop(): void {
    this.unfollow('feed-stopped');
  }

  private unfollow(reason: string): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    this.feed = undefined;
    const subscription = this.subscription;
    if (subscription !== undefined) {
      this.reset(reason);
      subscription.close();
    }
  }

  private async subscribe(feed: ChangeFeed): Promise<void> {
    let subscription: FeedSubscription | undefined;
    // Set by onEnd, which may come before subscribe() resolves.
    const state = { ended: false };
    try {
      subscription = await feed.subscribe({
        collections: [...this.collections],
        // Never paused: an eviction costs nothing, and a paused cache would serve what it missed.
        onChange: (change) => {
          this.changed(change);
          return true;
        },
        onEnd: (reason) => {
          state.ended = true;
          if (this.subscription === undefined || this.subscription !== subscription) return;
          this.log.warn(
            { reason },
            'document cache: its change-feed subscription ended; emptied until it follows again',
          );
          this.reset(`feed-${reason}`);
          this.again(feed);
        },
      });
    } catch (error) {
      this.log.debug({ reason: (error as Error).message }, 'document cache: the change feed cannot be followed yet');
      this.again(feed);
      return;
    }
    if (this.feed !== feed || state.ended) {
      subscription.close();
      this.again(feed);
      return;
    }
    // Nothing was stored while not live; a load that began before now belongs to no epoch that may store.
    this.staleLoads();
    this.subscription = subscription;
  }

  private again(feed: ChangeFeed): void {
    if (this.feed !== feed) return;
    this.retry = setTimeout(() => void this.subscribe(feed), RESUBSCRIBE_MS);
    this.retry.unref();
  }

  private changed(change: FeedChange): void {
    const version = change.type === 'delete' ? undefined : change.version;
    if (this.invalidate(keyOf(change.collection, change.id), version)) this.stats.evictions.feed++;
    this.onInvalidationLag?.(Math.max(0, (Date.now() - change.operationTime.getTime()) / 1000));
  }

  /**
   * The document changed to `version` (undefined: deleted, or not known): an entry older than that
   * goes, and the load in flight stops serving new readers and stores only an answer at least that
   * new. True when an entry went.
   */
  private invalidate(key: string, version?: number): boolean {
    const floor = version ?? Infinity;
    for (const load of this.loads.get(key) ?? []) {
      load.floor = Math.max(load.floor, floor);
      load.joinable = false;
    }
    const stored = this.entries.peek(key);
    return stored !== undefined && stored.version < floor && this.entries.delete(key);
  }

  /** Not live any more: empty, and every load in flight stores nothing. */
  private reset(reason: string): void {
    this.subscription = undefined;
    this.empty(reason);
  }

  private empty(reason: string): void {
    this.staleLoads();
    this.entries.clear();
    this.stats.resets[reason] = (this.stats.resets[reason] ?? 0) + 1;
  }

  private staleLoads(): void {
    for (const loads of this.loads.values()) {
      for (const load of loads) {
        load.floor = Infinity;
        load.joinable = false;
      }
    }
  }

  private start(key: string, load: () => Promise<LoadedAnswer | null>): Load {
    const pending: Load = { answer: load(), floor: 0, joinable: true, admitted: false };
    const loads = this.loads.get(key) ?? new Set<Load>();
    this.loads.set(key, loads.add(pending));
    const settled = () => {
      loads.delete(pending);
      if (loads.size === 0 && this.loads.get(key) === loads) this.loads.delete(key);
    };
    pending.answer.then((answer) => {
      settled();
      // An overtaken load's answer goes to its readers (it was true when read), never into the cache.
      if (answer !== null && pending.admitted && answer.version >= pending.floor && this.live) this.keep(key, answer);
    }, settled);
    return pending;
  }

  /** Stores an answer as its bytes, unless a higher version is stored already. */
  private keep(key: string, answer: LoadedAnswer): void {
    const stored = this.entries.peek(key);
    if (stored !== undefined && stored.version > answer.version) return;
    this.entries.set(key, { body: bytesOf(answer.body), version: answer.version });
  }
}

const keyOf = (collection: string, id: string) => `${collection}/${id}`;

/** `text` as UTF-8 in a Buffer of its own: a slice of the shared pool would keep its whole slab alive. */
function bytesOf(text: string): Buffer {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  bytes.write(text);
  return bytes;
}

/**
 * An entry's bytes: its body's, its key's (collection names and ids are ASCII, which V8 keeps a
 * byte a character), and the rest.
 */
const sizeOf = (key: string, entry: Entry) => entry.body.byteLength + key.length + ENTRY_OVERHEAD_BYTES;
