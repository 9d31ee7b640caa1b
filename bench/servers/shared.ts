// What the benchmark's two comparison servers (floor.ts, express-mongoose.ts) share: their
// environment, the JSON shape of a document, and the order placement's documents and updates,
// built with the service's own domain rules so that all three servers write the same documents
// and the collections' validators accept them.

import mongoose from 'mongoose';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import type { Entity } from '../../src/domain/entity.ts';
import { newOrder, priceOrder, type CatalogProduct, type OrderPlacement } from '../../src/domain/orders.ts';
import { MAX_AMOUNT } from '../../src/domain/types.ts';

const { ObjectId } = mongoose.Types;

export interface ServerEnvironment {
  host: string;
  port: number;
  uri: string;
  dbName: string;
  maxPoolSize: number;
  minPoolSize: number;
}

/** The same variables the service reads, with the same defaults where it has them. */
export function serverEnvironment(env: NodeJS.ProcessEnv = process.env): ServerEnvironment {
  const uri = env.MONGODB_URI;
  if (uri === undefined || uri === '') throw new Error('MONGODB_URI is required');
  return {
    host: env.HOST ?? '127.0.0.1',
    port: Number(env.PORT ?? 3000),
    uri,
    dbName: env.MONGODB_DB ?? 'storekeeper',
    maxPoolSize: Number(env.MONGODB_MAX_POOL_SIZE ?? 50),
    minPoolSize: Number(env.MONGODB_MIN_POOL_SIZE ?? 2),
  };
}

/** The driver settings the service uses (src/data/database.ts): majority writes, retries. */
export function clientOptions(environment: ServerEnvironment, appName: string) {
  return {
    appName,
    maxPoolSize: environment.maxPoolSize,
    minPoolSize: environment.minPoolSize,
    retryWrites: true,
    retryReads: true,
    writeConcern: { w: 'majority' as const },
  };
}

/** The transaction settings of the service's withTransaction. */
export const TRANSACTION_OPTIONS = {
  readConcern: { level: 'majority' as const },
  writeConcern: { w: 'majority' as const },
  readPreference: 'primary' as const,
};

export type PlainDocument = Record<string, unknown> & { _id: InstanceType<typeof ObjectId> };

/** The API's view of a stored document, as the service answers it: id first, no _id. */
export function toResource({ _id, ...rest }: PlainDocument): Record<string, unknown> {
  return { id: _id.toHexString(), ...rest };
}

export const isObjectId = (value: unknown): value is string =>
  typeof value === 'string' && /^[0-9a-f]{24}$/.test(value);

/** Product list parameters the benchmark sends: equality filters, one sort key, a page size. */
export interface ListParameters {
  filter: Record<string, unknown>;
  field: string;
  direction: 1 | -1;
  limit: number;
}

const SORTS = new Set(['createdAt', 'updatedAt', 'name', 'price.amount']);

export function listParameters(query: Record<string, unknown>): ListParameters {
  const filter: Record<string, unknown> = {};
  for (const name of ['category', 'status', 'sku']) {
    if (typeof query[name] === 'string') filter[name] = query[name];
  }
  const sort = typeof query.sort === 'string' ? query.sort : '-createdAt';
  const field = sort.replace(/^-/, '');
  if (!SORTS.has(field)) throw new RangeError(`cannot sort by ${field}`);
  const limit = Math.min(200, Math.max(1, Number(query.limit ?? 50) || 50));
  return { filter, field, direction: sort.startsWith('-') ? -1 : 1, limit };
}

/** A dotted path of a plain document. */
export function valueAt(document: Record<string, unknown>, path: string): unknown {
  let current: unknown = document;
  for (const segment of path.split('.')) current = (current as Record<string, unknown> | undefined)?.[segment];
  return current;
}

/** The same request with `name` set: the next page's link. */
export function linkWith(url: string, name: string, value: string): string {
  const parsed = new URL(url, 'http://bench.invalid');
  parsed.searchParams.set(name, value);
  return `${parsed.pathname}${parsed.search}`;
}

/** Refusal of a placement: a line's SKU has too few units available. */
export class InsufficientStock extends Error {
  constructor(readonly sku: string) {
    super(`not enough ${sku} available`);
  }
}

/** The order document to insert, priced from the catalog as the service prices it. */
export function orderDocument(placement: OrderPlacement, products: readonly CatalogProduct[], now: Date) {
  const priced = priceOrder(placement, products);
  const order = newOrder(placement, priced, now);
  return { _id: new ObjectId(), ...order, customerId: new ObjectId(placement.customerId) };
}

/**
 * The customer's stats update of a placement (src/data/orders.ts countPurchase): add to the
 * currency's running total, or start one; the first whose filter matches applies.
 */
export function purchaseUpdates(
  customerId: string,
  subtotal: { amount: number; currency: string },
  now: Date,
): { filter: mongoose.mongo.Document; update: mongoose.mongo.Document }[] {
  const _id = new ObjectId(customerId);
  const always = { $max: { 'stats.lastOrderAt': now }, $set: { updatedAt: now } };
  return [
    {
      filter: {
        _id,
        'stats.spent': { $elemMatch: { currency: subtotal.currency, amount: { $lte: MAX_AMOUNT - subtotal.amount } } },
      },
      update: { ...always, $inc: { 'stats.orderCount': 1, 'stats.spent.$.amount': subtotal.amount, version: 1 } },
    },
    {
      filter: { _id, 'stats.spent.currency': { $ne: subtotal.currency } },
      update: { ...always, $inc: { 'stats.orderCount': 1, version: 1 }, $push: { 'stats.spent': subtotal } },
    },
  ];
}

const SERVER_DEFAULTS = new Map(
  (ENTITIES as readonly Entity[]).map((entity) => [entity.collection, entity.serverDefaults as object]),
);

/** The documents of a batch of inserts, as the service stores new documents (its server fields' defaults added). */
export function insertedDocuments(operations: unknown): { collection: string; document: Record<string, unknown> }[] {
  if (!Array.isArray(operations) || operations.length === 0)
    throw new RangeError('operations must be a non-empty list');
  const now = new Date();
  return operations.map((operation: { op?: unknown; collection?: unknown; document?: unknown } | null) => {
    if (
      operation?.op !== 'insert' ||
      typeof operation.collection !== 'string' ||
      typeof operation.document !== 'object'
    ) {
      throw new RangeError('only inserts are supported here');
    }
    return {
      collection: operation.collection,
      document: {
        _id: new ObjectId(),
        ...(operation.document as object),
        ...structuredClone(SERVER_DEFAULTS.get(operation.collection) ?? {}),
        version: 1,
        createdAt: now,
        updatedAt: now,
      },
    };
  });
}

export const PRODUCT_PROJECTION = { sku: 1, name: 1, price: 1, status: 1 } as const;
