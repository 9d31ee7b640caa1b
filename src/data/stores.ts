// Everything that touches MongoDB, built once at boot on the app's connection: a Mongoose model
// (the schema the casts follow) and a repository per entity, the stock and order repositories, the
// audit trail, the unit of work every write goes through, the API-key store and the idempotency
// store. The HTTP plugins and the shop take them from here; nothing else builds one.

import fp from 'fastify-plugin';
import type { Connection } from 'mongoose';
import type { Entity } from '../domain/entity.ts';
import { Customer, ENTITIES, Order, Product, Stock } from '../domain/entities/index.ts';
import { ApiKeyStore } from './api-keys.ts';
import { AuditTrail } from './audit.ts';
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
}

export function createStores(
  connection: Connection,
  { cursorSecret, retentionDays, idempotencyTtlHours, ...lists }: StoresOptions,
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

export default fp<StoresOptions>(
  async (app, options) => {
    app.decorate('stores', createStores(app.db.connection, options));
  },
  { name: 'stores', dependencies: ['database'], fastify: '5.x' },
);
