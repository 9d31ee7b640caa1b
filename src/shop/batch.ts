// Batches: document writes applied in one unit of work, in order, each through the same flow as
// its single route (src/shop/documents.ts), so a later operation sees the earlier ones and each
// records its own change. The first failure aborts them all and names its operation.

import { failedOperation, type BatchOperation } from '../domain/batch.ts';
import { AppError } from '../errors.ts';
import { BulkInsertFailure, type StoredDocument } from '../data/documents.ts';
import type { Tx, UnitOfWork, WriteContext } from '../data/unit-of-work.ts';
import { onlyInserted, type DocumentOperations } from './documents.ts';

export interface BatchOutcome {
  /** deleted: the document is gone (`document` is its last version); archived: kept, changed. */
  action: 'inserted' | 'replaced' | 'patched' | 'deleted' | 'archived';
  document: StoredDocument;
}

type Insert = Extract<BatchOperation, { op: 'insert' }>;

/** The inserts into one collection that follow each other from `start` on (none if it is no insert). */
function insertRun(operations: readonly BatchOperation[], start: number): Insert[] {
  const run: Insert[] = [];
  const first = operations[start];
  for (const operation of operations.slice(start)) {
    if (operation.op !== 'insert' || operation.collection !== first?.collection) break;
    run.push(operation);
  }
  return run;
}

export class BatchOperations {
  constructor(
    private readonly work: UnitOfWork,
    private readonly documents: DocumentOperations,
  ) {}

  async apply(operations: readonly BatchOperation[], context: WriteContext): Promise<BatchOutcome[]> {
    return this.work.run(context, async (tx) => {
      const outcomes: BatchOutcome[] = [];
      for (let index = 0; index < operations.length;) {
        // A run of inserts into one collection is one insertMany: one round trip, not one each.
        const run = insertRun(operations, index);
        if (run.length > 1) {
          for (const document of await this.insertRun(tx, operations, index, run))
            outcomes.push({ action: 'inserted', document });
          index += run.length;
          continue;
        }
        const operation = operations[index] as BatchOperation;
        try {
          outcomes.push(await this.applyOne(tx, operation));
        } catch (error) {
          // Transient errors and outages pass unchanged: the unit of work retries or answers 503.
          throw error instanceof AppError ? failedOperation(error, index, operation) : error;
        }
        index++;
      }
      return outcomes;
    });
  }

  private async insertRun(
    tx: Tx,
    operations: readonly BatchOperation[],
    start: number,
    run: readonly Insert[],
  ): Promise<StoredDocument[]> {
    const collection = run[0]?.collection;
    if (collection === undefined) return [];
    try {
      return await this.documents.insertIn(
        tx,
        collection,
        run.map((insert) => insert.document),
      );
    } catch (error) {
      if (!(error instanceof BulkInsertFailure)) throw error;
      const failed = start + error.index;
      const operation = operations[failed];
      throw error.problem instanceof AppError && operation !== undefined
        ? failedOperation(error.problem, failed, operation)
        : error.problem;
    }
  }

  private async applyOne(tx: Tx, operation: BatchOperation): Promise<BatchOutcome> {
    switch (operation.op) {
      case 'insert':
        return {
          action: 'inserted',
          document: await onlyInserted(this.documents.insertIn(tx, operation.collection, [operation.document])),
        };
      case 'replace':
        return { action: 'replaced', document: await this.documents.replaceIn(tx, operation) };
      case 'patch':
        return { action: 'patched', document: await this.documents.patchIn(tx, operation) };
      case 'delete':
        return this.documents.removeIn(tx, operation);
    }
  }
}
