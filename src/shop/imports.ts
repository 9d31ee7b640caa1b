// Importing existing data (npm run import, src/import/): one batch of decided writes, applied
// through the unit of work like every write of the service, with an audit entry per document
// naming the import as the actor. New products and customers are inserted through the same flow
// as the API's creates (checked against the writable schema, given the server defaults); stock
// items keep the counters their source kept; an order keeps its status and history, is dated by
// its first history entry and counts in its customer's stats as a placed order does. A document
// is replaced only at the version the import read: if it changed since, the batch is refused
// (BatchChanged) and the import reads it again.
//
// Orders are written in one transaction per batch, as each also counts in its customer. Every
// other document stands alone, so their batches are written as the unit of work's runEach: one
// atomic write per document, each carrying its audit stamp, the entries stored right after. A
// batch stopped partway leaves its written documents stamped with its request: the import, reading
// them again, counts them as written and stores their entries (landed).

import { Order } from '../domain/entities/index.ts';
import { serverPart } from '../domain/documents.ts';
import { AppError } from '../errors.ts';
import { BulkInsertFailure, type StoredDocument } from '../data/documents.ts';
import type { Stores } from '../data/stores.ts';
import type { Tx, WriteContext, WriteTx } from '../data/unit-of-work.ts';
import type { DocumentOperations } from './documents.ts';

/**
 * Whether a batch of `collection` is written as one transaction (orders: each also counts in its
 * customer), rather than document by document (runEach).
 */
export const batchIsOneTransaction = (collection: string): boolean => collection === Order.collection;

/** Collections whose new documents are exactly a create's: the API's insert flow applies. */
const CREATED_AS_THE_API_DOES: ReadonlySet<string> = new Set(['products', 'customers']);

export interface ImportBatch {
  collection: string;
  /** New documents: their business fields, checked. */
  inserts: Record<string, unknown>[];
  /** Stored documents to replace with these business fields, only at the version read. */
  updates: { current: StoredDocument; document: Record<string, unknown> }[];
  /** Documents an earlier try of this batch wrote (they carry its stamps): only their entries are owed. */
  landed: StoredDocument[];
}

/** A document the batch read was written by someone else (or a new one's key taken) before the batch applied. */
export class BatchChanged extends Error {
  override name = 'BatchChanged';
}

export class ImportOperations {
  constructor(
    private readonly stores: Stores,
    private readonly documents: DocumentOperations,
  ) {}

  /**
   * Applies a batch: all of it or nothing for orders (one transaction), each document on its own
   * for the others. `attempting` hears each attempt before it writes (the import notes its
   * session, when it has one, to end it after a crash).
   */
  async apply(batch: ImportBatch, context: WriteContext, attempting?: (tx: WriteTx) => Promise<void>): Promise<void> {
    const write = async (tx: WriteTx) => {
      await attempting?.(tx);
      await this.insert(tx, batch);
      for (const { current, document } of batch.updates) await this.replace(tx, batch.collection, current, document);
    };
    if (batchIsOneTransaction(batch.collection)) {
      await this.stores.work.run(context, write);
      return;
    }
    await this.stores.work.storeLanded(batch.collection, batch.landed, context.log);
    if (batch.inserts.length > 0 || batch.updates.length > 0) await this.stores.work.runEach(context, write);
  }

  private async insert(tx: WriteTx, { collection, inserts }: ImportBatch): Promise<void> {
    if (inserts.length === 0) return;
    try {
      if (CREATED_AS_THE_API_DOES.has(collection)) {
        await this.documents.insertIn(tx, collection, inserts);
        return;
      }
      const repository = this.stores.repositoryOf(collection);
      const defaults = repository.entity.serverDefaults;
      if (collection !== Order.collection) {
        await repository.insert(
          tx,
          inserts.map((document) => ({ ...structuredClone(defaults), ...document })),
          { action: 'create' },
        );
        return;
      }
      if (tx.session === undefined) throw new Error('orders are imported in a transaction');
      for (const order of inserts) await this.insertOrder(tx, order);
    } catch (error) {
      // A key taken since the batch read: the import reads again; any other refusal is a bug here.
      if (error instanceof BulkInsertFailure && error.problem instanceof AppError && error.problem.status === 409)
        throw new BatchChanged(`a ${collection} document of this batch was created meanwhile`, { cause: error });
      throw error;
    }
  }

  /** An order as placed at its first history entry: stored, and counted in its customer's stats. */
  private async insertOrder(tx: Tx, order: Record<string, unknown>): Promise<void> {
    const history = order.history as { at: string }[];
    const placedAt = new Date(history[0]?.at ?? Date.now());
    await this.stores.repositoryOf(Order.collection).insert(tx, [order], { action: 'create', now: placedAt });
    const customerId = String(order.customerId);
    const { subtotal } = order.totals as { subtotal: { amount: number; currency: string } };
    if (!(await this.stores.orders.countPurchase(tx, customerId, subtotal, placedAt)))
      throw new BatchChanged(`the customer ${customerId} of an order of this batch was deleted meanwhile`);
  }

  private async replace(
    tx: WriteTx,
    collection: string,
    current: StoredDocument,
    document: Record<string, unknown>,
  ): Promise<void> {
    const repository = this.stores.repositoryOf(collection);
    // What the import does not carry stays as the service keeps it (customers' stats).
    const fields = { ...serverPart(repository.entity, current), ...document };
    const written = await repository.replaceIf(tx, current, fields, { action: 'replace' });
    if (written === null)
      throw new BatchChanged(`the ${collection} document ${current._id.toHexString()} changed meanwhile`);
  }
}
