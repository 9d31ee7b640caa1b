// A small shop for the workflow tests: products, customers and stock created through the API
// (so they are what clients create), and reads of the stored documents to compare with.

import mongoose from 'mongoose';
import { expect } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import type { App } from '../../src/app.ts';
import type { StoredOrder, StoredStock } from './documents.ts';

const { ObjectId } = mongoose.Types;

/** A resource as the API answered its creation: its id typed, every other member as sent. */
export type Created = { id: string } & Record<string, any>;

export interface Shop {
  product(
    sku: string,
    fields?: { amount?: number; currency?: string; status?: string; name?: string },
  ): Promise<Created>;
  customer(fields?: Record<string, unknown>): Promise<Created>;
  stock(sku: string, warehouse: string, available: number): Promise<Created>;
  /** POST /v1/orders. */
  place(
    customerId: string,
    warehouse: string,
    lines: { sku: string; quantity: number }[],
  ): Promise<LightMyRequestResponse>;
  /** POST /v1/orders/:id/<action>. */
  act(orderId: string, action: string, options?: { note?: string; ifMatch?: string }): Promise<LightMyRequestResponse>;
  storedStock(sku: string, warehouse: string): Promise<StoredStock | null>;
  storedOrder(id: string): Promise<StoredOrder | null>;
  storedCustomer(id: string): Promise<Record<string, any> | null>;
  /** Every document of the collections a workflow writes: equal before and after means nothing changed. */
  snapshot(): Promise<Record<string, unknown[]>>;
}

let emails = 0;

export function shop(app: App): Shop {
  const db = () => app.db.connection.db!;
  const created = async (url: string, payload: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url, payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  };
  return {
    product: (sku, fields = {}) =>
      created('/v1/products', {
        sku,
        name: fields.name ?? `Product ${sku}`,
        price: { amount: fields.amount ?? 1000, currency: fields.currency ?? 'EUR' },
        category: 'test',
        status: fields.status ?? 'active',
      }),
    customer: (fields = {}) =>
      created('/v1/customers', { email: `buyer-${process.pid}-${++emails}@example.com`, name: 'A Buyer', ...fields }),
    stock: (sku, warehouse, available) => created('/v1/stock', { sku, warehouse, available }),
    place: (customerId, warehouse, lines) =>
      app.inject({ method: 'POST', url: '/v1/orders', payload: { customerId, warehouse, lines } }),
    act: (orderId, action, options = {}) =>
      app.inject({
        method: 'POST',
        url: `/v1/orders/${orderId}/${action}`,
        ...(options.note !== undefined && { payload: { note: options.note } }),
        ...(options.ifMatch !== undefined && { headers: { 'if-match': options.ifMatch } }),
      }),
    storedStock: (sku, warehouse) => db().collection<StoredStock>('stock').findOne({ sku, warehouse }),
    storedOrder: (id) =>
      db()
        .collection<StoredOrder>('orders')
        .findOne({ _id: new ObjectId(id) }),
    storedCustomer: (id) =>
      db()
        .collection('customers')
        .findOne({ _id: new ObjectId(id) }),
    snapshot: async () => {
      const all = (name: string) => db().collection(name).find().sort({ _id: 1 }).toArray();
      return {
        stock: await all('stock'),
        orders: await all('orders'),
        customers: await all('customers'),
        products: await all('products'),
      };
    },
  };
}
