// Derives a Mongoose schema from an entity's TypeBox declaration: the same types, required
// fields, ranges, lengths, patterns and enums, strict about unknown fields. Shapes Mongoose has
// no native type for (free-form records, unions) are checked by the same JSON Schema through
// Ajv, so the model validates exactly what the HTTP layer does. So are strings: Mongoose's own
// minLength and maxLength count UTF-16 units where JSON Schema (Ajv, MongoDB) counts characters,
// and its match has no u flag, so a postal code of 20 emoji would pass the API and fail here.

import { Schema, type SchemaDefinition, type SchemaDefinitionProperty } from 'mongoose';
import type { TSchema } from 'typebox';
import type { JsonSchema } from '../domain/entity.ts';
import { compileValidator } from '../domain/validation.ts';

const isObjectSchema = (s: JsonSchema) =>
  s.type === 'object' && s.properties !== undefined && s.patternProperties === undefined;

function scalar(schema: JsonSchema, required: boolean): SchemaDefinitionProperty {
  const base: Record<string, unknown> = { required };
  if (schema.enum) return { ...base, type: typeof schema.enum[0] === 'number' ? Number : String, enum: schema.enum };
  switch (schema.type) {
    case 'string':
      if (schema.format === 'date-time') return { ...base, type: Date };
      if (schema.format === 'objectid') return { ...base, type: Schema.Types.ObjectId };
      return { ...base, type: String, ...(hasStringRules(schema) && { validate: ajvValidator(schema) }) };
    case 'integer':
      return {
        ...base,
        type: Number,
        validate: { validator: Number.isInteger, message: '{PATH} must be an integer' },
        ...(schema.minimum !== undefined && { min: schema.minimum }),
        ...(schema.maximum !== undefined && { max: schema.maximum }),
      };
    case 'number':
      return {
        ...base,
        type: Number,
        ...(schema.minimum !== undefined && { min: schema.minimum }),
        ...(schema.maximum !== undefined && { max: schema.maximum }),
      };
    case 'boolean':
      return { ...base, type: Boolean };
    default:
      // Records and unions: one Ajv check of the value against its JSON Schema.
      return { ...base, type: Schema.Types.Mixed, validate: ajvValidator(schema) };
  }
}

const STRING_RULES = ['minLength', 'maxLength', 'pattern', 'format'] as const;
const hasStringRules = (schema: JsonSchema) => STRING_RULES.some((rule) => schema[rule] !== undefined);

function ajvValidator(schema: JsonSchema) {
  const check = compileValidator(schema);
  return {
    validator: (value: unknown) => value === undefined || check(value).length === 0,
    message: (props: { path: string; value: unknown }) =>
      `${props.path}: ${check(props.value)
        .map((e) => `${e.pointer || '/'} ${e.message}`)
        .join('; ')}`,
  };
}

function property(schema: JsonSchema, required: boolean): SchemaDefinitionProperty {
  if (isObjectSchema(schema)) {
    return { type: subSchema(schema), required };
  }
  if (schema.type === 'array') {
    const items = schema.items as JsonSchema;
    const element = isObjectSchema(items) ? subSchema(items) : scalar(items, false);
    return {
      type: [element],
      required,
      // Mongoose initialises missing arrays to []; an empty array is a value, not a missing one.
      default: undefined,
      validate: ajvValidator({ ...schema, items: {} }),
    };
  }
  return scalar(schema, required);
}

function definition(schema: JsonSchema): SchemaDefinition {
  const required = new Set<string>(schema.required ?? []);
  const fields: SchemaDefinition = {};
  for (const [name, child] of Object.entries(schema.properties as Record<string, JsonSchema>)) {
    if (name === '_id') continue;
    fields[name] = property(child, required.has(name));
  }
  return fields;
}

function subSchema(schema: JsonSchema): Schema {
  return new Schema(definition(schema), { _id: false, strict: 'throw', id: false, minimize: false });
}

export interface ModelSchemaOptions {
  collection: string;
  collation?: { locale: string; strength: number };
}

/**
 * The model's schema. Versions and timestamps are kept by the repository (every write is a
 * conditional replace on the version), so Mongoose's own are off.
 */
export function toMongooseSchema(stored: TSchema, options: ModelSchemaOptions): Schema {
  return new Schema(definition(stored), {
    collection: options.collection,
    strict: 'throw',
    strictQuery: 'throw',
    // Empty objects (attributes: {}) are values the validator requires, not noise to drop.
    minimize: false,
    versionKey: false,
    timestamps: false,
    id: false,
    autoIndex: false,
    autoCreate: false,
    ...(options.collation && { collation: options.collation }),
  });
}
