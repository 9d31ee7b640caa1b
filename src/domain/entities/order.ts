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
  shardKey: {
    key: { _id: 'hashed' },
    why:
      'After its placement an order is only ever addressed by id: GET, and each status action reads it and moves ' +
      'it on with a findOneAndUpdate on {_id, status, version} in a transaction. With the id as key those reads ' +
      "enlist one shard; with the customer as key, every action's transaction would read on every shard. " +
      'ObjectIds grow with time, so hashed: placements spread over all shards instead of the last chunk, one ' +
      'document per value, and no customer with a long history makes a chunk that cannot split. The price is the ' +
      "customer's order history, below.",
    uniqueElsewhere: {
      external_number_unique:
        'Recreated without unique (still partial) when orders are sharded. An imported order number then stays ' +
        'unique through a proxy collection order_external_numbers (_id: the number, orderId), unsharded, inserted ' +
        "in the import batch's transaction, which every import batch already is; only the importer sets " +
        'externalNumber.',
    },
    scatterGather: [
      {
        shapes: ['customerId'],
        cost:
          "A customer's order history (customerId[eq]) and the customer deletion rule's check for orders: every " +
          'shard answers from customer_created, at most a page each, merged by mongos by createdAt; the check ' +
          'stops at the first order. The one customer-facing read this key does not target.',
      },
      {
        shapes: ['lines.sku'],
        cost:
          "Orders containing a SKU (lines.sku[eq]) and the product deletion rule's check: every shard from " +
          'line_sku; the check stops at the first.',
      },
      {
        shapes: ['status', 'lines.sku + status + warehouse'],
        cost:
          "Work queues (status[eq|ne|in]) and the importer's ledger (what open orders hold, by place): every " +
          'shard from status_created; a queue page is merged by createdAt, the ledger summed by mongos.',
      },
      {
        shapes: ['externalNumber'],
        cost:
          'The importer finding orders by their imported number, and externalNumber[eq]: every shard, from its ' +
          'partial index. Once order_external_numbers exists, a number resolves to an id there first.',
      },
      {
        shapes: ['warehouse', 'totals.subtotal.amount', 'createdAt', 'updatedAt'],
        cost:
          'Back-office lists: every shard runs the query on its own index and returns at most a page; mongos ' +
          'merges them in sort order.',
      },
      {
        shapes: ['sort createdAt', 'sort updatedAt', 'sort totals.subtotal.amount'],
        cost: 'Unfiltered lists: the first page of each shard, merged by mongos in the sort order.',
      },
      {
        shapes: ['sort externalNumber'],
        cost:
          "The importer's report: every order in imported-number order, one stream merged from all shards; an " +
          "operator's reconciliation, not a request.",
      },
    ],
  },
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
