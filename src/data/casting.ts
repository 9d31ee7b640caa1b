// Turns a validated JSON document into the values MongoDB stores, as the entity's Mongoose schema
// casts them (src/data/mongoose-schema.ts): `date-time` strings become Dates, `objectid` strings
// ObjectIds, through nested objects and arrays; free-form values (records, unions) stay as they
// are. For the inserts, which skip building Mongoose documents (DocumentRepository.createManyIn).

import mongoose from 'mongoose';
import type { JsonSchema } from '../domain/entity.ts';

export type Caster = (value: unknown) => unknown;

const { ObjectId } = mongoose.Types;
const keep: Caster = (value) => value;

const isObjectSchema = (s: JsonSchema) =>
  s.type === 'object' && s.properties !== undefined && s.patternProperties === undefined;

/** A function that casts values of `schema`; values it does not type are returned as they are. */
export function compileCaster(schema: JsonSchema): Caster {
  if (isObjectSchema(schema)) {
    const fields = Object.entries(schema.properties as Record<string, JsonSchema>)
      .map(([name, child]) => [name, compileCaster(child)] as const)
      .filter(([, cast]) => cast !== keep);
    if (fields.length === 0) return keep;
    return (value) => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      for (const [name, cast] of fields) if (out[name] !== undefined) out[name] = cast(out[name]);
      return out;
    };
  }
  if (schema.type === 'array' && schema.items !== undefined) {
    const cast = compileCaster(schema.items as JsonSchema);
    return cast === keep ? keep : (value) => (Array.isArray(value) ? value.map(cast) : value);
  }
  if (schema.type === 'string' && schema.format === 'date-time')
    return (value) => (typeof value === 'string' ? new Date(value) : value);
  if (schema.type === 'string' && schema.format === 'objectid')
    return (value) => (typeof value === 'string' ? new ObjectId(value) : value);
  return keep;
}
