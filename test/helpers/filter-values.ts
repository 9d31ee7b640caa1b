// A value of the right type for each filter the list API allows, taken from the entity's
// examples: what the query-plan and shard-key tests put in the list requests they build.

import type { Entity, FilterOp } from '../../src/domain/entity.ts';
import { schemaAt } from '../../src/domain/entity.ts';
import { valueAt } from '../../src/data/query.ts';

export function sampleValue(entity: Entity, field: string, op: FilterOp): unknown {
  if (op === 'exists') return true;
  const schema = schemaAt(entity, field);
  let value: unknown = valueAt({ ...entity.example, ...entity.serverExample }, field);
  if (schema.format === 'date-time') value = '2026-11-25T00:00:00.000Z';
  if (Array.isArray(value)) value = value[0];
  if (value === undefined && schema.enum) value = schema.enum[0];
  if (value === undefined && schema.type === 'string') value = 'sample';
  if (value === undefined && (schema.type === 'integer' || schema.type === 'number')) value = 1;
  if (value === undefined && schema.type === 'boolean') value = true;
  return op === 'in' || op === 'nin' || op === 'all' ? [value] : value;
}
