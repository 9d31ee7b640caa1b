// The order workflow on MongoDB: placing an order and moving it through its status machine,
// each one transaction of the audit trail over the order, the stock items of its lines and, on
// placement, the customer's running stats, recording every one of them it changes under the
// action's name; those that write stock take their turn per stock item
// (StockMovements.transaction). The rules come from src/domain/orders.ts.

import mongoose, { type ClientSession, type Model } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import {
  TRANSITIONS,
  checkPlacement,
  newOrder,
  priceOrder,
  transitionFor,
  unknownCustomer,
  type CatalogProduct,
  type OrderAction,
  type OrderPlacement,
  type OrderStatus,
} from '../domain/orders.ts';
import { Customer, Order, Stock } from '../domain/entities/index.ts';
import { RESERVE, insufficientStock, type Shortage } from '../domain/stock-movements.ts';
import { MAX_AMOUNT } from '../domain/types.ts';
import { AppError } from '../errors.ts';
import type { Actor, AuditTrail, Tx, Written } from './audit.ts';
import { bounded } from './deadline.ts';
import type { StoredDocument } from './documents.ts';
import type { StockMovements } from './stock-movements.ts';

const { ObjectId } = mongoose.Types;

const notFound = (id: string) => AppError.notFound(`No order with id ${id}.`);

export interface OrderModels {
  orders: Model<any>;
  customers: Model<any>;
  products: Model<any>;
}

export interface ActionRequest {
  note?: string;
  /** From If-Match: act only on this version of the order (else 412). */
  expectedVersion?: number;
}

type StoredOrder = StoredDocument & {
  status: OrderStatus;
  warehouse: string;
  lines: { sku: string; quantity: number }[];
};

export class OrderWorkflow {
  constructor(
    private readonly trail: AuditTrail,
    private readonly models: OrderModels,
    private readonly stock: StockMovements,
  ) {}

  /**
   * Places an order: the customer must exist, every SKU be an active product and in stock in the
   * warehouse. Reserves the stock, prices the lines from the catalog, stores the order and
   * counts it in the customer's stats, all or nothing.
   */
  async place(placement: OrderPlacement, actor: Actor, log: FastifyBaseLogger): Promise<StoredDocument> {
    checkPlacement(placement);
    // A retry of a placement that committed replays its result: the early checks would judge the
    // stock after that placement took it, and refuse it.
    if (actor.guard?.committed === undefined) await bounded(this.refuseEarly(placement), actor.deadline);
    const items = placement.lines.map((line) => ({ sku: line.sku, warehouse: placement.warehouse }));
    return this.stock.transaction(items, actor, (tx) => this.placeIn(tx, placement), log);
  }

  /**
   * The checks of a placement, read outside any transaction: a placement they refuse is refused
   * at once, without queueing for its stock items' turn. When a hot SKU sells out, the many
   * placements that follow are answered from one read each instead of lining up behind each
   * other's transactions. Every refusal is true of the moment it was read; a placement they let
   * through is checked again, for real, inside its transaction.
   */
  private async refuseEarly(placement: OrderPlacement): Promise<void> {
    const skus = placement.lines.map((line) => line.sku);
    const [customer, products, available] = await Promise.all([
      this.models.customers.exists({ _id: new ObjectId(placement.customerId) }).exec(),
      this.catalog(null, skus),
      this.stock.available(null, placement.warehouse, skus),
    ]);
    // In the order the transaction checks: customer, products, stock.
    if (customer === null) throw unknownCustomer(placement.customerId);
    priceOrder(placement, products);
    const shortages = placement.lines
      .map((line) => ({
        sku: line.sku,
        warehouse: placement.warehouse,
        requested: line.quantity,
        available: available.get(line.sku) ?? 0,
      }))
      .filter((shortage) => shortage.available < shortage.requested);
    if (shortages.length > 0) throw insufficientStock(shortages);
  }

  /** What pricing needs of the products with these SKUs, read in a transaction's session or outside one. */
  private catalog(session: ClientSession | null, skus: string[]): Promise<CatalogProduct[]> {
    return this.models.products
      .find({ sku: { $in: skus } }, { sku: 1, name: 1, price: 1, status: 1 })
      .session(session)
      .lean<CatalogProduct[]>()
      .exec();
  }

  private async placeIn(tx: Tx, placement: OrderPlacement): Promise<StoredDocument> {
    const { session } = tx;
    const now = new Date();
    // The reservations come first. They are where concurrent placements collide, and a
    // transaction reads from a snapshot taken at its first operation: had it read first, a
    // placement committed in between would turn this one's stock write into a conflict. So a
    // colliding attempt fails at its first step, cheaply, and the retry sees fresh stock.
    const shortages = await this.reserve(tx, placement, now);
    // What is refused is still said in the order of the checks: customer, products, stock.
    const customer = await this.models.customers
      .exists({ _id: new ObjectId(placement.customerId) })
      .session(session)
      .exec();
    if (customer === null) throw unknownCustomer(placement.customerId);
    const products = await this.catalog(
      session,
      placement.lines.map((line) => line.sku),
    );
    const priced = priceOrder(placement, products);
    if (shortages.length > 0) throw insufficientStock(shortages);
    const [created] = await this.models.orders.create([{ _id: new ObjectId(), ...newOrder(placement, priced, now) }], {
      session,
    });
    const order = created.toObject() as StoredDocument;
    tx.record('place', Order.collection, order);
    tx.record(
      'place',
      Customer.collection,
      await this.countPurchase(session, placement.customerId, priced.totals.subtotal, now),
    );
    return order;
  }

  /**
   * Moves an order to the status the action leads to, if its current status allows the action,
   * and applies what the transition does to the stock of its lines. The write is conditional on
   * the status (and version) read, so of concurrent actions on one order exactly one applies.
   */
  async act(
    id: string,
    action: OrderAction,
    request: ActionRequest,
    actor: Actor,
    log: FastifyBaseLogger,
  ): Promise<StoredDocument> {
    const work = (tx: Tx) => this.actIn(tx, id, action, request);
    if (TRANSITIONS[action].stock === undefined) return this.trail.transaction(actor, work, log);
    // An order's warehouse and lines never change after placement: the stock items it will write
    // are known before its turn is taken; the transaction reads the order again.
    const order = await bounded(
      this.models.orders.findById(new ObjectId(id), { warehouse: 1, lines: 1 }).lean<StoredOrder>().exec(),
      actor.deadline,
    );
    if (order === null) throw notFound(id);
    return this.stock.transaction(
      order.lines.map((line) => ({ sku: line.sku, warehouse: order.warehouse })),
      actor,
      work,
      log,
    );
  }

  private async actIn(tx: Tx, id: string, action: OrderAction, request: ActionRequest): Promise<StoredDocument> {
    const { session } = tx;
    const order = await this.models.orders.findById(new ObjectId(id)).session(session).lean<StoredOrder>().exec();
    if (order === null) throw notFound(id);
    if (request.expectedVersion !== undefined && order.version !== request.expectedVersion) {
      throw new AppError(412, 'precondition-failed', 'Precondition Failed', {
        detail: `The order ${id} changed since version ${request.expectedVersion}; read it again and decide again.`,
      });
    }
    const transition = transitionFor(action, id, order.status);
    const now = new Date();
    const entry = { status: transition.to, at: now, ...(request.note !== undefined && { note: request.note }) };
    const updated = await this.models.orders
      .findOneAndUpdate(
        { _id: order._id, status: order.status, version: order.version },
        { $set: { status: transition.to, updatedAt: now }, $push: { history: entry }, $inc: { version: 1 } },
        { session, returnDocument: 'after' },
      )
      .lean<StoredDocument>()
      .exec();
    // Within the transaction's snapshot the order is as read; a concurrent change surfaces as a
    // write conflict, and the retry reads the new status. This is only a safety net.
    if (updated === null) {
      throw new AppError(409, 'concurrent-modification', 'Conflict', {
        detail: `The order ${id} changed while this action was applied; retry.`,
      });
    }
    tx.record(action, Order.collection, updated);
    if (transition.stock !== undefined) {
      for (const line of order.lines) {
        const item = { sku: line.sku, warehouse: order.warehouse };
        const changed = await this.stock.apply(session, item, transition.stock, line.quantity, now);
        if (changed === null) {
          // Placement reserved these units and only this workflow releases them: the data is damaged.
          throw new Error(
            `order ${id}: stock of ${line.sku} in ${order.warehouse} holds fewer than ${line.quantity} reserved units; nothing was changed`,
          );
        }
        tx.record(action, Stock.collection, changed);
      }
    }
    return updated;
  }

  /**
   * Reserves every line, or finds every short one. After the first short line nothing more is
   * written (the transaction will abort): one read finds the other short ones.
   */
  private async reserve(tx: Tx, placement: OrderPlacement, now: Date): Promise<Shortage[]> {
    const { warehouse, lines } = placement;
    for (const [index, line] of lines.entries()) {
      const reserved = await this.stock.apply(tx.session, { sku: line.sku, warehouse }, RESERVE, line.quantity, now);
      if (reserved !== null) {
        tx.record('place', Stock.collection, reserved);
        continue;
      }
      const rest = lines.slice(index);
      const available = await this.stock.available(
        tx.session,
        warehouse,
        rest.map((l) => l.sku),
      );
      return rest
        .map((l) => ({ sku: l.sku, warehouse, requested: l.quantity, available: available.get(l.sku) ?? 0 }))
        .filter((shortage) => shortage.available < shortage.requested);
    }
    return [];
  }

  /**
   * Counts the order in the customer's stats: one more order, the latest order time, and the
   * subtotal added to the entry of its currency in stats.spent, or a new entry for a currency
   * the customer has not bought in before. Returns the customer's id and new version.
   */
  private async countPurchase(
    session: ClientSession,
    customerId: string,
    subtotal: { amount: number; currency: string },
    now: Date,
  ): Promise<Written> {
    const _id = new ObjectId(customerId);
    const always = { $max: { 'stats.lastOrderAt': now }, $set: { updatedAt: now } };
    const returning = { session, returnDocument: 'after', projection: { version: 1 } } as const;
    // Only while the running total stays an amount the model can hold.
    const added = await this.models.customers
      .findOneAndUpdate(
        {
          _id,
          'stats.spent': {
            $elemMatch: { currency: subtotal.currency, amount: { $lte: MAX_AMOUNT - subtotal.amount } },
          },
        },
        { ...always, $inc: { 'stats.orderCount': 1, 'stats.spent.$.amount': subtotal.amount, version: 1 } },
        returning,
      )
      .lean<Written>()
      .exec();
    if (added !== null) return added;
    const pushed = await this.models.customers
      .findOneAndUpdate(
        { _id, 'stats.spent.currency': { $ne: subtotal.currency } },
        { ...always, $inc: { 'stats.orderCount': 1, version: 1 }, $push: { 'stats.spent': subtotal } },
        returning,
      )
      .lean<Written>()
      .exec();
    if (pushed !== null) return pushed;
    if ((await this.models.customers.exists({ _id }).session(session)) !== null) {
      throw new AppError(409, 'amount-too-large', 'Amount Too Large', {
        detail: `The customer's total spent in ${subtotal.currency} would pass the largest amount the service holds (${MAX_AMOUNT}).`,
      });
    }
    // The customer was found at the start of this transaction, whose snapshot still has them (a
    // deletion since would be a write conflict, retried): a safety net.
    throw unknownCustomer(customerId);
  }
}
