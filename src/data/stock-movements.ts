// Stock movements on MongoDB: every change of a stock item's counters is one conditional update
// that refuses to take a counter below zero or past its declared maximum (the validator's minimum
// and maximum are the second line of defence). The shop's stock and order operations
// (src/shop/stock.ts, orders.ts) move units through these calls only, inside their unit of work.

import type { ClientSession } from 'mongoose';
import {
  RECEIVE,
  scale,
  stockLimitExceeded,
  type ScaledDelta,
  type StockCounter,
  type StockDelta,
} from '../domain/stock-movements.ts';
import { maximumOf } from '../domain/limits.ts';
import { Stock } from '../domain/entities/index.ts';
import type { AuditAction } from '../domain/audit.ts';
import type { DocumentRepository, StoredDocument } from './documents.ts';
import type { Tx } from './unit-of-work.ts';

export interface StockKey {
  sku: string;
  warehouse: string;
}

export interface Restocked {
  item: StoredDocument;
  /** True when the warehouse had no item of the SKU before. */
  created: boolean;
}

/** What a movement is recorded as, and when it happens. */
export interface MovementOptions {
  action: AuditAction;
  now: Date;
}

/** Each counter's declared maximum (the validator's too). */
const MAXIMA = Object.fromEntries(
  (['available', 'reserved', 'shipped'] as const).map((counter) => [counter, maximumOf(Stock, counter)]),
) as Record<StockCounter, number | undefined>;

/** Filter conditions: every counter holds at least this much. */
const atLeast = (requires: ScaledDelta['requires']) =>
  Object.fromEntries(Object.entries(requires).map(([counter, least]) => [counter, { $gte: least }]));

/** Filter conditions: every counter raised stays within its maximum once raised. */
function roomFor(inc: ScaledDelta['inc']): Record<string, { $lte: number }> {
  const room: Record<string, { $lte: number }> = {};
  for (const [counter, by] of Object.entries(inc) as [StockCounter, number][]) {
    const maximum = MAXIMA[counter];
    if (by > 0 && maximum !== undefined) room[counter] = { $lte: maximum - by };
  }
  return room;
}

/** The 409 for an item that holds enough but has no room: names the first counter that would pass its maximum. */
function counterFull(item: StoredDocument, inc: ScaledDelta['inc']): Error {
  for (const [counter, by] of Object.entries(inc) as [StockCounter, number][]) {
    const maximum = MAXIMA[counter];
    const holds = Number(item[counter] ?? 0);
    if (by > 0 && maximum !== undefined && holds + by > maximum) {
      return stockLimitExceeded(
        { id: item._id.toHexString(), sku: String(item.sku), warehouse: String(item.warehouse) },
        counter,
        holds,
        by,
        maximum,
      );
    }
  }
  // The guard and this read disagree only if the item changed in between, which the transaction's snapshot rules out.
  return new Error(`stock item ${item._id.toHexString()}: no room by the guard, but room by the read`);
}

export class StockRepository {
  constructor(readonly items: DocumentRepository) {}

  /**
   * Moves `quantity` units between the counters of one stock item, only if every counter the
   * movement lowers holds enough and none it raises would pass its declared maximum. Returns the
   * item as changed, or null when it is short or missing (and then nothing changed); a counter
   * that would pass its maximum is the limit-exceeded 409.
   */
  async apply(
    tx: Tx,
    key: StockKey,
    delta: StockDelta,
    quantity: number,
    options: MovementOptions,
  ): Promise<StoredDocument | null> {
    const { inc, requires } = scale(delta, quantity);
    const room = roomFor(inc);
    const filter = { sku: key.sku, warehouse: key.warehouse };
    const changed = await this.items.updateIf(tx, { ...filter, ...atLeast(requires), ...room }, { $inc: inc }, options);
    if (changed !== null || Object.keys(room).length === 0) return changed;
    // Not changed: short, missing, or full. Only a full item is a problem of its own.
    const current = await this.items.findOne({ ...filter, ...atLeast(requires) }, { session: tx.session });
    if (current !== null) throw counterFull(current, inc);
    return null;
  }

  /**
   * Adds available units, creating the item when the warehouse has none, unless the item would
   * pass its maximum (the limit-exceeded 409). The upsert is keyed on (sku, warehouse), which the
   * unique index makes safe. It runs only once the guarded update found no item in the
   * transaction's snapshot: with the guard in its filter, an upsert onto a full item would try to
   * insert a second one, meet the unique index's duplicate key and abort the transaction, where
   * the full item must be a limit-exceeded 409.
   */
  async receive(tx: Tx, key: StockKey, quantity: number, options: MovementOptions): Promise<Restocked> {
    const { inc } = scale(RECEIVE, quantity);
    const filter = { sku: key.sku, warehouse: key.warehouse };
    const updated = await this.items.updateIf(tx, { ...filter, ...roomFor(inc) }, { $inc: inc }, options);
    if (updated !== null) return { item: updated, created: false };
    const current = await this.items.findOne(filter, { session: tx.session });
    if (current !== null) throw counterFull(current, inc);
    const { document, created } = await this.items.upsert(tx, {
      filter,
      update: { $inc: inc, $setOnInsert: { reserved: 0, shipped: 0 } },
      ...options,
    });
    return { item: document, created };
  }

  /** Units available per SKU in a warehouse; a SKU the warehouse has no item of is left out. */
  async available(session: ClientSession | undefined, warehouse: string, skus: string[]): Promise<Map<string, number>> {
    const items = await this.items.find(
      { warehouse, sku: { $in: skus } },
      { projection: { sku: 1, available: 1 }, ...(session && { session }) },
    );
    return new Map(items.map((item) => [String(item.sku), Number(item.available)]));
  }
}
