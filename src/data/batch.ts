// Runs a batch of document writes in one transaction (withTransaction): each operation through
// its collection's repository with the transaction's session, in order, so a later operation
// sees the earlier ones. The first failure aborts the transaction and names its operation.

import type { Connection } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import type { BatchOperation } from '../domain/batch.ts';
import { DELETION_RULES } from '../domain/deletion.ts';
import { AppError, type FieldError } from '../errors.ts';
import type { Repositories } from './repositories.ts';
import type { StoredDocument } from './documents.ts';
import { withTransaction } from './transactions.ts';

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
  const extensions: Record<string, unknown> = { ...error.extensions, failedOperation: { index, op: operation.op, collection: operation.collection } };
  if (Array.isArray(error.extensions.errors)) {
    const prefix = `/operations/${index}/${bodyOf(operation)}`;
    extensions.errors = (error.extensions.errors as FieldError[]).map((e) => ({ ...e, pointer: `${prefix}${e.pointer}` }));
  }
  return new AppError(error.status, error.code, error.title, {
    detail: `Operation ${index} (${operation.op} in ${operation.collection}) failed, so none was applied: ${error.message}`,
    extensions,
    headers: error.headers,
    cause: error,
  });
}

export async function runBatch(
  connection: Connection,
  repositories: Repositories,
  operations: readonly BatchOperation[],
  log: FastifyBaseLogger,
): Promise<BatchOutcome[]> {
  return withTransaction(
    connection,
    async (session) => {
      const outcomes: BatchOutcome[] = [];
      for (const [index, operation] of operations.entries()) {
        const repository = repositories.documents.get(operation.collection)!;
        try {
          switch (operation.op) {
            case 'insert':
              outcomes.push({ action: 'inserted', document: await repository.create(operation.document, session) });
              break;
            case 'replace':
              outcomes.push({ action: 'replaced', document: await repository.replace(operation.id, operation.document, operation.expectedVersion, session) });
              break;
            case 'patch':
              outcomes.push({ action: 'patched', document: await repository.patch(operation.id, operation.patch, operation.expectedVersion, session) });
              break;
            case 'delete': {
              const rule = DELETION_RULES[operation.collection]!;
              const removal = await repository.removal(operation.id, rule, repositories.referencesIn(session), operation.expectedVersion, session);
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
