// The stock operations: restocking (units arrive; the item is created when the warehouse has none)
// and moving available units between warehouses, each one unit of work over the items it writes.
// Every unit of work that writes stock items, the orders' too, takes its turn per item here.

import type { Restock, StockMove } from '../domain/stock-movements.ts';
import { SEND, checkMove, insufficientStock, shortagesOf, unknownProduct } from '../domain/stock-movements.ts';
import type { DocumentRepository, StoredDocument } from '../data/documents.ts';
import type { Restocked, StockKey, StockRepository } from '../data/stock-movements.ts';
import { DEFAULT_TRANSACTION_OPTIONS, type TransactionOptions } from '../data/transactions.ts';
import type { Tx, UnitOfWork, WriteContext } from '../data/unit-of-work.ts';
import { Turns } from './turns.ts';

export interface Moved {
  from: StoredDocument;
  to: StoredDocument;
}

/**
 * Taking turns, an attempt fails only to a write of the same item from another instance, which
 * commits meanwhile: cheap (stock writes come first) and soon over. But another instance sends a
 * steady stream of such writes while a hot item sells, and the attempt that backs off can lose
 * to each of them in turn. So the time budget bounds these retries (the backoff's 250 ms cap
 * allows about 40 attempts in it), and the attempt count is only a backstop.
 */
export const STOCK_TRANSACTION: TransactionOptions = { ...DEFAULT_TRANSACTION_OPTIONS, maxAttempts: 100 };

export class StockOperations {
  private readonly turns = new Turns('stock item', STOCK_TRANSACTION);

  constructor(
    private readonly work: UnitOfWork,
    private readonly stock: StockRepository,
    private readonly products: DocumentRepository,
  ) {}

  /** A unit of work that writes these stock items, in turn with this process's others writing any of them. */
  async inTurn<T>(items: readonly StockKey[], context: WriteContext, work: (tx: Tx) => Promise<T>): Promise<T> {
    const keys = items.map((item) => `${item.warehouse}/${item.sku}`);
    return this.turns.take(keys, context.actor.deadline, () => this.work.run(context, work, STOCK_TRANSACTION));
  }

  /** Units arriving in a warehouse, for a product of the catalog. */
  async restock(request: Restock, context: WriteContext): Promise<Restocked> {
    return this.inTurn([request], context, async (tx) => {
      if (!(await this.products.exists({ sku: request.sku }, { session: tx.session })))
        throw unknownProduct(request.sku);
      return this.stock.receive(tx, request, request.quantity, { action: 'restock', now: new Date() });
    });
  }

  /** Available units from one warehouse to another: both changes or neither. */
  async move(request: StockMove, context: WriteContext): Promise<Moved> {
    checkMove(request);
    const { sku, quantity } = request;
    const from = { sku, warehouse: request.from };
    const to = { sku, warehouse: request.to };
    return this.inTurn([from, to], context, async (tx) => {
      const options = { action: 'move', now: new Date() } as const;
      const sent = await this.stock.apply(tx, from, SEND, quantity, options);
      if (sent === null) {
        const available = await this.stock.available(tx.session, from.warehouse, [sku]);
        throw insufficientStock(shortagesOf(from.warehouse, [{ sku, quantity }], available));
      }
      const { item: received } = await this.stock.receive(tx, to, quantity, options);
      return { from: sent, to: received };
    });
  }
}
