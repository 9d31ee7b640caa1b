// Batches: several document writes that succeed or fail together. What a batch may hold is
// derived from the entity declarations, so a batch can do no more than the single routes can.

import type { Entity } from './entity.ts';
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
  const { operations } = entity;
  return [
    ...(operations.create === true ? (['insert'] as const) : []),
    ...(operations.replace ? (['replace'] as const) : []),
    ...(operations.patch ? (['patch'] as const) : []),
    ...(operations.delete !== false ? (['delete'] as const) : []),
  ];
}

/** Collections a batch may write, with the operations each allows. */
export const BATCH_COLLECTIONS: ReadonlyMap<string, BatchOp[]> = new Map(
  (ENTITIES as readonly Entity[])
    .map((entity) => [entity.collection, batchOpsOf(entity)] as const)
    .filter(([, ops]) => ops.length > 0),
);
