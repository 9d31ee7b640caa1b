// What the generic document writes compute, without I/O: the parts of a stored document a client
// writes and the service keeps, a merge patch applied and checked as a whole, and the identity
// fields no write may change. src/shop/documents.ts applies them.

import { AppError, type FieldError } from '../errors.ts';
import type { Entity } from './entity.ts';
import { applyMergePatch, type Json } from './merge-patch.ts';
import { compileValidator } from './validation.ts';

const checks = new WeakMap<Entity, (value: unknown) => FieldError[]>();

/** The check of the writable fields of an entity's documents (compiled once per entity). */
export function checkWritable(entity: Entity, value: unknown): FieldError[] {
  let check = checks.get(entity);
  if (check === undefined) {
    check = compileValidator(entity.writable);
    checks.set(entity, check);
  }
  return check(value);
}

/** The fields a client writes, as JSON (a copy: the merge patch changes it). */
export function writablePart(entity: Entity, document: Record<string, unknown>): Record<string, unknown> {
  const writable: Record<string, unknown> = {};
  for (const name of Object.keys(entity.writable.properties)) {
    if (document[name] !== undefined) writable[name] = document[name];
  }
  return JSON.parse(JSON.stringify(writable)) as Record<string, unknown>;
}

/** The fields the service maintains: a replace or patch keeps them as they are. */
export function serverPart(entity: Entity, document: Record<string, unknown>): Record<string, unknown> {
  const server: Record<string, unknown> = {};
  for (const name of Object.keys(entity.server.properties)) {
    if (document[name] !== undefined) server[name] = document[name];
  }
  return server;
}

/** The writable fields once `patch` is merged into them; a 400 when the result is not a valid document. */
export function mergePatched(
  entity: Entity,
  current: Record<string, unknown>,
  patch: Record<string, Json>,
): Record<string, unknown> {
  const merged = applyMergePatch(writablePart(entity, current) as Json, patch) as Record<string, unknown>;
  const errors = checkWritable(entity, merged);
  if (errors.length > 0) throw AppError.validation(errors);
  return merged;
}

/** A 400 when the new writable fields change a field fixed at creation (identity). */
export function assertIdentityKept(
  entity: Entity,
  current: Record<string, unknown>,
  writable: Record<string, unknown>,
): void {
  const errors: FieldError[] = entity.immutable
    .filter((name) => writable[name] !== current[name])
    .map((name) => ({
      in: 'body',
      pointer: `/${name}`,
      message: `cannot change after creation (is ${JSON.stringify(current[name])})`,
    }));
  if (errors.length > 0) throw AppError.validation(errors);
}
