// Translates the TypeBox schema of a stored document into MongoDB's `$jsonSchema` dialect (draft 4
// with `bsonType`), so the database refuses what the declaration forbids even when a write does
// not come through the service. A keyword with no MongoDB equivalent that would change what is
// valid is an error, never silently dropped: a validator weaker than the declaration would lie.

import type { TObject } from 'typebox';

type Schema = Record<string, unknown>;

/** Keywords that document a schema without constraining it: MongoDB refuses them, so they go. */
const ANNOTATIONS = new Set(['default', 'examples', '$id', '$schema', '$comment', 'readOnly', 'writeOnly', 'deprecated']);

/**
 * String formats MongoDB cannot check. Dropping them leaves the validator looser than the API's,
 * which is acceptable: they describe how a value is spelled, not what type it is stored as.
 */
const UNCHECKED_FORMATS = new Set(['email', 'uri', 'url', 'hostname', 'ipv4', 'ipv6', 'uuid', 'date', 'time', 'regex']);

const KEPT = {
  any: ['description', 'title'],
  object: ['minProperties', 'maxProperties'],
  string: ['minLength', 'maxLength', 'pattern'],
  number: ['minimum', 'maximum', 'multipleOf'],
  array: ['minItems', 'maxItems', 'uniqueItems'],
} as const;

const NUMBER_TYPES = ['int', 'long', 'double', 'decimal'];
const INTEGER_TYPES = ['int', 'long'];

/**
 * The value under `$jsonSchema` for a collection's validator. Dates (`format: 'date-time'`) and
 * ids (`format: 'objectid'`) become BSON dates and ObjectIds, integers `int` or `long`.
 */
export function toMongoJsonSchema(schema: TObject): Record<string, unknown> {
  return convert(schema as unknown as Schema, '$');
}

function convert(schema: Schema, path: string): Schema {
  const out: Schema = {};
  // Keys TypeBox marks with `~` (kind, optional, readonly) are non-enumerable, so entries skip them.
  const keys = new Set(Object.keys(schema));
  const take = (key: string) => {
    keys.delete(key);
    return schema[key];
  };

  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const branches = take(key);
    if (branches === undefined) continue;
    if (!Array.isArray(branches)) throw unsupported(path, key, 'must be an array');
    out[key] = branches.map((branch, i) => convert(branch as Schema, `${path}.${key}[${i}]`));
  }
  const not = take('not');
  if (not !== undefined) out.not = convert(not as Schema, `${path}.not`);

  const constant = take('const');
  if (constant !== undefined) out.enum = [constant];
  const values = take('enum');
  if (values !== undefined) out.enum = values;

  const type = take('type');
  const format = take('format');
  switch (type) {
    case undefined:
      if (format !== undefined) throw unsupported(path, 'format', 'without a type');
      break;
    case 'object':
      Object.assign(out, { bsonType: 'object' }, convertObject(schema, path, take));
      copy(KEPT.object);
      break;
    case 'string':
      if (format === 'date-time') out.bsonType = 'date';
      else if (format === 'objectid') out.bsonType = 'objectId';
      else if (format === undefined || UNCHECKED_FORMATS.has(format as string)) out.bsonType = 'string';
      else throw unsupported(path, 'format', `"${String(format)}" is unknown`);
      if (out.bsonType === 'string') copy(KEPT.string);
      // A date or an ObjectId is no string: its pattern and lengths describe the JSON spelling.
      else for (const key of KEPT.string) take(key);
      break;
    case 'integer':
    case 'number':
      out.bsonType = type === 'integer' ? INTEGER_TYPES : NUMBER_TYPES;
      copy(KEPT.number);
      convertExclusiveBound(take, out, 'exclusiveMinimum', 'minimum', path);
      convertExclusiveBound(take, out, 'exclusiveMaximum', 'maximum', path);
      break;
    case 'boolean':
      out.bsonType = 'bool';
      break;
    case 'null':
      out.bsonType = 'null';
      break;
    case 'array': {
      out.bsonType = 'array';
      const items = take('items');
      if (items !== undefined) {
        if (Array.isArray(items) || typeof items !== 'object') throw unsupported(path, 'items', 'must be a single schema');
        out.items = convert(items as Schema, `${path}[]`);
      }
      copy(KEPT.array);
      break;
    }
    default:
      throw unsupported(path, 'type', `${JSON.stringify(type)} has no BSON type`);
  }

  copy(KEPT.any);
  for (const key of keys) {
    if (!ANNOTATIONS.has(key)) throw unsupported(path, key, 'has no MongoDB $jsonSchema equivalent');
  }
  return out;

  function copy(names: readonly string[]): void {
    for (const name of names) {
      const value = take(name);
      if (value !== undefined) out[name] = value;
    }
  }
}

function convertObject(schema: Schema, path: string, take: (key: string) => unknown): Schema {
  const out: Schema = {};
  // MongoDB refuses an empty `required` array.
  const required = take('required') as string[] | undefined;
  if (required !== undefined && required.length > 0) out.required = [...required];

  const properties = take('properties') as Record<string, Schema> | undefined;
  if (properties !== undefined) {
    out.properties = Object.fromEntries(
      Object.entries(properties).map(([name, property]) => [name, convert(property, `${path}.${name}`)]),
    );
  }
  const patternProperties = take('patternProperties') as Record<string, Schema> | undefined;
  if (patternProperties !== undefined) {
    out.patternProperties = Object.fromEntries(
      Object.entries(patternProperties).map(([pattern, property]) => [pattern, convert(property, `${path}[/${pattern}/]`)]),
    );
  }
  const additional = take('additionalProperties');
  if (typeof additional === 'boolean') out.additionalProperties = additional;
  else if (additional !== undefined) out.additionalProperties = convert(additional as Schema, `${path}.*`);
  return out;
}

// TypeBox writes draft 2019 bounds (`exclusiveMinimum: 5`); MongoDB's draft 4 wants
// `minimum: 5, exclusiveMinimum: true`.
function convertExclusiveBound(
  take: (key: string) => unknown,
  out: Schema,
  key: 'exclusiveMinimum' | 'exclusiveMaximum',
  inclusive: 'minimum' | 'maximum',
  path: string,
): void {
  const bound = take(key);
  if (bound === undefined) return;
  if (typeof bound === 'boolean') {
    out[key] = bound;
    return;
  }
  if (out[inclusive] !== undefined) throw unsupported(path, key, `cannot be combined with ${inclusive}`);
  out[inclusive] = bound;
  out[key] = true;
}

function unsupported(path: string, keyword: string, why: string): Error {
  return new Error(`cannot express ${path} in MongoDB $jsonSchema: ${keyword} ${why}`);
}
