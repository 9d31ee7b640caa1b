// The largest values the entity declarations allow, and the one problem a write that would pass
// one of them answers with: a 409 naming the field, the limit and the value the write would have
// reached. A counter that only ever grows by increments (a stock item's units) can reach its
// maximum through requests that are each valid; that is a state of the data, not a bad request.

import { AppError } from '../errors.ts';
import { schemaAt, type Entity } from './entity.ts';

export interface LimitExceeded {
  /** Dotted path of the field in the stored document, e.g. available or price.amount. */
  field: string;
  limit: number;
  /** What the field would have held after the write. */
  value: number;
  /** The document the write would have changed, when known. */
  documentId?: string;
}

export function limitExceeded({ field, limit, value, documentId }: LimitExceeded, detail?: string): AppError {
  return new AppError(409, 'limit-exceeded', 'Limit Exceeded', {
    detail: detail ?? `The write would take ${field} to ${value}, past its limit of ${limit}; nothing was written.`,
    extensions: { field, limit, value, ...(documentId !== undefined && { documentId }) },
  });
}

/** The declared maximum of a field of an entity's stored documents (undefined when it has none). */
export function maximumOf(entity: Entity, field: string): number | undefined {
  const { maximum } = schemaAt(entity, field);
  return typeof maximum === 'number' ? maximum : undefined;
}
