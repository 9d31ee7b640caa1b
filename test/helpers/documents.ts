// Valid stored documents for tests that need data the API does not create (yet), written
// straight to MongoDB through the same validator the service's writes meet.

import mongoose from 'mongoose';
import { Order } from '../../src/domain/entities/index.ts';

/** A stock item read back from MongoDB: the counters tests add up typed, every other field as stored. */
export type StoredStock = { available: number; reserved: number; shipped: number; version: number } & Record<
  string,
  any
>;
/** An order read back from MongoDB: its version and history typed, every other field as stored. */
export type StoredOrder = {
  version: number;
  history: { status: string; at: Date; note?: string }[];
} & Record<string, any>;

export function storedOrder(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = new Date();
  const example = Order.serverExample;
  return {
    _id: new mongoose.Types.ObjectId(),
    ...example,
    customerId: new mongoose.Types.ObjectId(),
    history: example.history.map((entry) => ({ ...entry, at: now })),
    version: 1,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

/** A valid stored product; `i` makes SKU and name unique. */
export function storedProduct(i: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const created = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
  return {
    _id: new mongoose.Types.ObjectId(),
    sku: `P-${String(i).padStart(6, '0')}`,
    name: `Product ${(i * 7919) % 100_003}`,
    price: { amount: 100 + ((i * 37) % 5000), currency: 'EUR' },
    category: ['apparel', 'kitchen', 'garden', 'toys'][i % 4],
    tags: i % 3 === 0 ? ['sale'] : [],
    attributes: { rank: i },
    status: i % 5 === 0 ? 'draft' : 'active',
    version: 1,
    createdAt: created,
    updatedAt: created,
    ...overrides,
  };
}
