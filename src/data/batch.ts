// Runs a batch of document writes in one transaction of the audit trail: each operation through
// its collection's repository in that transaction, in order, so a later operation sees the
// earlier ones, and each records its own audit entry. The first failure aborts the transaction
// (entries included) and names its operation.

import type { FastifyBaseLogger } from 'fastify';
import type { BatchOperation } from '../domain/batch.ts';
import { DELETION_RULES } from '../domain/deletion.ts';
import { AppError, type FieldError } from '../errors.ts';
import type { Actor } from './audit.ts';
import type { Repositories } from './repositories.ts';
import { BulkInsertFailure, type StoredDocument } from './documents.ts';

export interface BatchOutcome {
  /** deleted: the document is gone (`document` is its last version); archived: kept, changed. */
  action: 'inserted' | 'replaced' | 'patched' | 'deleted' | 'archived';
  document: StoredDocument;
}

/** Where in the request an operation's own field errors point: its document, or its patch. */
const bodyOf = (operation: BatchOperation): string => (operation.op === 'patch' ? 'patch' : 'document');

/**
 * The problem of a failed operation, as its single route would answer it, plus which operation
 * failed; field errors point into the batch request.
 */
export function failedOperation(error: AppError, index: number, operation: BatchOperation): AppError {
  const extensions: Record<string, unknown> = {
    ...error.extensions,
    failedOperation: { index, op: operation.op, collection: operation.collection },
  };
  if (Array.isArray(error.extensions.errors)) {
    const prefix = `/operations/${index}/${bodyOf(operation)}`;
    extensions.errors = (error.extensions.errors as FieldError[]).map((e) => ({
      ...e,
      pointer: `${prefix}${e.pointer}`,
    }));
  }
  return new AppError(error.status, error.code, error.title, {
    detail: `Operation ${index} (${operation.op} in ${operation.collection}) failed, so none was applied: ${error.message}`,
    extensions,
    headers: error.headers,
    cause: error,
  });
}

/** The inserts into one collection that follow each other from `start` on (none if it is no insert). */
function insertRun(operations: readonly BatchOperation[], start: number): Extract<BatchOperation, { op: 'insert' }>[] {
  const run: Extract<BatchOperation, { op: 'insert' }>[] = [];
  const first = operations[start]!;
  for (let index = start; index < operations.length; index++) {
    const operation = operations[index]!;
    if (operation.op !== 'insert' || operation.collection !== first.collection) break;
    run.push(operation);
  }
  return run;
}

export async function runBatch(
  repositories: Repositories,
  operations: readonly BatchOperation[],
  actor: Actor,
  log: FastifyBaseLogger,
): Promise<BatchOutcome[]> {
  return repositories.audit.transaction(
    actor,
    async (tx) => {
      const outcomes: BatchOutcome[] = [];
      for (let index = 0; index < operations.length; index++) {
        const operation = operations[index]!;
        const repository = repositories.documents.get(operation.collection)!;
        // A run of inserts into one collection is one insertMany: one round trip, not one each.
        const run = insertRun(operations, index);
        if (run.length > 1) {
          try {
            const created = await repository.createManyIn(
              tx,
              run.map((insert) => insert.document),
            );
            for (const document of created) outcomes.push({ action: 'inserted', document });
          } catch (error) {
            if (!(error instanceof BulkInsertFailure)) throw error;
            const failed = index + error.index;
            throw error.problem instanceof AppError
              ? failedOperation(error.problem, failed, operations[failed]!)
              : error.problem;
          }
          index += run.length - 1;
          continue;
        }
        try {
          switch (operation.op) {
            case 'insert':
              outcomes.push({ action: 'inserted', document: await repository.createIn(tx, operation.document) });
              break;
            case 'replace':
              outcomes.push({
                action: 'replaced',
                document: await repository.replaceIn(tx, operation.id, operation.document, operation.expectedVersion),
              });
              break;
            case 'patch':
              outcomes.push({
                action: 'patched',
                document: await repository.patchIn(tx, operation.id, operation.patch, operation.expectedVersion),
              });
              break;
            case 'delete': {
              const rule = DELETION_RULES[operation.collection]!;
              const removal = await repository.removalIn(
                tx,
                operation.id,
                rule,
                repositories.referencesIn(tx.session),
                operation.expectedVersion,
              );
              outcomes.push(removal);
              break;
            }
          }
        } catch (error) {
          // Transient errors and outages pass unchanged: withTransaction retries or answers 503.
          throw error instanceof AppError ? failedOperation(error, index, operation) : error;
        }
      }
      return outcomes;
    },
    log,
  );
}
