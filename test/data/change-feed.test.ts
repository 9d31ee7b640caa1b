// The change feed against a real change stream: every kind of write on every collection reaches a
// subscriber once and in order with its documents; two instances see the same writes; a client
// that reconnects gets exactly what it missed, from memory when the ring holds it and from a
// catch-up stream of MongoDB's when it does not (writes going on meanwhile); a subscriber that
// pauses (onChange answers false) gets the rest after resume(), live or catching up, and one that
// stays paused ends 'behind' at its position, giving back a catch-up slot; positions MongoDB
// cannot resume from are told apart; a stop ends everything it opened; and the ring and the
// catch-ups stay within their bounds.

import { afterEach, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import pino from 'pino';
import {
  ChangeFeed,
  FeedPositionInvalid,
  FeedPositionLost,
  decodePosition,
  encodePosition,
  type Change,
  type ChangeFeedOptions,
  type EndReason,
  type FeedSubscription,
} from '../../src/data/change-feed.ts';
import { useMigratedDatabase, waitFor } from '../helpers/app.ts';

const { ObjectId } = mongoose.mongo;
type MongoClient = mongoose.mongo.MongoClient;
const COLLECTIONS = ['products', 'customers', 'stock', 'orders'];
const KEY = Buffer.alloc(32, 7);

const dataOf = (token: unknown) => (token as { _data: string })._data;

/** What a subscriber was offered, and how it ended. */
interface Received {
  changes: Change[];
  ended: EndReason[];
  subscription: FeedSubscription;
  tokens(): string[];
  /** It answered false and has not resumed yet. */
  paused: boolean;
  /** Changes offered while it was paused: none may be. */
  offeredWhilePaused: number;
}

/** Answers false every `n`th change and resumes `ms` later: a client that reads in bursts. */
const pauseEvery = (n: number, ms: number) => (received: Received) => {
  if (received.changes.length % n !== 0) return true;
  received.paused = true;
  setTimeout(() => {
    received.paused = false;
    received.subscription.resume();
  }, ms);
  return false;
};

/** Answers false to its first change and never resumes: a client that stopped reading. */
const stopReading = (received: Received) => {
  received.paused = true;
  return false;
};

describe('the change feed', () => {
  const database = useMigratedDatabase('change_feed');
  const clients: MongoClient[] = [];
  const feeds: ChangeFeed[] = [];

  const newClient = (appName: string, monitorCommands = false) => {
    const client = new mongoose.mongo.MongoClient(inject('mongoUri'), { appName, maxPoolSize: 6, monitorCommands });
    clients.push(client);
    return client;
  };
  const startFeed = async (options: Partial<ChangeFeedOptions> = {}, client = newClient('feed-test')) => {
    const feed = new ChangeFeed(
      client,
      database.name,
      { collections: COLLECTIONS, maxAwaitMs: 100, ...options },
      pino({ level: 'silent' }),
    );
    await feed.start();
    feeds.push(feed);
    return feed;
  };
  afterEach(async () => {
    for (const feed of feeds.splice(0)) await feed.stop();
    for (const client of clients.splice(0)) await client.close();
  });

  const subscribe = async (
    feed: ChangeFeed,
    options: { after?: unknown; collections?: readonly string[]; pace?: (received: Received) => unknown } = {},
  ): Promise<Received> => {
    const changes: Change[] = [];
    const received: Received = {
      changes,
      ended: [],
      subscription: undefined as unknown as FeedSubscription,
      tokens: () => changes.map((change) => dataOf(change.token)),
      paused: false,
      offeredWhilePaused: 0,
    };
    received.subscription = await feed.subscribe({
      collections: options.collections ?? COLLECTIONS,
      ...(options.after !== undefined && { after: options.after }),
      onChange: (change) => {
        if (received.paused) received.offeredWhilePaused++;
        changes.push(change);
        return options.pace?.(received);
      },
      onEnd: (reason) => received.ended.push(reason),
    });
    return received;
  };
  /**
   * The catch-up streams a feed's client opens on MongoDB (aggregates starting after a position,
   * the live stream never does while it runs) and closes (killCursors), counted from its commands.
   */
  const catchUpsOn = (client: MongoClient) => {
    const counts = { opened: 0, open: 0, mostOpen: 0 };
    const requests = new Set<number>();
    const cursors = new Set<string>();
    client.on('commandStarted', (event) => {
      const command = event.command as {
        pipeline?: { $changeStream?: { startAfter?: unknown } }[];
        cursors?: { toString(): string }[];
      };
      if (event.commandName === 'aggregate' && command.pipeline?.[0]?.$changeStream?.startAfter !== undefined) {
        requests.add(event.requestId);
      }
      if (event.commandName === 'killCursors') {
        for (const id of command.cursors ?? []) if (cursors.delete(String(id))) counts.open--;
      }
    });
    client.on('commandSucceeded', (event) => {
      const id = (event.reply as { cursor?: { id?: { toString(): string } } }).cursor?.id;
      if (!requests.delete(event.requestId) || id === undefined) return;
      cursors.add(String(id));
      counts.opened++;
      counts.mostOpen = Math.max(counts.mostOpen, ++counts.open);
    });
    return counts;
  };
  const until = (check: () => boolean, what: string) => waitFor(check, 30_000, what);

  let sequence = 0;
  /**
   * A document each collection's unique indexes accept, stamped as atomic writes stamp theirs; the
   * validators are not the point here.
   */
  const documentFor = (version: number) => {
    const n = ++sequence;
    const _audit = { id: new ObjectId(), action: 'create' };
    return {
      _id: new ObjectId(),
      sku: `FEED-${n}`,
      email: `feed-${n}@example.com`,
      warehouse: 'W1',
      n,
      version,
      _audit,
    };
  };
  const bypass = { bypassDocumentValidation: true };
  /** Inserts a document into `collection` through `db`; answers its _id. */
  const insert = async (collection: string, db = database.db) => {
    const document = documentFor(1);
    await db.collection(collection).insertOne(document, bypass);
    return document._id;
  };

  it('hands every kind of write on every collection to a subscriber once, in order, with its documents', async () => {
    const feed = await startFeed();
    const received = await subscribe(feed);
    const expected: [string, string, string, number | undefined, number | undefined, number | undefined][] = [];
    for (const collection of COLLECTIONS) {
      const documents = database.db.collection(collection);
      const _id = await insert(collection);
      const id = _id.toHexString();
      expected.push([collection, 'insert', id, 1, 1, undefined]);
      await documents.updateOne({ _id }, { $set: { name: 'changed' }, $inc: { version: 1 } }, bypass);
      expected.push([collection, 'update', id, 2, 2, 1]);
      const replacement = { ...documentFor(3), _id, name: 'replaced' };
      await documents.replaceOne({ _id }, replacement, bypass);
      expected.push([collection, 'replace', id, 3, 3, 2]);
      await documents.deleteOne({ _id });
      // The version deleted comes from the pre-image MongoDB kept.
      expected.push([collection, 'delete', id, 3, undefined, 3]);
    }

    await until(() => received.changes.length >= expected.length, 'every change');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(
      received.changes.map((change) => [
        change.collection,
        change.type,
        change.id,
        change.version,
        change.after?.version,
        change.before?.version,
      ]),
    ).toEqual(expected);
    const tokens = received.tokens();
    expect([...tokens].sort()).toEqual(tokens);
    expect(new Set(tokens).size).toBe(tokens.length);
    const [insertion, update, replacement] = received.changes;
    expect(update?.after).toMatchObject({ name: 'changed', version: 2 });
    expect(update?.before).not.toHaveProperty('name');
    expect(replacement?.after).toMatchObject({ name: 'replaced', version: 3 });
    // The audit stamps are the audit stream's, not the feed's.
    for (const change of received.changes) {
      expect(change.after ?? {}).not.toHaveProperty('_audit');
      expect(change.before ?? {}).not.toHaveProperty('_audit');
    }
    expect(insertion?.operationTime).toBeInstanceOf(Date);
    expect(Math.abs(Date.now() - insertion!.operationTime.getTime())).toBeLessThan(60_000);
    expect(dataOf(received.subscription.position) >= tokens.at(-1)!).toBe(true);
    expect(feed.stats.catchUps).toBe(0);
  });

  it('offers a subscriber only its collections, while its position still moves past the others', async () => {
    const feed = await startFeed();
    const products = await subscribe(feed, { collections: ['products'] });
    const everything = await subscribe(feed);
    await insert('orders');
    await insert('products');
    await insert('orders');
    await until(() => everything.changes.length === 3, 'three changes');
    expect(products.changes.map((change) => change.collection)).toEqual(['products']);
    expect(dataOf(products.subscription.position) >= everything.tokens()[2]!).toBe(true);
  });

  it('shows two instances the writes made on either', async () => {
    const [clientA, clientB] = [newClient('feed-a'), newClient('feed-b')];
    const a = await subscribe(await startFeed({}, clientA));
    const b = await subscribe(await startFeed({}, clientB));
    for (let round = 0; round < 3; round++) {
      await insert('products', clientA.db(database.name));
      await insert('stock', clientB.db(database.name));
    }
    await until(() => a.changes.length === 6 && b.changes.length === 6, 'six changes on both');
    expect(a.tokens()).toEqual(b.tokens());
    expect(a.changes.map((change) => change.collection)).toEqual([
      'products',
      'stock',
      'products',
      'stock',
      'products',
      'stock',
    ]);
  });

  it('resumes a position the ring holds from memory: no catch-up, nothing missed or repeated', async () => {
    const feed = await startFeed();
    const first = await subscribe(feed);
    for (let n = 0; n < 5; n++) await insert('customers');
    await until(() => first.changes.length === 5, 'five changes');
    const all = first.tokens();

    // From an event's position.
    const fromEvent = await subscribe(feed, { after: first.changes[1]!.token });
    // From a head the feed passed while idle (what a heartbeat hands out).
    await new Promise((resolve) => setTimeout(resolve, 400));
    const idle = first.subscription.position;
    const fromHead = await subscribe(feed, { after: idle });
    for (let n = 0; n < 2; n++) await insert('customers');
    await until(() => first.changes.length === 7, 'seven changes');
    await until(() => fromEvent.changes.length === 5 && fromHead.changes.length === 2, 'the resumed changes');

    expect(fromEvent.tokens()).toEqual(first.tokens().slice(2));
    expect(fromHead.tokens()).toEqual(first.tokens().slice(5));
    expect(all).toEqual(first.tokens().slice(0, 5));
    expect(feed.stats.catchUps).toBe(0);
  });

  it('catches a restarted instance up from MongoDB while writes go on: the same sequence as a subscriber that stayed', async () => {
    const feed = await startFeed();
    const stayed = await subscribe(feed);
    const writes = { going: true, done: 0 };
    const writer = (async () => {
      while (writes.going) {
        await insert(COLLECTIONS[writes.done % COLLECTIONS.length]!);
        writes.done++;
      }
    })();
    await until(() => stayed.changes.length >= 40, 'forty changes');
    const resumeAt = stayed.changes[10]!.token;

    // A fresh instance holds nothing: the position is older than its ring, whatever its size.
    const client = newClient('feed-restarted-test', true);
    const catchUps = catchUpsOn(client);
    const restarted = await startFeed({}, client);
    const resumed = await subscribe(restarted, { after: resumeAt });
    // The catch-up reaches the present and closes while the writes go on; the live stream carries on.
    await until(() => catchUps.opened === 1 && catchUps.open === 0, 'the catch-up to hand over');
    const handedOver = stayed.changes.length;
    await until(() => stayed.changes.length >= handedOver + 20, 'twenty more changes');
    writes.going = false;
    await writer;
    await until(() => stayed.changes.length === writes.done, 'every write');
    const lastToken = stayed.tokens().at(-1)!;
    await until(() => resumed.tokens().at(-1) === lastToken, 'the last write on the resumed subscriber');

    expect(resumed.tokens()).toEqual(stayed.tokens().slice(11));
    expect(restarted.stats.catchUps).toBe(1);
    expect(resumed.ended).toEqual([]);
  });

  it('goes on from where its stream was after an interruption the driver does not resume from', async () => {
    const feed = await startFeed({}, newClient('feed-interrupted-test'));
    const received = await subscribe(feed);
    await insert('products');
    await insert('orders');
    await until(() => received.changes.length === 2, 'two changes');

    // An operator kills the stream's waiting getMore: Interrupted, which no driver resumes from.
    const admin = newClient('feed-interrupted-observer').db('admin');
    await waitFor(
      async () => {
        const [getMore] = await admin
          .aggregate<{ opid: unknown }>([
            { $currentOp: { allUsers: true } },
            { $match: { appName: 'feed-interrupted-test', 'command.getMore': { $exists: true } } },
          ])
          .toArray();
        if (getMore !== undefined) await admin.command({ killOp: 1, op: getMore.opid });
        return feed.stats.restarts > 0;
      },
      30_000,
      'the stream to be interrupted',
    );
    // Written while the stream is away.
    await insert('stock');
    await insert('customers');
    await until(() => received.changes.length === 4, 'the changes made meanwhile');

    expect(received.changes.map((change) => change.collection)).toEqual(['products', 'orders', 'stock', 'customers']);
    const tokens = received.tokens();
    expect([...tokens].sort()).toEqual(tokens);
    expect(new Set(tokens).size).toBe(4);
    expect(received.ended).toEqual([]);
  });

  it('paces a subscriber that answers false: nothing until resume(), then the rest from the ring, and live again', async () => {
    const feed = await startFeed();
    const all = await subscribe(feed);
    const paced = await subscribe(feed, { pace: pauseEvery(7, 20) });
    for (let n = 0; n < 60; n++) await insert(COLLECTIONS[n % COLLECTIONS.length]!);
    await until(() => all.changes.length === 60 && paced.changes.length === 60, 'sixty changes on both');
    // Live again: the next write reaches it as it reaches the other.
    await insert('orders');
    await until(() => paced.changes.length === 61, 'the next write');

    expect(paced.tokens()).toEqual(all.tokens());
    expect(paced.offeredWhilePaused).toBe(0);
    expect(paced.ended).toEqual([]);
    expect(feed.stats.pauses).toBeGreaterThanOrEqual(8);
    expect(feed.stats.catchUps).toBe(0);
  });

  it('ends a subscriber paused while the ring turns over past it (behind) at its position, from which MongoDB serves the rest', async () => {
    const feed = await startFeed({ replayEvents: 5 });
    const all = await subscribe(feed);
    const stopped = await subscribe(feed, { pace: stopReading });
    for (let n = 0; n < 10; n++) await insert('products');
    await until(() => all.changes.length === 10 && stopped.ended.length > 0, 'ten changes and the end');

    expect(stopped.ended).toEqual(['behind']);
    expect(stopped.tokens()).toEqual(all.tokens().slice(0, 1));
    expect(dataOf(stopped.subscription.position)).toBe(all.tokens()[0]);
    expect(feed.stats.behind).toBe(1);
    expect(all.ended).toEqual([]);

    const again = await subscribe(feed, { after: stopped.subscription.position });
    await until(() => again.changes.length === 9, 'the nine changes after its position');
    expect(again.tokens()).toEqual(all.tokens().slice(1));
    expect(feed.stats.catchUps).toBe(1);
  });

  it('paces catch-ups: one paused past catchUpPauseMs ends (behind) and gives its slot to the next, which reads in pauses', async () => {
    const feed = await startFeed();
    const all = await subscribe(feed);
    const start = all.subscription.position;
    for (let n = 0; n < 30; n++) await insert(COLLECTIONS[n % COLLECTIONS.length]!);
    await until(() => all.changes.length === 30, 'thirty changes');

    // A fresh instance holds none of them: both need a catch-up, and it opens one at a time.
    const client = newClient('feed-paced-catch-up-test', true);
    const catchUps = catchUpsOn(client);
    const restarted = await startFeed({ maxCatchUps: 1, catchUpPauseMs: 500 }, client);
    const [stuck, paced] = await Promise.all([
      subscribe(restarted, { after: start, pace: stopReading }),
      subscribe(restarted, { after: start, pace: pauseEvery(4, 10) }),
    ]);
    await until(() => paced.changes.length === 30, 'the paced catch-up');
    await until(() => catchUps.open === 0, 'the catch-up streams to close');

    expect(stuck.ended).toEqual(['behind']);
    expect(stuck.tokens()).toEqual(all.tokens().slice(0, 1));
    expect(dataOf(stuck.subscription.position)).toBe(all.tokens()[0]);
    expect(paced.tokens()).toEqual(all.tokens());
    expect(paced.offeredWhilePaused).toBe(0);
    expect(paced.ended).toEqual([]);
    expect(restarted.stats.catchUps).toBe(2);
    expect(restarted.stats.pauses).toBeGreaterThanOrEqual(8);
    expect(catchUps.mostOpen).toBe(1);
  });

  it('tells a position the oplog no longer holds from one MongoDB cannot read, and positions from forgeries', async () => {
    const feed = await startFeed();
    const received = await subscribe(feed);
    await insert('products');
    await until(() => received.changes.length === 1, 'one change');
    const real = dataOf(received.changes[0]!.token);

    // A token's _data starts with its cluster time: 0x82, then 4 bytes of seconds and 4 of
    // increment. The same event at second 1 of 1970, long before this replica set began, is a
    // position whose history no oplog holds. (An oplog never truncated, as here, has MongoDB say
    // the event is not found rather than that history is lost: the feed takes both for lost.)
    const ancient = { _data: `820000000100000001${real.slice(18)}` };
    await expect(subscribe(feed, { after: ancient })).rejects.toBeInstanceOf(FeedPositionLost);

    // Signed by this service (so decodePosition accepts it) but no token MongoDB can read.
    const garbled = decodePosition(KEY, encodePosition(KEY, { _data: '00FF00FF' }));
    expect(garbled).toEqual({ _data: '00FF00FF' });
    await expect(subscribe(feed, { after: garbled })).rejects.toBeInstanceOf(FeedPositionInvalid);

    const position = encodePosition(KEY, received.changes[0]!.token);
    expect(decodePosition(KEY, position)).toEqual({ _data: real });
    const bytes = Buffer.from(position.split('.')[0]!, 'base64url');
    bytes[3] = bytes[3]! ^ 1;
    const flipped = `${bytes.toString('base64url')}.${position.split('.')[1]!}`;
    expect(decodePosition(KEY, flipped)).toBeUndefined();
    expect(decodePosition(Buffer.alloc(32, 8), position)).toBeUndefined();
    expect(decodePosition(KEY, `${position}x`)).toBeUndefined();
    expect(decodePosition(KEY, 'not a position')).toBeUndefined();
    // The subscription that was live goes on.
    expect(received.ended).toEqual([]);
  });

  it('ends its subscriptions with stopped and leaves no cursor open on MongoDB', async () => {
    const client = newClient('feed-stop-test');
    const feed = await startFeed({ replayEvents: 1 }, client);
    const live = await subscribe(feed);
    const start = live.subscription.position;
    await insert('orders');
    await insert('orders');
    await until(() => live.changes.length === 2, 'two changes');
    // The ring holds the second change only: the start is older.
    const fromOlder = await subscribe(feed, { after: start, collections: ['orders'] });
    await until(() => fromOlder.changes.length === 2, 'the catch-up changes');
    expect(feed.stats.catchUps).toBe(1);

    const observer = newClient('feed-stop-observer');
    const cursorsOfFeed = () =>
      observer
        .db('admin')
        .aggregate([
          { $currentOp: { idleCursors: true, allUsers: true } },
          { $match: { $or: [{ appName: 'feed-stop-test' }, { 'cursor.originatingCommand.$db': database.name }] } },
        ])
        .toArray();
    expect(await cursorsOfFeed()).not.toEqual([]);

    await feed.stop();
    feeds.length = 0;
    expect(live.ended).toEqual(['stopped']);
    expect(fromOlder.ended).toEqual(['stopped']);
    expect(feed.stats.subscribers).toBe(0);
    expect(await cursorsOfFeed()).toEqual([]);
  });

  it('keeps replayEvents in its ring and opens at most maxCatchUps catch-up streams at once', async () => {
    const client = newClient('feed-bounds-test', true);
    const catchUps = catchUpsOn(client);
    const feed = await startFeed({ replayEvents: 3, maxCatchUps: 1 }, client);
    const all = await subscribe(feed);
    for (let n = 0; n < 10; n++) await insert('stock');
    await until(() => all.changes.length === 10, 'ten changes');
    const tokens = all.tokens();

    // The ring holds the last three events: a position at the seventh is served from it.
    const inRing = await subscribe(feed, { after: all.changes[6]!.token });
    await until(() => inRing.changes.length === 3, 'the ring changes');
    expect(inRing.tokens()).toEqual(tokens.slice(7));
    expect(feed.stats.catchUps).toBe(0);

    // The sixth is older than the ring holds, as are the first two: each needs a catch-up.
    const older = await Promise.all([5, 0, 1].map((index) => subscribe(feed, { after: all.changes[index]!.token })));
    await until(() => older.every((received) => received.tokens().at(-1) === tokens.at(-1)), 'the catch-ups');
    expect(older.map((received) => received.tokens())).toEqual([tokens.slice(6), tokens.slice(1), tokens.slice(2)]);
    expect(feed.stats.catchUps).toBe(3);
    expect(catchUps.opened).toBe(3);
    expect(catchUps.mostOpen).toBe(1);
    expect(catchUps.open).toBe(0);
  });
});
