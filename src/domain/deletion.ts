// What deleting a document means for each collection. A product that orders refer to is
// archived (order history keeps its meaning); a customer with orders, stock with reservations
// and orders themselves are never deleted.

import { AppError } from '../errors.ts';

/** What the rules need to know beyond the document itself. */
export interface References {
  ordersWithSku(sku: string): Promise<boolean>;
  ordersOfCustomer(customerId: unknown): Promise<boolean>;
}

export type Deletion = { action: 'delete' } | { action: 'archive'; changes: Record<string, unknown> };

export type DeletionRule = (document: Record<string, any>, references: References) => Promise<Deletion>;

export const customerHasOrders = () =>
  new AppError(409, 'customer-has-orders', 'Conflict', {
    detail: 'A customer with orders cannot be deleted; their orders refer to them.',
  });

export const stockReserved = (reserved: number) =>
  new AppError(409, 'stock-reserved', 'Conflict', {
    detail: `${reserved} units are reserved by open orders; ship or cancel them first.`,
  });

export const DELETION_RULES: Record<string, DeletionRule> = {
  products: async (product, references) =>
    (await references.ordersWithSku(product.sku))
      ? { action: 'archive', changes: { status: 'archived' } }
      : { action: 'delete' },

  customers: async (customer, references) => {
    if (customer.stats?.orderCount > 0 || (await references.ordersOfCustomer(customer._id))) throw customerHasOrders();
    return { action: 'delete' };
  },

  stock: async (item) => {
    if (item.reserved > 0) throw stockReserved(item.reserved);
    return { action: 'delete' };
  },
};
