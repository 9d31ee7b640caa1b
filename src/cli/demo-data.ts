// The shop's demo data for `npm run seed`, generated deterministically: each document comes from
// PRNG streams keyed by its position, so the same options always give the same documents and a
// larger count only adds documents. Natural keys (SKU, e-mail, which SKUs are stocked) come from
// a stream that ignores --seed: reseeding with another seed finds them all present instead of
// building a second catalog whose barcodes would collide with the first.

import mongoose from 'mongoose';
import type { Static, TObject } from 'typebox';
import { Customer, Product, Stock } from '../domain/entities/index.ts';
import { productFields, type ProductFields } from './demo-catalog.ts';
import { customerFields, type CustomerFields } from './demo-customers.ts';
import { Random } from './seeded-random.ts';

type ObjectId = mongoose.Types.ObjectId;
type StockFields = Static<typeof Stock.writable>;

type SystemFields = {
  _id: ObjectId;
  version: number;
  createdAt: Date;
  updatedAt: Date;
};

export type ProductDocument = ProductFields & SystemFields;
export type CustomerDocument = CustomerFields & Static<typeof Customer.server> & SystemFields;
export type StockDocument = StockFields & Static<typeof Stock.server> & SystemFields;

/** A generated document and the part of it a client could have written, checked on its own. */
export interface Generated<D> {
  document: D;
  writable: Record<string, unknown>;
}

export interface DemoData {
  products: Generated<ProductDocument>[];
  customers: Generated<CustomerDocument>[];
  stock: Generated<StockDocument>[];
}

export interface DemoOptions {
  products: number;
  customers: number;
  seed: number;
}

export const WAREHOUSES = ['AMS-1', 'BER-1', 'MAD-1'] as const;

/** Fixed, so timestamps (and the ObjectIds built from them) do not depend on the day of the run. */
export const SEED_EPOCH = Date.UTC(2026, 10, 1);
const DAY_MS = 86_400_000;

/** An ObjectId whose timestamp is the document's creation, the rest from the document's stream. */
function objectIdAt(createdAt: Date, rng: Random): ObjectId {
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setUint32(0, Math.floor(createdAt.getTime() / 1000));
  bytes.set(rng.bytes(8), 4);
  return new mongoose.Types.ObjectId(bytes);
}

/** Creation within `maxDaysBack` days before the epoch; half the documents changed since. */
function timestamps(rng: Random, maxDaysBack: number): { createdAt: Date; updatedAt: Date } {
  const created = rng.int(SEED_EPOCH - maxDaysBack * DAY_MS, SEED_EPOCH - DAY_MS);
  const updated = rng.chance(0.5) ? created : rng.int(created, SEED_EPOCH);
  return { createdAt: new Date(created), updatedAt: new Date(updated) };
}

/**
 * The server fields a new document starts with, as the repository sets them on create. Declared
 * partial; that they are complete is checked against the stored schema before anything is written.
 */
function serverDefaults<E extends { server: TObject; serverDefaults: object }>(entity: E): Static<E['server']> {
  return structuredClone(entity.serverDefaults) as Static<E['server']>;
}

/** Every demo document for the options, in a fixed order. Pure: no clock, no Math.random. */
export function generateDemoData(options: DemoOptions): DemoData {
  const products: Generated<ProductDocument>[] = [];
  const stock: Generated<StockDocument>[] = [];
  for (let index = 0; index < options.products; index++) {
    const product = generateProduct(index, options.seed);
    products.push(product);
    if (product.document.status === 'active') stock.push(...generateStock(product.document, index, options.seed));
  }
  const customers: Generated<CustomerDocument>[] = [];
  for (let index = 0; index < options.customers; index++) customers.push(generateCustomer(index, options.seed));
  return { products, customers, stock };
}

function generateProduct(index: number, seed: number): Generated<ProductDocument> {
  return generateDocument(Product, 'product', index, seed, 540, productFields);
}

function generateStock(product: ProductDocument, index: number, seed: number): Generated<StockDocument>[] {
  return WAREHOUSES.map((warehouse) => {
    const rng = new Random(`${seed}/stock/${index}/${warehouse}`);
    // A few empty shelves; otherwise most items hold tens to a couple of hundred units.
    const available = rng.chance(0.08) ? 0 : Math.min(500, 1 + Math.floor(500 * rng.next() ** 1.7));
    const writable: StockFields = {
      sku: product.sku,
      warehouse,
      available,
      ...(rng.chance(0.55) ? { reorderLevel: rng.pick([5, 10, 15, 20, 25, 30, 40, 50]) } : {}),
    };
    const createdAt = new Date(Math.min(product.createdAt.getTime() + rng.int(1, 72) * 3_600_000, SEED_EPOCH));
    const updatedAt = rng.chance(0.3) ? createdAt : new Date(rng.int(createdAt.getTime(), SEED_EPOCH));
    return stored(Stock, writable, rng, { createdAt, updatedAt });
  });
}

function generateCustomer(index: number, seed: number): Generated<CustomerDocument> {
  return generateDocument(Customer, 'customer', index, seed, 720, customerFields);
}

/**
 * A product or customer at a position: its writable fields from `fields` (natural keys from a
 * stream that ignores the seed), created within `maxDaysBack` days before the epoch.
 */
function generateDocument<E extends { server: TObject; serverDefaults: object }, W extends Record<string, unknown>>(
  entity: E,
  kind: string,
  index: number,
  seed: number,
  maxDaysBack: number,
  fields: (index: number, identity: Random, rng: Random) => W,
): Generated<W & Static<E['server']> & SystemFields> {
  const rng = new Random(`${seed}/${kind}/${index}`);
  const writable = fields(index, new Random(`${kind}/${index}`), rng);
  return stored(entity, writable, rng, timestamps(rng, maxDaysBack));
}

/** The document as the repository would have stored it: a first version with the server's defaults. */
function stored<E extends { server: TObject; serverDefaults: object }, W extends Record<string, unknown>>(
  entity: E,
  writable: W,
  rng: Random,
  { createdAt, updatedAt }: { createdAt: Date; updatedAt: Date },
): Generated<W & Static<E['server']> & SystemFields> {
  return {
    writable,
    document: {
      _id: objectIdAt(createdAt, rng),
      ...writable,
      ...serverDefaults(entity),
      version: 1,
      createdAt,
      updatedAt,
    },
  };
}
