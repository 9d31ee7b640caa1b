// Creates, once at boot, a Mongoose model and a repository per entity on the app's connection,
// the reference lookups the domain's deletion rules need, the workflows (order placement and
// status changes, stock movements) that write several documents in one transaction, and the
// audit trail that every one of those writes goes through.

import fp from 'fastify-plugin';
import type { ClientSession } from 'mongoose';
import type { Entity } from '../domain/entity.ts';
import type { References } from '../domain/deletion.ts';
import { Customer, ENTITIES, Order, Product, Stock } from '../domain/entities/index.ts';
import { AuditTrail, type AuditTrailOptions } from './audit.ts';
import { DocumentRepository } from './documents.ts';
import { CursorKeys } from './cursor-keys.ts';
import { toMongooseSchema } from './mongoose-schema.ts';
import { OrderWorkflow } from './orders.ts';
import { StockMovements } from './stock-movements.ts';

export interface Repositories {
  /** Repositories by collection name. */
  documents: Map<string, DocumentRepository>;
  /** The lookups the deletion rules need, read through the deleting transaction's session. */
  referencesIn(session: ClientSession): References;
  orders: OrderWorkflow;
  stockMovements: StockMovements;
  /** The transactions every write runs in, and the entries they leave. */
  audit: AuditTrail;
}

declare module 'fastify' {
  interface FastifyInstance {
    repositories: Repositories;
  }
}

export interface RepositoriesOptions extends Omit<AuditTrailOptions, 'cursors'> {
  /** CURSOR_SECRET; unset: the secret stored in the database. */
  cursorSecret?: string;
}

export function createRepositories(
  connection: import('mongoose').Connection,
  { cursorSecret, ...rest }: RepositoriesOptions,
): Repositories {
  // One key source for every list, so the stored secret is read once per process.
  const options = { ...rest, cursors: new CursorKeys(connection, cursorSecret) };
  const audit = new AuditTrail(connection, options);
  const documents = new Map<string, DocumentRepository>();
  for (const entity of ENTITIES as readonly Entity[]) {
    const schema = toMongooseSchema(entity.stored, { collection: entity.collection, collation: entity.collation });
    const model = connection.model(entity.schemaName, schema, entity.collection);
    documents.set(entity.collection, new DocumentRepository(entity, model, options, audit));
  }
  const modelOf = (entity: Entity) => documents.get(entity.collection)!.model;
  const orders = modelOf(Order);
  const referencesIn = (session: ClientSession): References => ({
    ordersWithSku: async (sku) => (await orders.exists({ 'lines.sku': sku }).session(session)) !== null,
    ordersOfCustomer: async (customerId) => (await orders.exists({ customerId }).session(session)) !== null,
  });
  const stockMovements = new StockMovements(audit, modelOf(Stock), modelOf(Product));
  const workflow = new OrderWorkflow(
    audit,
    { orders, customers: modelOf(Customer), products: modelOf(Product) },
    stockMovements,
  );
  return { documents, referencesIn, orders: workflow, stockMovements, audit };
}

export default fp<RepositoriesOptions>(
  async (app, options) => {
    app.decorate('repositories', createRepositories(app.db.connection, options));
  },
  { name: 'repositories', dependencies: ['database'], fastify: '5.x' },
);
