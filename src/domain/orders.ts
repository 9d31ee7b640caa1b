// The order workflow's rules, as data and pure functions: what a placement asks for, how it is
// priced from the catalog (never from the client), and the status machine (which action is
// allowed from which status, and what it does to the reserved stock). src/shop/orders.ts applies
// them, one unit of work per request.

import { Type, type Static } from 'typebox';
import { AppError } from '../errors.ts';
import { ORDER_STATUSES, type OrderLine } from './entities/order.ts';
import { RELEASE, SHIP, type StockDelta } from './stock-movements.ts';
import { MAX_AMOUNT, ObjectIdString, Sku, WarehouseCode } from './types.ts';

export type OrderStatus = (typeof ORDER_STATUSES)[number];

export const ORDER_ACTIONS = ['pay', 'ship', 'deliver', 'cancel'] as const;
export type OrderAction = (typeof ORDER_ACTIONS)[number];

export interface Transition {
  /** Statuses the action is allowed from. */
  from: readonly OrderStatus[];
  to: OrderStatus;
  /** What happens to each line's reserved units in the order's warehouse, per unit. */
  stock?: StockDelta;
  /** One sentence for the API description. */
  summary: string;
}

export const TRANSITIONS: Readonly<Record<OrderAction, Transition>> = {
  pay: { from: ['placed'], to: 'paid', summary: 'Record that the order was paid.' },
  ship: {
    from: ['paid'],
    to: 'shipped',
    stock: SHIP,
    summary: 'Ship the order: its reserved units leave the warehouse (reserved to shipped).',
  },
  deliver: { from: ['shipped'], to: 'delivered', summary: 'Record that the order reached the customer.' },
  cancel: {
    from: ['placed', 'paid'],
    to: 'cancelled',
    stock: RELEASE,
    summary: 'Cancel the order: its reserved units go back on the shelf (reserved to available).',
  },
};

/** What can still be done with an order in this status. */
export function actionsFrom(status: OrderStatus): OrderAction[] {
  return ORDER_ACTIONS.filter((action) => TRANSITIONS[action].from.includes(status));
}

/** The transition an action makes from the order's current status; a 409 when not allowed. */
export function transitionFor(action: OrderAction, orderId: string, status: OrderStatus): Transition {
  const transition = TRANSITIONS[action];
  if (transition.from.includes(status)) return transition;
  const possible = actionsFrom(status);
  throw new AppError(409, 'invalid-transition', 'Invalid Transition', {
    detail:
      `The order ${orderId} is ${status}; ${action} is allowed only from ${transition.from.join(' or ')}. ` +
      (possible.length > 0 ? `Allowed now: ${possible.join(', ')}.` : 'No action is allowed any more.'),
    extensions: { currentStatus: status, allowedFrom: transition.from, allowedActions: possible },
  });
}

/** If-Match named a version the order is no longer at. */
export const orderChangedSince = (id: string, expectedVersion: number) =>
  AppError.preconditionFailed(
    `The order ${id} changed since version ${expectedVersion}; read it again and decide again.`,
  );

/** The order changed between its read and its write in one transaction: a safety net, retried by the client. */
export const orderChangedMeanwhile = (id: string) =>
  new AppError(409, 'concurrent-modification', 'Conflict', {
    detail: `The order ${id} changed while this action was applied; retry.`,
  });

export const OrderActionRequest = Type.Object(
  {
    note: Type.Optional(
      Type.String({ minLength: 1, maxLength: 500, description: "Kept with the status in the order's history." }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Optional; the request may have no body at all.',
    examples: [{ note: 'Paid by card, ref 7f3a.' }],
  },
);
export type OrderActionRequest = Static<typeof OrderActionRequest>;

export const MAX_ORDER_LINES = 100;

export const OrderPlacement = Type.Object(
  {
    customerId: ObjectIdString({ description: 'The customer who orders; must exist.' }),
    warehouse: WarehouseCode(),
    lines: Type.Array(
      Type.Object(
        {
          sku: Sku(),
          quantity: Type.Integer({ minimum: 1, maximum: 10_000, description: 'Units to order.' }),
        },
        { additionalProperties: false },
      ),
      {
        minItems: 1,
        maxItems: MAX_ORDER_LINES,
        description: 'One line per SKU (a SKU on two lines is refused); prices come from the catalog.',
      },
    ),
  },
  {
    additionalProperties: false,
    description:
      'An order to place: who orders, from which warehouse, which SKUs and how many. No prices: the catalog sets them.',
    examples: [
      { customerId: '6650f0c2a1b2c3d4e5f60718', warehouse: 'AMS-1', lines: [{ sku: 'TSHIRT-RED-M', quantity: 2 }] },
    ],
  },
);
export type OrderPlacement = Static<typeof OrderPlacement>;

/**
 * A SKU on two lines is refused rather than merged: the client sent something it probably did
 * not mean, and merging could silently exceed a line's maximum quantity.
 */
export function checkPlacement(placement: OrderPlacement): void {
  const firstLine = new Map<string, number>();
  const errors = placement.lines.flatMap((line, index) => {
    const first = firstLine.get(line.sku);
    if (first === undefined) {
      firstLine.set(line.sku, index);
      return [];
    }
    return [
      {
        in: 'body',
        pointer: `/lines/${index}/sku`,
        message: `repeats the SKU of line ${first}; put the whole quantity on one line`,
      },
    ];
  });
  if (errors.length > 0) throw AppError.validation(errors);
}

export function unknownCustomer(customerId: string): AppError {
  return new AppError(409, 'unknown-customer', 'Unknown Customer', {
    detail: `No customer with id ${customerId}; create the customer before placing their order.`,
    extensions: { customerId },
  });
}

/** Counting an order would take the customer's total spent in its currency past what the model holds. */
export function customerTotalTooLarge(currency: string): AppError {
  return new AppError(409, 'amount-too-large', 'Amount Too Large', {
    detail:
      `The customer's total spent in ${currency} would pass ` + `the largest amount the service holds (${MAX_AMOUNT}).`,
  });
}

/** What placement needs to know of a product. */
export interface CatalogProduct {
  sku: string;
  name: string;
  price: { amount: number; currency: string };
  status: string;
}

type Line = Static<typeof OrderLine>;

export interface PricedOrder {
  lines: Line[];
  totals: { itemCount: number; subtotal: { amount: number; currency: string } };
}

/**
 * The order's lines priced from the catalog, in the order the client sent them. Refuses (409)
 * when a SKU is not an active product, when the lines are priced in more than one currency, and
 * when an amount would not fit the stored integer.
 */
export function priceOrder(placement: OrderPlacement, products: readonly CatalogProduct[]): PricedOrder {
  const bySku = new Map(products.map((product) => [product.sku, product]));
  const unavailable = placement.lines.flatMap(
    ({ sku }): { sku: string; reason: 'unknown' | 'inactive'; status?: string }[] => {
      const product = bySku.get(sku);
      if (product === undefined) return [{ sku, reason: 'unknown' }];
      return product.status === 'active' ? [] : [{ sku, reason: 'inactive', status: product.status }];
    },
  );
  if (unavailable.length > 0) {
    throw new AppError(409, 'products-unavailable', 'Products Unavailable', {
      detail:
        `Only active products can be ordered: ` +
        `${unavailable.map((u) => `${u.sku} (${u.status ?? u.reason})`).join(', ')}.`,
      extensions: { products: unavailable },
    });
  }

  const priced = placement.lines.flatMap(({ sku, quantity }) => {
    const product = bySku.get(sku);
    return product === undefined ? [] : [{ product, quantity }];
  });
  const currencies = new Set(priced.map(({ product }) => product.price.currency));
  if (currencies.size > 1) {
    throw new AppError(409, 'mixed-currencies', 'Mixed Currencies', {
      detail:
        `An order is priced in one currency; these products are priced in ` +
        `${[...currencies].join(' and ')}. Order them separately.`,
      extensions: { currencies: priced.map(({ product }) => ({ sku: product.sku, currency: product.price.currency })) },
    });
  }
  const [currency] = currencies;
  if (currency === undefined) throw new Error('an order without lines cannot be priced');

  const lines: Line[] = priced.map(({ product, quantity }) => ({
    sku: product.sku,
    name: product.name,
    quantity,
    unitPrice: { amount: product.price.amount, currency },
    lineTotal: { amount: product.price.amount * quantity, currency },
  }));
  const subtotal = lines.reduce((sum, line) => sum + line.lineTotal.amount, 0);
  if (subtotal > MAX_AMOUNT) {
    throw new AppError(409, 'amount-too-large', 'Amount Too Large', {
      detail:
        `The order would total ${subtotal} ${currency}, more than the largest amount an order can hold ` +
        `(${MAX_AMOUNT}); split it.`,
    });
  }
  return {
    lines,
    totals: {
      itemCount: lines.reduce((sum, line) => sum + line.quantity, 0),
      subtotal: { amount: subtotal, currency },
    },
  };
}

/** The fields of a newly placed order (the repository adds the id, version and times). */
export function newOrder(placement: OrderPlacement, priced: PricedOrder, now: Date) {
  return {
    customerId: placement.customerId,
    warehouse: placement.warehouse,
    lines: priced.lines,
    totals: priced.totals,
    status: 'placed' as const,
    history: [{ status: 'placed' as const, at: now }],
  };
}
