// The shop's operations, built once at boot over the stores and decorated on the app as
// `app.shop`: what a route handler calls after parsing a request, one operation per request.

import fp from 'fastify-plugin';
import { Product } from '../domain/entities/index.ts';
import type { Stores } from '../data/stores.ts';
import { BatchOperations } from './batch.ts';
import { DocumentOperations } from './documents.ts';
import { ImportOperations } from './imports.ts';
import { KeyOperations } from './keys.ts';
import { OrderOperations } from './orders.ts';
import { StockOperations } from './stock.ts';

export interface Shop {
  documents: DocumentOperations;
  orders: OrderOperations;
  stock: StockOperations;
  batch: BatchOperations;
  keys: KeyOperations;
  imports: ImportOperations;
}

declare module 'fastify' {
  interface FastifyInstance {
    shop: Shop;
  }
}

export function createShop(stores: Stores): Shop {
  const documents = new DocumentOperations(stores);
  const stock = new StockOperations(stores.work, stores.stock, stores.repositoryOf(Product.collection));
  return {
    documents,
    orders: new OrderOperations(stores.work, stores.orders, stores.stock, stock),
    stock,
    batch: new BatchOperations(stores.work, documents),
    keys: new KeyOperations(stores.work, stores.apiKeys),
    imports: new ImportOperations(stores, documents),
  };
}

export default fp(
  async (app) => {
    app.decorate('shop', createShop(app.stores));
  },
  { name: 'shop', dependencies: ['stores'], fastify: '5.x' },
);
