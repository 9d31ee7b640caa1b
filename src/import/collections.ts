// What the import knows of each collection it writes: how a record is checked (by the entity
// declarations, exactly as the API checks the body of a create: the input guard's limits, then
// the same schema with its defaults; stock may also carry the counters its source system kept,
// orders are the order entity's fields with the customer named by e-mail), the natural key that
// decides insert or update, and the business fields: what "unchanged" compares and the checksum
// hashes (never ids, versions or times the service keeps).

import { createHash } from 'node:crypto';
import { Type } from 'typebox';
import type { Entity, JsonSchema } from '../domain/entity.ts';
import { Customer, Order, Product, Stock } from '../domain/entities/index.ts';
import { compileValidator } from '../domain/validation.ts';
import type { FieldError } from '../errors.ts';
import { inspectBody } from '../http/plugins/input-guard.ts';
import { writeBodies } from '../http/schemas/documents.ts';

export const COLLECTIONS = ['products', 'customers', 'stock', 'orders'] as const;
export type CollectionName = (typeof COLLECTIONS)[number];

/** Order statuses whose lines hold reserved stock (placed and paid: the ones cancel releases). */
export const OPEN_STATUSES: readonly string[] = ['placed', 'paid'];

export interface ImportSpec {
  collection: CollectionName;
  entity: Entity;
  /** The natural key's fields, as the unique index holds them. */
  keyFields: readonly string[];
  /** The record as it is to be stored (defaults applied), or its field errors. */
  check: (value: unknown) => { document: Record<string, unknown> } | { errors: FieldError[] };
  /** The natural key of a checked document or a stored one, as text (e-mails compared without case). */
  keyOf: (document: Record<string, unknown>) => string;
  /** The fields that make a document what it is, as JSON: ids of references as text, times as ISO strings. */
  business: (document: Record<string, unknown>) => Record<string, unknown>;
}

/** The schema of a create's body (as the batch route compiles it), without its $id and examples. */
function createBody(entity: Entity): JsonSchema {
  const { $id: _id, examples: _examples, ...input } = writeBodies(entity).input;
  return input;
}

/** The input guard first (sizes, depth, member names), then the schema: the order a request meets them. */
function checker(schema: object) {
  const validate = compileValidator(schema, 'record', { applyDefaults: true });
  return (value: unknown): { document: Record<string, unknown> } | { errors: FieldError[] } => {
    const guarded = inspectBody(value).map((e) => ({ ...e, in: 'record' }));
    if (guarded.length > 0) return { errors: guarded };
    const errors = validate(value);
    if (errors.length > 0) return { errors };
    return { document: value as Record<string, unknown> };
  };
}

/** Member by member, recursively, members in name order: one text per content, whatever the order written. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, member: unknown) => {
    if (member === null || typeof member !== 'object' || Array.isArray(member)) return member;
    const sorted: Record<string, unknown> = {};
    for (const name of Object.keys(member).sort()) sorted[name] = (member as Record<string, unknown>)[name];
    return sorted;
  });
}

export const digest = (value: unknown) => createHash('sha256').update(canonical(value)).digest('hex');

/** The named fields of a document as JSON (Dates as ISO strings, ObjectIds as hex). */
function pick(document: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const name of names) if (document[name] !== undefined) picked[name] = document[name];
  return JSON.parse(JSON.stringify(picked)) as Record<string, unknown>;
}

const writableNames = (entity: Entity) => Object.keys(entity.writable.properties);

const products: ImportSpec = {
  collection: 'products',
  entity: Product,
  keyFields: ['sku'],
  check: checker(createBody(Product)),
  keyOf: (document) => String(document.sku),
  business: (document) => pick(document, writableNames(Product)),
};

const customers: ImportSpec = {
  collection: 'customers',
  entity: Customer,
  keyFields: ['email'],
  check: checker(createBody(Customer)),
  // The unique index compares e-mails with the collection's collation (strength 2: without case).
  keyOf: (document) => String(document.email).toLowerCase(),
  // stats are the order workflow's: imported orders count in them, an imported customer never sets them.
  business: (document) => pick(document, writableNames(Customer)),
};

const STOCK_COUNTERS = ['reserved', 'shipped'] as const;

/** A stock item's create body, plus the counters its source kept (each optional, 0 when left out). */
const stockBody = (() => {
  const input = createBody(Stock);
  const server = Stock.server.properties as Record<string, JsonSchema>;
  const counters = Object.fromEntries(STOCK_COUNTERS.map((name) => [name, { ...server[name], default: 0 }]));
  return { ...input, properties: { ...input.properties, ...counters } };
})();

const stock: ImportSpec = {
  collection: 'stock',
  entity: Stock,
  keyFields: ['sku', 'warehouse'],
  check: checker(stockBody),
  keyOf: (document) => `${String(document.sku)}@${String(document.warehouse)}`,
  business: (document) => pick(document, [...writableNames(Stock), ...STOCK_COUNTERS]),
};

/**
 * An order as its source system had it: the order entity's fields, its number there, and the
 * customer by e-mail (ids differ from one system to another). Its status and history are kept.
 */
const OrderRecord = (() => {
  const server = Order.server.properties;
  const { customerId: _customerId, externalNumber, history, ...fields } = server;
  return Type.Object(
    {
      // Required here: the number is what finds the order again (the spread drops Optional's mark).
      externalNumber: Type.Unsafe<string>({ ...externalNumber }),
      customerEmail: Customer.writable.properties.email,
      ...fields,
      history: { ...history, minItems: 1 },
    },
    { additionalProperties: false },
  );
})();

const checkOrderRecord = checker(OrderRecord);

interface Line {
  sku: string;
  quantity: number;
  unitPrice: { amount: number; currency: string };
  lineTotal: { amount: number; currency: string };
}

/** What the workflow would have computed: line totals, the subtotal and unit count, one currency, the history's last status. */
function orderArithmetic(order: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  const at = (pointer: string, message: string) => errors.push({ in: 'record', pointer, message });
  const lines = order.lines as Line[];
  const totals = order.totals as { itemCount: number; subtotal: { amount: number; currency: string } };
  let amount = 0;
  let items = 0;
  for (const [index, line] of lines.entries()) {
    if (line.unitPrice.currency !== totals.subtotal.currency || line.lineTotal.currency !== totals.subtotal.currency)
      at(`/lines/${index}`, `must be in the order's currency ${totals.subtotal.currency}`);
    if (line.lineTotal.amount !== line.quantity * line.unitPrice.amount)
      at(`/lines/${index}/lineTotal/amount`, `must be quantity x unitPrice (${line.quantity * line.unitPrice.amount})`);
    amount += line.lineTotal.amount;
    items += line.quantity;
  }
  if (totals.subtotal.amount !== amount)
    at('/totals/subtotal/amount', `must be the sum of the line totals (${amount})`);
  if (totals.itemCount !== items) at('/totals/itemCount', `must be the units over all lines (${items})`);
  const history = order.history as { status: string }[];
  if (history.at(-1)?.status !== order.status)
    at(`/history/${history.length - 1}/status`, `must be the order's status (${String(order.status)})`);
  return errors;
}

const orders: ImportSpec = {
  collection: 'orders',
  entity: Order,
  keyFields: ['externalNumber'],
  check: (value) => {
    const checked = checkOrderRecord(value);
    if ('errors' in checked) return checked;
    const errors = orderArithmetic(checked.document);
    return errors.length > 0 ? { errors } : checked;
  },
  keyOf: (document) => String(document.externalNumber),
  business: (document) => pick(document, Object.keys(Order.server.properties)),
};

export const SPECS: Readonly<Record<CollectionName, ImportSpec>> = { products, customers, stock, orders };
