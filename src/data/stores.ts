// Everything that touches MongoDB, built once at boot on the app's connection: a Mongoose model
// (the schema the casts follow) and a repository per entity, the stock and order repositories, the
// audit trail, the unit of work every write goes through, the API-key store and the idempotency
// store; and, each on a client of its own once MongoDB answers, the audit stream, the change
// feed and the key change stream; and the document cache, which hears the unit of work and follows
// the feed. The HTTP plugins and the shop take them from here; nothing else builds one.

import fp from 'fastify-plugin';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import mongoose, { type Connection, type mongo } from 'mongoose';
import type { Entity } from '../domain/entity.ts';
import { Customer, ENTITIES, Order, Product, Stock } from '../domain/entities/index.ts';
import { ApiKeyStore } from './api-keys.ts';
import { AuditTrail } from './audit.ts';
import { AuditStream } from './audit-stream.ts';
import { ChangeFeed } from './change-feed.ts';
import { CursorKeys } from './cursor-keys.ts';
import { DocumentCache } from './document-cache.ts';
import type { Deadline } from './deadline.ts';
import { DocumentRepository, type RepositoryOptions } from './documents.ts';
import { IdempotencyStore } from './idempotency.ts';
import { KeyChanges } from './key-changes.ts';
import { toMongooseSchema } from './mongoose-schema.ts';
import { OrderRepository } from './orders.ts';
import { StockRepository } from './stock-movements.ts';
import { UnitOfWork } from './unit-of-work.ts';

export interface Stores {
  /** Repositories by collection name. */
  documents: ReadonlyMap<string, DocumentRepository>;
  /** The repository of a collection of ENTITIES; throws on any other name (a bug: names come from declarations). */
  repositoryOf(collection: string): DocumentRepository;
  stock: StockRepository;
  orders: OrderRepository;
  /** The audit trail's entries, read and listed. */
  audit: AuditTrail;
  /** The transactions every write runs in; subscribe to hear what each committed. */
  work: UnitOfWork;
  apiKeys: ApiKeyStore;
  idempotency: IdempotencyStore;
  /** The change feed once it has started; undefined before, after the app closes, and without a connection. */
  feed: ChangeFeed | undefined;
  /** Answers of reads by id; undefined when CACHE_MAX_MB is 0. */
  cache: DocumentCache | undefined;
  /** The key that signs feed positions: the list cursors' (CURSOR_SECRET or the stored secret). */
  positionKey(deadline?: Deadline): Promise<Buffer>;
}

declare module 'fastify' {
  interface FastifyInstance {
    stores: Stores;
  }
}

export interface StoresOptions extends Omit<RepositoryOptions, 'cursors'> {
  /** CURSOR_SECRET; unset: the secret stored in the database. */
  cursorSecret?: string;
  /** AUDIT_RETENTION_DAYS. */
  retentionDays: number;
  /** IDEMPOTENCY_TTL_HOURS. */
  idempotencyTtlHours: number;
  /** CACHE_MAX_MB; 0: no document cache. */
  cacheMaxMb: number;
  /**
   * Where the audit stream and the change feed connect, and the changes the feed keeps in memory
   * (FEED_REPLAY_EVENTS); absent: the app has no connection (the OpenAPI generator), nothing to follow.
   */
  streams?: Streams;
}

export function createStores(
  connection: Connection,
  { cursorSecret, retentionDays, idempotencyTtlHours, cacheMaxMb, ...lists }: Omit<StoresOptions, 'streams'>,
  log: FastifyBaseLogger,
): Stores {
  // One key source for every list and the feed, so the stored secret is read once per process.
  const cursors = new CursorKeys(connection, cursorSecret);
  const options: RepositoryOptions = { ...lists, cursors };
  const audit = new AuditTrail(connection, { ...options, retentionDays });
  const documents = new Map<string, DocumentRepository>();
  for (const entity of ENTITIES as readonly Entity[]) {
    const schema = toMongooseSchema(entity.stored, { collection: entity.collection, collation: entity.collation });
    const model = connection.model(entity.schemaName, schema, entity.collection);
    documents.set(entity.collection, new DocumentRepository(entity, model, options));
  }
  const repositoryOf = (collection: string): DocumentRepository => {
    const repository = documents.get(collection);
    if (repository === undefined) throw new Error(`no repository of a collection named ${collection}`);
    return repository;
  };
  const work = new UnitOfWork(connection, audit);
  const cache =
    cacheMaxMb > 0
      ? new DocumentCache({ maxBytes: cacheMaxMb * 1_048_576, collections: [...documents.keys()] }, log)
      : undefined;
  // Before a write's answer leaves, its documents' entries are gone: the writer reads its write.
  if (cache !== undefined) work.subscribe((changes) => cache.written(changes));
  return {
    documents,
    repositoryOf,
    stock: new StockRepository(repositoryOf(Stock.collection)),
    orders: new OrderRepository(
      repositoryOf(Order.collection),
      repositoryOf(Customer.collection),
      repositoryOf(Product.collection),
      repositoryOf(Stock.collection),
    ),
    audit,
    work,
    apiKeys: ApiKeyStore.of(connection),
    idempotency: new IdempotencyStore(connection, idempotencyTtlHours * 3_600_000),
    feed: undefined,
    cache,
    positionKey: (deadline) => cursors.key(deadline),
  };
}

/** How soon a stream tries to start again while MongoDB is unreachable or not migrated. */
const STREAM_START_RETRY_MS = 2_000;

/** Catch-up streams of the change feed open at once: each holds a connection of the feed's client. */
const FEED_CATCH_UPS = 4;

interface Streams {
  uri: string;
  appName: string;
  feedReplayEvents: number;
}

/** A change stream the app follows on a client of its own. */
interface Stream {
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface Following<T extends Stream> {
  /** What the stream's connections add to the app's name (`<appName>-<suffix>`). */
  suffix: string;
  /** Connections of its client. */
  maxPoolSize: number;
  create(client: mongo.MongoClient, dbName: string): T;
  /** It started: from now on it serves. */
  started(stream: T): void;
  /** The app closes: nothing may use it any more. */
  closing(): void;
  log: { started: string; notYet: string };
}

/**
 * Starts a change stream once MongoDB answers and the stream's start succeeds (its migration
 * applied), retrying until then, and stops it and its client when the app closes. Each stream has
 * a client of its own: its getMores wait on the server, and its resumes after a failover or a
 * frozen server must never queue behind requests for the app's pooled connections, nor they
 * behind it.
 */
function followOnOwnClient<T extends Stream>(
  app: FastifyInstance,
  { uri, appName }: { uri: string; appName: string },
  following: Following<T>,
): void {
  let stream: T | undefined;
  let client: mongo.MongoClient | undefined;
  let closing = false;
  let retry: NodeJS.Timeout | undefined;
  const tryStart = async (): Promise<void> => {
    if (app.db.state === 'connected') {
      client ??= new mongoose.mongo.MongoClient(uri, {
        appName: `${appName}-${following.suffix}`,
        maxPoolSize: following.maxPoolSize,
        retryReads: true,
        retryWrites: true,
        writeConcern: { w: 'majority' },
      });
      app.db.monitor.watch(client, following.suffix);
      const candidate = following.create(client, app.db.connection.name);
      try {
        await candidate.start();
        if (closing) {
          await candidate.stop();
          return;
        }
        stream = candidate;
        following.started(stream);
        app.log.info(following.log.started);
        return;
      } catch (error) {
        await candidate.stop();
        // A start cut short by the stop (its client closed under it) is no news.
        if (closing) return;
        app.log.info({ reason: (error as Error).message }, following.log.notYet);
      }
    }
    if (closing) return;
    // Soon after the connection opens; less often while MongoDB is there and the start fails.
    retry = setTimeout(() => void tryStart(), app.db.state === 'connected' ? STREAM_START_RETRY_MS : 250);
    retry.unref();
  };
  void tryStart();
  app.addHook('onClose', async () => {
    closing = true;
    clearTimeout(retry);
    following.closing();
    await stream?.stop();
    await client?.close().catch(() => undefined);
  });
}

/**
 * The audit stream, handed to the audit trail, which the unit of work asks: from then on writes
 * of one document are atomic writes. Until then they run as transactions, which audit themselves.
 * Two connections: its getMore and its position's writes.
 */
function followAudit(
  app: FastifyInstance,
  stores: Stores,
  streams: { uri: string; appName: string },
  retentionDays: number,
) {
  followOnOwnClient(app, streams, {
    suffix: 'audit',
    maxPoolSize: 2,
    create: (client, dbName) =>
      new AuditStream(
        client,
        dbName,
        { collections: ENTITIES.map((entity) => entity.collection), retentionDays },
        app.log,
      ),
    started: (stream) => stores.audit.followedBy(stream),
    closing: () => stores.audit.followedBy(undefined),
    log: {
      started: 'audit stream started: writes of one document are atomic writes',
      notYet: 'audit stream not started yet; writes run as transactions until it is',
    },
  });
}

/**
 * The change feed, exposed as stores.feed once started (its routes answer 503 until then). Its
 * live stream's getMore and each catch-up's hold a connection.
 */
function followFeed(app: FastifyInstance, stores: Stores, streams: Streams) {
  followOnOwnClient(app, streams, {
    suffix: 'feed',
    maxPoolSize: 1 + FEED_CATCH_UPS,
    create: (client, dbName) =>
      new ChangeFeed(
        client,
        dbName,
        {
          collections: ENTITIES.map((entity) => entity.collection),
          maxCatchUps: FEED_CATCH_UPS,
          replayEvents: streams.feedReplayEvents,
        },
        app.log,
      ),
    started: (feed) => {
      stores.feed = feed;
      stores.cache?.follow(feed);
    },
    closing: () => {
      stores.feed = undefined;
      stores.cache?.stop();
    },
    log: { started: 'change feed started', notYet: 'change feed not started yet; its routes answer 503 until it is' },
  });
}

/**
 * The key change stream, which tells the API-key store's listeners (the key cache) what changed.
 * One connection: its getMore.
 */
function followKeyChanges(app: FastifyInstance, stores: Stores, streams: { uri: string; appName: string }) {
  followOnOwnClient(app, streams, {
    suffix: 'keys',
    maxPoolSize: 1,
    create: (client, dbName) => new KeyChanges(client, dbName, (change) => stores.apiKeys.changed(change), app.log),
    started: () => undefined,
    closing: () => undefined,
    log: {
      started: 'key change stream started: a revoked key stops on this instance within its lag',
      notYet: 'key change stream not started yet; a revoked key stops within AUTH_CACHE_TTL_MS until it is',
    },
  });
}

export default fp<StoresOptions>(
  async (app, options) => {
    const { streams, ...storesOptions } = options;
    const stores = createStores(app.db.connection, storesOptions, app.log);
    app.decorate('stores', stores);
    if (streams !== undefined) {
      followAudit(app, stores, streams, options.retentionDays);
      followFeed(app, stores, streams);
      followKeyChanges(app, stores, streams);
    }
  },
  { name: 'stores', dependencies: ['database'], fastify: '5.x' },
);
