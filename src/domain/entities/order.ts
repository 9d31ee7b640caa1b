// Orders: placed by the order workflow (prices come from the catalog, never from the client),
// then moved through their status machine. Read and listed here; never replaced or deleted
// through the API. An order brought in from another system (npm run import) keeps that system's
// order number, unique among the orders that have one: re-importing it finds it again.

import { Type } from 'typebox';
import { defineEntity, RANGE, pageIndex } from '../entity.ts';
import { DateTime, Money, ObjectIdString, Quantity, Sku, WarehouseCode } from '../types.ts';

export const ORDER_STATUSES = ['placed', 'paid', 'shipped', 'delivered', 'cancelled'] as const;
const OrderStatus = () => Type.Enum(ORDER_STATUSES);

export const OrderLine = Type.Object(
  {
    sku: Sku(),
    name: Type.String({ maxLength: 200, description: 'Product name when ordered.' }),
    quantity: Type.Integer({ minimum: 1, maximum: 10_000 }),
    unitPrice: Money('Price of one unit when ordered.'),
    lineTotal: Money('quantity x unitPrice.'),
  },
  { additionalProperties: false },
);

export const Order = defineEntity({
  collection: 'orders',
  singular: 'order',
  schemaName: 'Order',
  description: 'An order and its status history.',
  writable: Type.Object({}, { additionalProperties: false }),
  server: Type.Object(
    {
      customerId: ObjectIdString({ description: 'The customer who ordered.' }),
      warehouse: WarehouseCode(),
      lines: Type.Array(OrderLine, { minItems: 1, maxItems: 100 }),
      totals: Type.Object(
        {
          itemCount: Quantity('Units over all lines.'),
          subtotal: Money('Sum of the line totals.'),
        },
        { additionalProperties: false },
      ),
      status: OrderStatus(),
      history: Type.Array(
        Type.Object(
          { status: OrderStatus(), at: DateTime(), note: Type.Optional(Type.String({ maxLength: 500 })) },
          { additionalProperties: false },
        ),
        { description: 'Every status the order went through, oldest first.' },
      ),
      externalNumber: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 64,
          pattern: '^[A-Za-z0-9][A-Za-z0-9._/#-]*$',
          description: 'The order number of the system it was imported from (npm run import); unique when present.',
          examples: ['WEB-100231'],
        }),
      ),
    },
    { additionalProperties: false },
  ),
  immutable: [],
  filters: {
    customerId: ['eq'],
    status: ['eq', 'ne', 'in'],
    warehouse: ['eq'],
    'lines.sku': ['eq'],
    externalNumber: ['eq'],
    'totals.subtotal.amount': [...RANGE],
    createdAt: [...RANGE],
    updatedAt: [...RANGE],
  },
  sorts: ['createdAt', 'updatedAt', 'totals.subtotal.amount'],
  defaultSort: 'createdAt',
  textSearch: false,
  indexes: [
    pageIndex('customer_created', ['customerId', 'createdAt'], "a customer's order history, newest first"),
    pageIndex('status_created', ['status', 'createdAt'], 'work queues: paid orders to ship, oldest first'),
    {
      name: 'line_sku',
      key: { 'lines.sku': 1 },
      serves: 'orders containing a SKU (and whether a product may be deleted)',
    },
    {
      name: 'external_number_unique',
      key: { externalNumber: 1 },
      unique: true,
      partialFilterExpression: { externalNumber: { $exists: true } },
      serves: 'one order per imported order number; re-imports find theirs (partial: orders placed here have none)',
    },
    pageIndex('created', 'createdAt', 'the default listing'),
    pageIndex('updated', 'updatedAt', 'sync consumers: what changed since'),
    pageIndex('subtotal', 'totals.subtotal.amount', 'largest orders first'),
  ],
  operations: {
    create: {
      workflow:
        'placed through the order workflow (src/domain/orders.ts): stock reserved, lines priced from the catalog',
    },
    replace: false,
    patch: false,
    delete: false,
  },
  serverDefaults: {},
  example: {},
  serverExample: {
    customerId: '6650f0c2a1b2c3d4e5f60718',
    warehouse: 'AMS-1',
    lines: [
      {
        sku: 'TSHIRT-RED-M',
        name: 'Organic cotton T-shirt, red, M',
        quantity: 2,
        unitPrice: { amount: 2499, currency: 'EUR' },
        lineTotal: { amount: 4998, currency: 'EUR' },
      },
    ],
    totals: { itemCount: 2, subtotal: { amount: 4998, currency: 'EUR' } },
    status: 'placed',
    history: [{ status: 'placed', at: '2026-11-25T09:30:00.000Z' }],
  },
});
