// Everything that touches MongoDB, built once at boot on the app's connection: a Mongoose model
// (the schema the casts follow) and a repository per entity, the stock and order repositories, the
// audit trail, the unit of work every write goes through, the API-key store and the idempotency
// store. The HTTP plugins and the shop take them from here; nothing else builds one.

import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import mongoose, { type Connection, type mongo } from 'mongoose';
import type { Entity } from '../domain/entity.ts';
import { Customer, ENTITIES, Order, Product, Stock } from '../domain/entities/index.ts';
import { ApiKeyStore } from './api-keys.ts';
import { AuditTrail } from './audit.ts';
import { AuditStream } from './audit-stream.ts';
import { CursorKeys } from './cursor-keys.ts';
import { DocumentRepository, type RepositoryOptions } from './documents.ts';
import { IdempotencyStore } from './idempotency.ts';
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
  /** Where the audit stream connects; absent: the app has no connection (the OpenAPI generator), nothing to follow. */
  audit?: { uri: string; appName: string };
}

interface AuditFollowing {
  uri: string;
  appName: string;
  retentionDays: number;
}

export function createStores(
  connection: Connection,
  { cursorSecret, retentionDays, idempotencyTtlHours, ...lists }: Omit<StoresOptions, 'audit'>,
): Stores {
  // One key source for every list, so the stored secret is read once per process.
  const options: RepositoryOptions = { ...lists, cursors: new CursorKeys(connection, cursorSecret) };
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
  return {
    documents,
    repositoryOf,
    stock: new StockRepository(repositoryOf(Stock.collection)),
    orders: new OrderRepository(
      repositoryOf(Order.collection),
      repositoryOf(Customer.collection),
      repositoryOf(Product.collection),
    ),
    audit,
    work: new UnitOfWork(connection, audit),
    apiKeys: ApiKeyStore.of(connection),
    idempotency: new IdempotencyStore(connection, idempotencyTtlHours * 3_600_000),
  };
}

/** How soon the audit stream tries to start again while MongoDB is unreachable or not migrated. */
const STREAM_START_RETRY_MS = 2_000;

/**
 * Starts the audit stream once MongoDB answers and its position exists (its migration), and hands
 * it to the audit trail, which the unit of work asks: from then on writes of one document are atomic
 * writes. Until then they run as transactions, which audit themselves. The stream has a client of
 * its own (two connections): its getMores wait on the server, and its resumes after a failover or
 * a frozen server must never queue behind requests for the app's pooled connections, nor they
 * behind it.
 */
function followAudit(app: FastifyInstance, stores: Stores, { uri, appName, retentionDays }: AuditFollowing): void {
  let stream: AuditStream | undefined;
  let client: mongo.MongoClient | undefined;
  let closing = false;
  let retry: NodeJS.Timeout | undefined;
  const tryStart = async (): Promise<void> => {
    if (app.db.state === 'connected') {
      client ??= new mongoose.mongo.MongoClient(uri, {
        appName: `${appName}-audit`,
        maxPoolSize: 2,
        retryReads: true,
        retryWrites: true,
        writeConcern: { w: 'majority' },
      });
      const candidate = new AuditStream(
        client,
        app.db.connection.name,
        { collections: ENTITIES.map((entity) => entity.collection), retentionDays },
        app.log,
      );
      try {
        await candidate.start();
        if (closing) {
          await candidate.stop();
          return;
        }
        stream = candidate;
        stores.audit.followedBy(stream);
        app.log.info('audit stream started: writes of one document are atomic writes');
        return;
      } catch (error) {
        await candidate.stop();
        // A start cut short by the stop (its client closed under it) is no news.
        if (closing) return;
        app.log.info(
          { reason: (error as Error).message },
          'audit stream not started yet; writes run as transactions until it is',
        );
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
    stores.audit.followedBy(undefined);
    await stream?.stop();
    await client?.close().catch(() => undefined);
  });
}

export default fp<StoresOptions>(
  async (app, options) => {
    const { audit, ...storesOptions } = options;
    const stores = createStores(app.db.connection, storesOptions);
    app.decorate('stores', stores);
    if (audit !== undefined) followAudit(app, stores, { ...audit, retentionDays: options.retentionDays });
  },
  { name: 'stores', dependencies: ['database'], fastify: '5.x' },
);
