// Stock movements on MongoDB: every change of a stock item's counters is one conditional update
// that refuses to take a counter below zero or past its declared maximum (the validator's
// minimum and maximum are the second line of defence), and restocking and moving are each one transaction of the audit trail, which records
// every item they change. The order workflow moves its reservations through the same calls, and
// every transaction that writes stock items takes its turn per item in this process (see
// key-locks.ts).

import type { ClientSession, Model } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import {
  RECEIVE,
  SEND,
  checkMove,
  insufficientStock,
  scale,
  stockLimitExceeded,
  unknownProduct,
  type Restock,
  type ScaledDelta,
  type StockCounter,
  type StockDelta,
  type StockMove,
} from '../domain/stock-movements.ts';
import { maximumOf } from '../domain/limits.ts';
import { Stock } from '../domain/entities/index.ts';
import { AppError } from '../errors.ts';
import type { Actor, AuditTrail, Tx } from './audit.ts';
import type { StoredDocument } from './documents.ts';
import { KeyLocks, TurnTimeout } from './key-locks.ts';
import { DEFAULT_TRANSACTION_OPTIONS, type TransactionOptions } from './transactions.ts';

export interface StockKey {
  sku: string;
  warehouse: string;
}

export interface Restocked {
  item: StoredDocument;
  /** True when the warehouse had no item of the SKU before. */
  created: boolean;
}

export interface Moved {
  from: StoredDocument;
  to: StoredDocument;
}

/**
 * Taking turns, an attempt fails only to a write of the same item from another instance, which
 * commits meanwhile: cheap (stock writes come first) and soon over. But another instance sends a
 * steady stream of such writes while a hot item sells, and the attempt that backs off can lose
 * to each of them in turn. So the time budget bounds these retries (the backoff's 250 ms cap
 * allows about 40 attempts in it), and the attempt count is only a backstop.
 */
export const STOCK_TRANSACTION: TransactionOptions = { ...DEFAULT_TRANSACTION_OPTIONS, maxAttempts: 100 };

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
function counterFull(item: StoredDocument, inc: ScaledDelta['inc']): AppError {
  for (const [counter, by] of Object.entries(inc) as [StockCounter, number][]) {
    const maximum = MAXIMA[counter];
    const value = Number(item[counter] ?? 0) + by;
    if (by > 0 && maximum !== undefined && value > maximum) {
      return stockLimitExceeded(
        { id: item._id.toHexString(), sku: item.sku, warehouse: item.warehouse },
        counter,
        Number(item[counter] ?? 0),
        by,
        maximum,
      );
    }
  }
  // The guard and this read disagree only if the item changed in between, which the transaction's snapshot rules out.
  throw new Error(`stock item ${item._id.toHexString()}: no room by the guard, but room by the read`);
}

export class StockMovements {
  private readonly turns = new KeyLocks();

  constructor(
    private readonly trail: AuditTrail,
    private readonly stock: Model<any>,
    private readonly products: Model<any>,
  ) {}

  /**
   * Moves `quantity` units between the counters of one stock item, only if every counter the
   * movement lowers holds enough and none it raises would pass its declared maximum. Returns the
   * item as changed, or null when it is short or missing (and then nothing changed); a counter
   * that would pass its maximum is the limit-exceeded 409.
   */
  async apply(
    session: ClientSession,
    key: StockKey,
    delta: StockDelta,
    quantity: number,
    now: Date,
  ): Promise<StoredDocument | null> {
    const { inc, requires } = scale(delta, quantity);
    const room = roomFor(inc);
    const guard = { ...atLeast(requires), ...room };
    const changed = await this.stock
      .findOneAndUpdate(
        { sku: key.sku, warehouse: key.warehouse, ...guard },
        { $inc: { ...inc, version: 1 }, $set: { updatedAt: now } },
        { session, returnDocument: 'after' },
      )
      .lean<StoredDocument>()
      .exec();
    if (changed !== null || Object.keys(room).length === 0) return changed;
    // Not changed: short, missing, or full. Only a full item is a problem of its own.
    const current = await this.stock
      .findOne({ sku: key.sku, warehouse: key.warehouse, ...atLeast(requires) })
      .session(session)
      .lean<StoredDocument>()
      .exec();
    if (current !== null) throw counterFull(current, inc);
    return null;
  }

  /**
   * One transaction of the audit trail (on behalf of `actor`) that writes these stock items, run
   * in turn with this process's other transactions writing any of them. Waiting longer than the
   * request's deadline for the turn is a 503: nothing was written.
   */
  async transaction<T>(
    items: readonly StockKey[],
    actor: Actor,
    work: (tx: Tx) => Promise<T>,
    log: FastifyBaseLogger,
  ): Promise<T> {
    const keys = items.map((item) => `${item.warehouse}/${item.sku}`);
    try {
      return await this.turns.run(keys, actor.deadline?.remaining() ?? STOCK_TRANSACTION.maxTimeMs, () =>
        this.trail.transaction(actor, work, log, STOCK_TRANSACTION),
      );
    } catch (error) {
      if (!(error instanceof TurnTimeout)) throw error;
      throw AppError.unavailable(
        STOCK_TRANSACTION.retryAfterSeconds,
        `Too many writes of the stock item ${error.key} at once; nothing was written. Retry.`,
        error,
      );
    }
  }

  /** Units available per SKU in a warehouse; a SKU the warehouse has no item of is left out. */
  async available(session: ClientSession | null, warehouse: string, skus: string[]): Promise<Map<string, number>> {
    const items = await this.stock
      .find({ warehouse, sku: { $in: skus } }, { sku: 1, available: 1 })
      .session(session)
      .lean<{ sku: string; available: number }[]>()
      .exec();
    return new Map(items.map((item) => [item.sku, item.available]));
  }

  /** Units arriving in a warehouse, for a product of the catalog. */
  async restock(request: Restock, actor: Actor, log: FastifyBaseLogger): Promise<Restocked> {
    return this.transaction(
      [request],
      actor,
      async (tx) => {
        const product = await this.products.exists({ sku: request.sku }).session(tx.session).exec();
        if (product === null) throw unknownProduct(request.sku);
        const restocked = await this.receive(tx.session, request, request.quantity, new Date());
        tx.record('restock', Stock.collection, restocked.item);
        return restocked;
      },
      log,
    );
  }

  /** Available units from one warehouse to another: both changes or neither. */
  async move(request: StockMove, actor: Actor, log: FastifyBaseLogger): Promise<Moved> {
    checkMove(request);
    const { sku, quantity } = request;
    return this.transaction(
      [
        { sku, warehouse: request.from },
        { sku, warehouse: request.to },
      ],
      actor,
      async (tx) => {
        const now = new Date();
        const from = await this.apply(tx.session, { sku, warehouse: request.from }, SEND, quantity, now);
        if (from === null) {
          const available = (await this.available(tx.session, request.from, [sku])).get(sku) ?? 0;
          throw insufficientStock([{ sku, warehouse: request.from, requested: quantity, available }]);
        }
        const { item: to } = await this.receive(tx.session, { sku, warehouse: request.to }, quantity, now);
        tx.record('move', Stock.collection, from);
        tx.record('move', Stock.collection, to);
        return { from, to };
      },
      log,
    );
  }

  /**
   * Adds available units, creating the item when the warehouse has none, unless the item would
   * pass its maximum (the limit-exceeded 409). The upsert is keyed on (sku, warehouse), which the
   * unique index makes safe: of two transactions inserting the same item, the second meets a
   * write conflict (not a duplicate key) and its retry updates the item. It runs only once the
   * guarded update found no item in the transaction's snapshot: with the guard in its filter, an
   * upsert onto a full item would try to insert a second one, meet the unique index's duplicate
   * key and abort the transaction, where the full item must be a limit-exceeded 409.
   */
  private async receive(session: ClientSession, key: StockKey, quantity: number, now: Date): Promise<Restocked> {
    const { inc } = scale(RECEIVE, quantity);
    const filter = { sku: key.sku, warehouse: key.warehouse };
    const update = { $inc: { ...inc, version: 1 }, $set: { updatedAt: now } };
    const updated = await this.stock
      .findOneAndUpdate({ ...filter, ...roomFor(inc) }, update, { session, returnDocument: 'after' })
      .lean<StoredDocument>()
      .exec();
    if (updated !== null) return { item: updated, created: false };
    const current = await this.stock.findOne(filter).session(session).lean<StoredDocument>().exec();
    if (current !== null) throw counterFull(current, inc);
    const result = await this.stock
      .findOneAndUpdate(
        filter,
        { ...update, $setOnInsert: { reserved: 0, shipped: 0, createdAt: now } },
        { session, upsert: true, returnDocument: 'after', includeResultMetadata: true },
      )
      .lean<StoredDocument>()
      .exec();
    return { item: result.value as StoredDocument, created: result.lastErrorObject?.updatedExisting === false };
  }
}
