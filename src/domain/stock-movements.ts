// How units move between a stock item's counters (available, reserved, shipped) and between
// warehouses. Every movement is a set of per-unit deltas whose sum is zero, except restocking,
// which is the only way units enter; so available + reserved + shipped is what was ever stocked.

import { Type, type Static } from 'typebox';
import { AppError } from '../errors.ts';
import { limitExceeded } from './limits.ts';
import { Sku, WarehouseCode } from './types.ts';

export type StockCounter = 'available' | 'reserved' | 'shipped';

/** Change of each counter per unit moved. */
export type StockDelta = Partial<Record<StockCounter, number>>;

/** An order reserves shelf units: they can no longer be sold to anyone else. */
export const RESERVE: StockDelta = { available: -1, reserved: 1 };
/** A cancelled order puts its reserved units back on the shelf. */
export const RELEASE: StockDelta = { reserved: -1, available: 1 };
/** A shipped order's reserved units leave the warehouse. */
export const SHIP: StockDelta = { reserved: -1, shipped: 1 };
/** Units arriving, or moved in from another warehouse. */
export const RECEIVE: StockDelta = { available: 1 };
/** Units moved out to another warehouse. */
export const SEND: StockDelta = { available: -1 };

/** Largest quantity of one restock or move: the stock counters' own maximum. */
export const MAX_MOVE_QUANTITY = 1_000_000_000;

export interface ScaledDelta {
  /** What each counter changes by. */
  inc: Partial<Record<StockCounter, number>>;
  /** The least each counter must hold beforehand so that none goes below zero. */
  requires: Partial<Record<StockCounter, number>>;
}

/** A per-unit delta applied to `quantity` units, with what it needs to stay non-negative. */
export function scale(delta: StockDelta, quantity: number): ScaledDelta {
  const inc: ScaledDelta['inc'] = {};
  const requires: ScaledDelta['requires'] = {};
  for (const [counter, perUnit] of Object.entries(delta) as [StockCounter, number][]) {
    inc[counter] = perUnit * quantity;
    if (perUnit < 0) requires[counter] = -perUnit * quantity;
  }
  return { inc, requires };
}

export interface Shortage {
  sku: string;
  warehouse: string;
  requested: number;
  /** Units available when the request was refused (0 when the warehouse has no such item). */
  available: number;
}

/** The lines a warehouse holds fewer available units of than they ask for, as read in `available` (by SKU). */
export function shortagesOf(
  warehouse: string,
  lines: readonly { sku: string; quantity: number }[],
  available: ReadonlyMap<string, number>,
): Shortage[] {
  return lines
    .map((line) => ({ sku: line.sku, warehouse, requested: line.quantity, available: available.get(line.sku) ?? 0 }))
    .filter((shortage) => shortage.available < shortage.requested);
}

/** The 409 of a request that asked for more than is available; lists every short SKU. */
export function insufficientStock(shortages: Shortage[]): AppError {
  const listed = shortages.map((s) => `${s.sku} (requested ${s.requested}, available ${s.available})`).join(', ');
  return new AppError(409, 'insufficient-stock', 'Insufficient Stock', {
    detail:
      `Not enough stock in ${shortages[0]?.warehouse ?? 'the warehouse'}: ${listed}. Nothing was ` +
      `reserved or moved.`,
    extensions: { shortages },
  });
}

export const Restock = Type.Object(
  {
    sku: Sku(),
    warehouse: WarehouseCode(),
    quantity: Type.Integer({
      minimum: 1,
      maximum: MAX_MOVE_QUANTITY,
      description: 'Units arriving; added to available.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Units arriving in a warehouse. The product must exist; the stock item is created when the warehouse has none.',
    examples: [{ sku: 'TSHIRT-RED-M', warehouse: 'AMS-1', quantity: 48 }],
  },
);
export type Restock = Static<typeof Restock>;

export const StockMove = Type.Object(
  {
    sku: Sku(),
    from: WarehouseCode(),
    to: WarehouseCode(),
    quantity: Type.Integer({ minimum: 1, maximum: MAX_MOVE_QUANTITY, description: 'Available units to move.' }),
  },
  {
    additionalProperties: false,
    description:
      'Available units moving from one warehouse to another, atomically. The destination stock item is created ' +
      'when missing.',
    examples: [{ sku: 'TSHIRT-RED-M', from: 'AMS-1', to: 'BER-2', quantity: 10 }],
  },
);
export type StockMove = Static<typeof StockMove>;

/** A move must go somewhere else: the same warehouse on both ends is a client mistake. */
export function checkMove(move: StockMove): void {
  if (move.from === move.to) {
    throw AppError.validation([{ in: 'body', pointer: '/to', message: 'must differ from from' }]);
  }
}

/** The 409 of a movement that would take a counter of a stock item past its declared maximum. */
export function stockLimitExceeded(
  item: { id: string; sku: string; warehouse: string },
  counter: StockCounter,
  holds: number,
  by: number,
  maximum: number,
): AppError {
  return limitExceeded(
    { field: counter, limit: maximum, value: holds + by, documentId: item.id },
    `The stock item of ${item.sku} in ${item.warehouse} holds ${holds} ${counter} units; ${by} more would pass ` +
      `the limit of ${maximum}. Nothing was changed.`,
  );
}

export function unknownProduct(sku: string): AppError {
  return new AppError(409, 'unknown-product', 'Unknown Product', {
    detail: `No product with SKU ${sku}; create it in the catalog before stocking it.`,
    extensions: { sku },
  });
}
