// Creates, once at boot, a Mongoose model and a repository per entity on the app's connection,
// the reference lookups the domain's deletion rules need, and the workflows (order placement and
// status changes, stock movements) that write several documents in one transaction.

import fp from 'fastify-plugin';
import type { ClientSession } from 'mongoose';
import type { Entity } from '../domain/entity.ts';
import type { References } from '../domain/deletion.ts';
import { Customer, ENTITIES, Order, Product, Stock } from '../domain/entities/index.ts';
import { DocumentRepository, type RepositoryOptions } from './documents.ts';
import { toMongooseSchema } from './mongoose-schema.ts';
import { OrderWorkflow } from './orders.ts';
import { StockMovements } from './stock-movements.ts';

export interface Repositories {
  /** Repositories by collection name. */
  documents: Map<string, DocumentRepository>;
  references: References;
  /** The same lookups, read through a transaction's session (deletions inside a batch). */
  referencesIn(session: ClientSession): References;
  orders: OrderWorkflow;
  stockMovements: StockMovements;
}

declare module 'fastify' {
  interface FastifyInstance {
    repositories: Repositories;
  }
}

export function createRepositories(connection: import('mongoose').Connection, options: RepositoryOptions): Repositories {
  const documents = new Map<string, DocumentRepository>();
  for (const entity of ENTITIES as readonly Entity[]) {
    const schema = toMongooseSchema(entity.stored, { collection: entity.collection, collation: entity.collation });
    const model = connection.model(entity.schemaName, schema, entity.collection);
    documents.set(entity.collection, new DocumentRepository(entity, model, options));
  }
  const modelOf = (entity: Entity) => documents.get(entity.collection)!.model;
  const orders = modelOf(Order);
  const referencesIn = (session: ClientSession | null): References => ({
    ordersWithSku: async (sku) => (await orders.exists({ 'lines.sku': sku }).session(session)) !== null,
    ordersOfCustomer: async (customerId) => (await orders.exists({ customerId }).session(session)) !== null,
  });
  const references = referencesIn(null);
  const stockMovements = new StockMovements(connection, modelOf(Stock), modelOf(Product));
  const workflow = new OrderWorkflow(connection, { orders, customers: modelOf(Customer), products: modelOf(Product) }, stockMovements);
  return { documents, references, referencesIn, orders: workflow, stockMovements };
}

export default fp<RepositoryOptions>(
  async (app, options) => {
    app.decorate('repositories', createRepositories(app.db.connection, options));
  },
  { name: 'repositories', dependencies: ['database'], fastify: '5.x' },
);
