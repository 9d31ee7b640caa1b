// What a deletion rule is: from the document and what refers to it, delete, archive or refuse.
// Each deletable entity declares its own rule (src/domain/entities/*: a product that orders or
// stock items refer to is archived, a customer with orders and stock with reservations are refused); the refusals
// they share with the API description are built here.

import { AppError } from '../errors.ts';

/** What the rules need to know beyond the document itself. */
export interface References {
  ordersWithSku(sku: string): Promise<boolean>;
  stockWithSku(sku: string): Promise<boolean>;
  ordersOfCustomer(customerId: unknown): Promise<boolean>;
}

export type Deletion = { action: 'delete' } | { action: 'archive'; changes: Record<string, unknown> };

export const customerHasOrders = () =>
  new AppError(409, 'customer-has-orders', 'Conflict', {
    detail: 'A customer with orders cannot be deleted; their orders refer to them.',
  });

export const stockReserved = (reserved: number) =>
  new AppError(409, 'stock-reserved', 'Conflict', {
    detail: `${reserved} units are reserved by open orders; ship or cancel them first.`,
  });
