// The orders' side of MongoDB: what pricing reads of the catalog, an order's status change, the
// customer's running stats, and the lookups the deletion rules make of orders. The flows that use
// them (placing an order, its status actions) are the shop's (src/shop/orders.ts).

import mongoose, { type ClientSession } from 'mongoose';
import type { References } from '../domain/deletion.ts';
import { customerTotalTooLarge, type CatalogProduct, type OrderAction, type OrderStatus } from '../domain/orders.ts';
import type { DocumentRepository, StoredDocument } from './documents.ts';
import type { Tx } from './unit-of-work.ts';
import { MAX_AMOUNT } from '../domain/types.ts';

const { ObjectId } = mongoose.Types;

export type StoredOrder = StoredDocument & {
  status: OrderStatus;
  warehouse: string;
  lines: { sku: string; quantity: number }[];
};

export interface StatusChange {
  action: OrderAction;
  to: OrderStatus;
  note?: string;
  now: Date;
}

export class OrderRepository {
  constructor(
    readonly orders: DocumentRepository,
    private readonly customers: DocumentRepository,
    private readonly products: DocumentRepository,
    private readonly stock: DocumentRepository,
  ) {}

  /** An order as its status actions read it, in a transaction's session or outside one. */
  async find(id: string, session?: ClientSession): Promise<StoredOrder | null> {
    return (await this.orders.findById(id, session && { session })) as StoredOrder | null;
  }

  async customerExists(customerId: string, session?: ClientSession): Promise<boolean> {
    return this.customers.exists({ _id: new ObjectId(customerId) }, session && { session });
  }

  /** What pricing needs of the products with these SKUs. */
  async catalog(skus: string[], session?: ClientSession): Promise<CatalogProduct[]> {
    const products = await this.products.find(
      { sku: { $in: skus } },
      { projection: { sku: 1, name: 1, price: 1, status: 1 }, ...(session && { session }) },
    );
    return products as unknown as CatalogProduct[];
  }

  /**
   * Moves the order to another status with a history entry, only while it is at the status and
   * version read: of concurrent actions on one order at most one applies. Null when it changed.
   */
  async changeStatus(tx: Tx, order: StoredOrder, { action, to, note, now }: StatusChange): Promise<StoredOrder | null> {
    const entry = { status: to, at: now, ...(note !== undefined && { note }) };
    return (await this.orders.updateIf(
      tx,
      { _id: order._id, status: order.status, version: order.version },
      { $set: { status: to }, $push: { history: entry } },
      { action, now },
    )) as StoredOrder | null;
  }

  /**
   * Counts the order in the customer's stats: one more order, the latest order time, and the
   * subtotal added to the entry of its currency in stats.spent, or a new entry for a currency
   * the customer has not bought in before. False when the customer is gone.
   */
  async countPurchase(
    tx: Tx,
    customerId: string,
    subtotal: { amount: number; currency: string },
    now: Date,
  ): Promise<boolean> {
    const _id = new ObjectId(customerId);
    const options = { action: 'place', now } as const;
    const always = { $max: { 'stats.lastOrderAt': now } };
    // Only while the running total stays an amount the model can hold.
    const added = await this.customers.updateIf(
      tx,
      {
        _id,
        'stats.spent': { $elemMatch: { currency: subtotal.currency, amount: { $lte: MAX_AMOUNT - subtotal.amount } } },
      },
      { ...always, $inc: { 'stats.orderCount': 1, 'stats.spent.$.amount': subtotal.amount } },
      options,
    );
    if (added !== null) return true;
    const pushed = await this.customers.updateIf(
      tx,
      { _id, 'stats.spent.currency': { $ne: subtotal.currency } },
      { ...always, $inc: { 'stats.orderCount': 1 }, $push: { 'stats.spent': subtotal } },
      options,
    );
    if (pushed !== null) return true;
    if (await this.customers.exists({ _id }, { session: tx.session })) throw customerTotalTooLarge(subtotal.currency);
    return false;
  }

  /** The lookups the deletion rules need, read through the deleting transaction's session. */
  referencesIn(session: ClientSession): References {
    return {
      ordersWithSku: (sku) => this.orders.exists({ 'lines.sku': sku }, { session }),
      stockWithSku: (sku) => this.stock.exists({ sku }, { session }),
      ordersOfCustomer: (customerId) => this.orders.exists({ customerId }, { session }),
    };
  }
}
