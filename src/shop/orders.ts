// The order operations: placing an order and moving it through its status machine, each one unit
// of work over the order, the stock items of its lines and, on placement, the customer's running
// stats; those that write stock take their turn per stock item. The rules come from
// src/domain/orders.ts, the MongoDB side from src/data/orders.ts and stock-movements.ts.

import {
  TRANSITIONS,
  checkPlacement,
  newOrder,
  orderChangedMeanwhile,
  orderChangedSince,
  priceOrder,
  transitionFor,
  unknownCustomer,
  type OrderAction,
  type OrderPlacement,
} from '../domain/orders.ts';
import { RESERVE, insufficientStock, shortagesOf, type Shortage } from '../domain/stock-movements.ts';
import { bounded } from '../data/deadline.ts';
import type { StoredDocument } from '../data/documents.ts';
import type { OrderRepository, StoredOrder } from '../data/orders.ts';
import type { StockRepository } from '../data/stock-movements.ts';
import type { Tx, UnitOfWork, WriteContext } from '../data/unit-of-work.ts';
import { onlyInserted } from './documents.ts';
import type { StockOperations } from './stock.ts';

export interface OrderActionRequest {
  id: string;
  action: OrderAction;
  /** Kept with the new status in the order's history. */
  note?: string;
  /** From If-Match: act only on this version of the order (else 412). */
  expectedVersion?: number;
}

export class OrderOperations {
  constructor(
    private readonly work: UnitOfWork,
    private readonly orders: OrderRepository,
    private readonly stock: StockRepository,
    private readonly stockOperations: StockOperations,
  ) {}

  /**
   * Places an order: the customer must exist, every SKU be an active product and in stock in the
   * warehouse. Reserves the stock, prices the lines from the catalog, stores the order and
   * counts it in the customer's stats, all or nothing.
   */
  async place(placement: OrderPlacement, context: WriteContext): Promise<StoredDocument> {
    checkPlacement(placement);
    // A retry of a placement that committed replays its result: the early checks would judge the
    // stock after that placement took it, and refuse it.
    if (context.actor.guard?.committed === undefined)
      await bounded(this.refuseEarly(placement), context.actor.deadline);
    const items = placement.lines.map((line) => ({ sku: line.sku, warehouse: placement.warehouse }));
    return this.stockOperations.inTurn(items, context, async (tx) => {
      const now = new Date();
      // The reservations come first. They are where concurrent placements collide, and a
      // transaction reads from a snapshot taken at its first operation: had it read first, a
      // placement committed in between would turn this one's stock write into a conflict. So a
      // colliding attempt fails at its first step, cheaply, and the retry sees fresh stock.
      const shortages = await this.reserve(tx, placement, now);
      // What is refused is still said in the order of the checks: customer, products, stock.
      if (!(await this.orders.customerExists(placement.customerId, tx.session)))
        throw unknownCustomer(placement.customerId);
      const products = await this.orders.catalog(
        placement.lines.map((line) => line.sku),
        tx.session,
      );
      const priced = priceOrder(placement, products);
      if (shortages.length > 0) throw insufficientStock(shortages);
      const order = await onlyInserted(
        this.orders.orders.insert(tx, [newOrder(placement, priced, now)], { action: 'place', now }),
      );
      // The customer was found in this transaction's snapshot, which still has them (a deletion
      // since would be a write conflict, retried): a safety net.
      if (!(await this.orders.countPurchase(tx, placement.customerId, priced.totals.subtotal, now)))
        throw unknownCustomer(placement.customerId);
      return order;
    });
  }

  /**
   * Moves an order to the status the action leads to, if its current status allows the action,
   * and applies what the transition does to the stock of its lines. The write is conditional on
   * the status (and version) read, so of concurrent actions on one order exactly one applies.
   */
  async act(request: OrderActionRequest, context: WriteContext): Promise<StoredDocument> {
    const work = (tx: Tx) => this.actIn(tx, request);
    if (TRANSITIONS[request.action].stock === undefined) return this.work.run(context, work);
    // An order's warehouse and lines never change after placement: the stock items it will write
    // are known before its turn is taken; the transaction reads the order again.
    const order = await bounded(this.orders.find(request.id), context.actor.deadline);
    if (order === null) throw this.orders.orders.notFound(request.id);
    const items = order.lines.map((line) => ({ sku: line.sku, warehouse: order.warehouse }));
    return this.stockOperations.inTurn(items, context, work);
  }

  private async actIn(tx: Tx, { id, action, note, expectedVersion }: OrderActionRequest): Promise<StoredOrder> {
    const order = await this.orders.find(id, tx.session);
    if (order === null) throw this.orders.orders.notFound(id);
    if (expectedVersion !== undefined && order.version !== expectedVersion)
      throw orderChangedSince(id, expectedVersion);
    const transition = transitionFor(action, id, order.status);
    const now = new Date();
    const updated = await this.orders.changeStatus(tx, order, {
      action,
      to: transition.to,
      ...(note !== undefined && { note }),
      now,
    });
    // Within the transaction's snapshot the order is as read; a concurrent change surfaces as a
    // write conflict, and the retry reads the new status. This is only a safety net.
    if (updated === null) throw orderChangedMeanwhile(id);
    const { stock } = transition;
    if (stock === undefined) return updated;
    for (const line of order.lines) {
      const item = { sku: line.sku, warehouse: order.warehouse };
      const changed = await this.stock.apply(tx, item, stock, line.quantity, { action, now });
      // Placement reserved these units and only this workflow releases them: the data is damaged.
      if (changed === null) {
        throw new Error(
          `order ${id}: stock of ${line.sku} in ${order.warehouse} holds fewer than ${line.quantity} reserved units; ` +
            'nothing was changed',
        );
      }
    }
    return updated;
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
      this.orders.customerExists(placement.customerId),
      this.orders.catalog(skus),
      this.stock.available(undefined, placement.warehouse, skus),
    ]);
    // In the order the transaction checks: customer, products, stock.
    if (!customer) throw unknownCustomer(placement.customerId);
    priceOrder(placement, products);
    const shortages = shortagesOf(placement.warehouse, placement.lines, available);
    if (shortages.length > 0) throw insufficientStock(shortages);
  }

  /**
   * Reserves every line, or finds every short one. After the first short line nothing more is
   * written (the transaction will abort): one read finds the other short ones.
   */
  private async reserve(tx: Tx, { warehouse, lines }: OrderPlacement, now: Date): Promise<Shortage[]> {
    for (const [index, line] of lines.entries()) {
      const item = { sku: line.sku, warehouse };
      if ((await this.stock.apply(tx, item, RESERVE, line.quantity, { action: 'place', now })) !== null) continue;
      const rest = lines.slice(index);
      const available = await this.stock.available(
        tx.session,
        warehouse,
        rest.map((l) => l.sku),
      );
      return shortagesOf(warehouse, rest, available);
    }
    return [];
  }
}
