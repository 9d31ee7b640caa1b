// Batches: several document writes that succeed or fail together. What a batch may hold is
// derived from the entity declarations, so a batch can do no more than the single routes can.

import { AppError, type FieldError } from '../errors.ts';
import { documentWrites, type Entity } from './entity.ts';
import { ENTITIES } from './entities/index.ts';
import type { Json } from './merge-patch.ts';

/**
 * Most operations in one batch. Bounded so that one transaction stays well within MongoDB's
 * transaction time limit and its locks are held briefly; larger imports take several batches.
 */
export const BATCH_MAX_OPERATIONS = 100;

export const BATCH_OPS = ['insert', 'replace', 'patch', 'delete'] as const;
export type BatchOp = (typeof BATCH_OPS)[number];

export type BatchOperation =
  | { op: 'insert'; collection: string; document: Record<string, unknown> }
  | { op: 'replace'; collection: string; id: string; document: Record<string, unknown>; expectedVersion?: number }
  | { op: 'patch'; collection: string; id: string; patch: Record<string, Json>; expectedVersion?: number }
  | { op: 'delete'; collection: string; id: string; expectedVersion?: number };

/** The batch operations an entity's declaration allows (a workflow's create is not one). */
export function batchOpsOf(entity: Entity): BatchOp[] {
  const allowed = documentWrites(entity);
  return [
    ...(allowed.create ? (['insert'] as const) : []),
    ...(allowed.replace ? (['replace'] as const) : []),
    ...(allowed.patch ? (['patch'] as const) : []),
    ...(allowed.delete ? (['delete'] as const) : []),
  ];
}

/** Collections a batch may write, with the operations each allows. */
export const BATCH_COLLECTIONS: ReadonlyMap<string, BatchOp[]> = new Map(
  (ENTITIES as readonly Entity[])
    .map((entity) => [entity.collection, batchOpsOf(entity)] as const)
    .filter(([, ops]) => ops.length > 0),
);

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
    detail:
      `Operation ${index} (${operation.op} in ${operation.collection}) failed, so none was applied: ` + error.message,
    extensions,
    headers: error.headers,
    cause: error,
  });
}
