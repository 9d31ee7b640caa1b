// The benchmark's database: migrated as production is (the same validators and indexes), seeded
// with the shop's demo data (src/cli/demo-data.ts), and what the scenarios need from it: ids to
// read and patch, customers, per-server hot SKUs with stock, product templates for creates and
// ingests. Also the stock ledger that proves order placement never oversold.

import mongoose from 'mongoose';
import { generateDemoData, type ProductDocument } from '../../src/cli/demo-data.ts';
import { migrateUp } from '../../src/data/migrations.ts';
import type { ServerName } from './processes.ts';

type Db = mongoose.mongo.Db;
type ObjectId = mongoose.mongo.ObjectId;

export interface SeedOptions {
  products: number;
  customers: number;
  /** Stock items are seeded for the first this many products (three warehouses each, when active). */
  stockedProducts: number;
}

export interface Fixture {
  readIds: string[];
  patchIds: string[];
  /** Every other product, in a seeded order: ids no scenario before the cold reads has read by id. */
  coldIds: string[];
  customerIds: string[];
  categories: string[];
  /** The writable part of demo products, for creates (their SKUs replaced, GTINs left out). */
  templates: Record<string, unknown>[];
  /** The writable part of demo customers, for the ingest (their e-mails made unique). */
  customerTemplates: Record<string, unknown>[];
  /** Each server's own hot SKUs, so that each one's stock ledger can be checked on its own. */
  hotSkus: Record<ServerName, string[]>;
  counts: { products: number; customers: number; stock: number };
}

export const WAREHOUSE = 'AMS-1';
const HOT_SKUS_PER_SERVER = 10;
const SAMPLE = 1000;
const INSERT_BATCH = 1000;

/** Fisher-Yates with a seeded generator: the same picks on every run. */
function pick<T>(items: readonly T[], count: number, seed: number): T[] {
  const copy = [...items];
  let state = seed;
  const next = () => (state = (state * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, count);
}

async function insertAll(db: Db, collection: string, documents: readonly Record<string, unknown>[]): Promise<void> {
  for (let start = 0; start < documents.length; start += INSERT_BATCH) {
    await db.collection(collection).insertMany(
      documents.slice(start, start + INSERT_BATCH).map((document) => ({ ...document })),
      { ordered: false },
    );
  }
}

/**
 * Migrates `db` and fills it with demo data. Documents go in through insertMany, checked by the
 * collections' validators (the seed command's upserts would only make it slower here).
 */
export async function prepareDatabase(
  db: Db,
  client: mongoose.mongo.MongoClient,
  options: SeedOptions,
  servers: readonly ServerName[],
): Promise<Fixture> {
  await migrateUp(db, client);
  const data = generateDemoData({ products: options.products, customers: options.customers, seed: 1 });
  const stocked = new Set(data.products.slice(0, options.stockedProducts).map((product) => product.document.sku));
  const stock = data.stock.filter((item) => stocked.has(item.document.sku));
  await insertAll(
    db,
    'products',
    data.products.map((product) => product.document),
  );
  await insertAll(
    db,
    'customers',
    data.customers.map((customer) => customer.document),
  );
  await insertAll(
    db,
    'stock',
    stock.map((item) => item.document),
  );

  const products = data.products.map((product) => product.document);
  const ids = pick(products, products.length, 7).map((product) => product._id.toHexString());
  const active = new Set(products.filter((product) => product.status === 'active').map((product) => product.sku));
  const hotCandidates = stock
    .filter((item) => item.document.warehouse === WAREHOUSE && active.has(item.document.sku))
    .map((item) => item.document.sku);
  const hot = pick(hotCandidates, HOT_SKUS_PER_SERVER * servers.length, 11);
  const hotSkus = Object.fromEntries(
    servers.map((name, i) => [name, hot.slice(i * HOT_SKUS_PER_SERVER, (i + 1) * HOT_SKUS_PER_SERVER)]),
  ) as Record<ServerName, string[]>;
  return {
    readIds: ids.slice(0, SAMPLE),
    patchIds: ids.slice(SAMPLE, 2 * SAMPLE),
    coldIds: ids.slice(2 * SAMPLE),
    customerIds: pick(data.customers, SAMPLE, 13).map((customer) => customer.document._id.toHexString()),
    categories: [...new Set(products.map((product) => product.category))].sort(),
    templates: pick(products, 500, 17).map(template),
    customerTemplates: pick(data.customers, 500, 19).map((customer) => ({ ...customer.writable })),
    hotSkus,
    counts: { products: products.length, customers: data.customers.length, stock: stock.length },
  };
}

/** A demo product as a client would send it, without the values that must be unique. */
function template(product: ProductDocument): Record<string, unknown> {
  const { _id, version, createdAt, updatedAt, sku, gtin, ...writable } = product;
  return writable;
}

/** A new product from a template with its own SKU. */
export const productWithSku = (template: Record<string, unknown>, sku: string) => ({ sku, ...template });

/** A new customer from a template, its e-mail made unique by a +tag (`ada1+s1x42@example.com`). */
export const customerWithTag = (template: Record<string, unknown>, tag: string) => ({
  ...template,
  email: String(template.email).replace('@', `+${tag}@`),
});

export interface StockLine {
  sku: string;
  available: number;
  reserved: number;
  shipped: number;
}

export async function stockOf(db: Db, skus: readonly string[]): Promise<Map<string, StockLine>> {
  const items = await db
    .collection('stock')
    .find(
      { sku: { $in: [...skus] }, warehouse: WAREHOUSE },
      { projection: { _id: 0, sku: 1, available: 1, reserved: 1, shipped: 1 } },
    )
    .toArray();
  return new Map(items.map((item) => [item.sku as string, item as unknown as StockLine]));
}

/** Sets the available units of the SKUs, adding each change to `added` (negative when units were removed). */
export async function setAvailable(
  db: Db,
  skus: readonly string[],
  available: number,
  added: Map<string, number>,
): Promise<void> {
  const before = await stockOf(db, skus);
  for (const sku of skus) {
    const delta = available - before.get(sku)!.available;
    await db
      .collection('stock')
      .updateOne(
        { sku, warehouse: WAREHOUSE },
        { $inc: { available: delta, version: 1 }, $set: { updatedAt: new Date() } },
      );
    added.set(sku, (added.get(sku) ?? 0) + delta);
  }
}

/** Units of each SKU on all orders from the warehouse. */
export async function orderedUnits(db: Db, skus: readonly string[]): Promise<Map<string, number>> {
  const rows = await db
    .collection('orders')
    .aggregate<{ _id: string; units: number }>([
      { $match: { warehouse: WAREHOUSE, 'lines.sku': { $in: [...skus] } } },
      { $unwind: '$lines' },
      { $match: { 'lines.sku': { $in: [...skus] } } },
      { $group: { _id: '$lines.sku', units: { $sum: '$lines.quantity' } } },
    ])
    .toArray();
  return new Map(rows.map((row) => [row._id, row.units]));
}

/**
 * Waits until the server has finished what the load left in flight (autocannon stops sending,
 * the server still completes what it received): the orders and stock of these SKUs stop changing.
 */
export async function waitUntilSettled(db: Db, skus: readonly string[], maxMs = 30_000): Promise<void> {
  const snapshot = async () =>
    JSON.stringify([...(await stockOf(db, skus)).values(), await db.collection('orders').estimatedDocumentCount()]);
  const deadline = Date.now() + maxMs;
  let previous = await snapshot();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const current = await snapshot();
    if (current === previous) return;
    previous = current;
  }
}

export interface LedgerCheck {
  /** Units reserved that no order accounts for, plus any units available below zero. */
  oversoldUnits: number;
  negativeCounters: number;
  unitsOrdered: number;
  /** available + reserved + shipped equals what was seeded plus what the bench added, for every SKU. */
  balanced: boolean;
  ok: boolean;
}

/**
 * The stock of each hot SKU against its history: every reserved unit is on an order, no counter
 * is negative, and available + reserved + shipped is what was seeded plus what the bench added.
 */
export async function checkLedger(
  db: Db,
  skus: readonly string[],
  initial: Map<string, StockLine>,
  added: Map<string, number>,
): Promise<LedgerCheck> {
  const now = await stockOf(db, skus);
  const ordered = await orderedUnits(db, skus);
  let oversoldUnits = 0;
  let negativeCounters = 0;
  let unitsOrdered = 0;
  let balanced = true;
  for (const sku of skus) {
    const before = initial.get(sku)!;
    const after = now.get(sku)!;
    const units = ordered.get(sku) ?? 0;
    unitsOrdered += units;
    oversoldUnits += Math.max(0, after.reserved - before.reserved - units) + Math.max(0, -after.available);
    negativeCounters += [after.available, after.reserved, after.shipped].filter((value) => value < 0).length;
    const total = (line: StockLine) => line.available + line.reserved + line.shipped;
    if (total(after) !== total(before) + (added.get(sku) ?? 0) || after.reserved - before.reserved !== units)
      balanced = false;
  }
  return {
    oversoldUnits,
    negativeCounters,
    unitsOrdered,
    balanced,
    ok: balanced && oversoldUnits === 0 && negativeCounters === 0,
  };
}

export type { ObjectId };
