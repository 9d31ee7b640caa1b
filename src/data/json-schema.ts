// Translates the TypeBox schema of a stored document into MongoDB's `$jsonSchema` dialect (draft 4
// with `bsonType`), so the database refuses what the declaration forbids even when a write does
// not come through the service. A keyword with no MongoDB equivalent that would change what is
// valid is an error, never silently dropped: a validator weaker than the declaration would lie.
// Patterns are ECMAScript's (Ajv's) in the declaration and PCRE's in MongoDB: they are rewritten
// where the two dialects differ, and refused where the meaning could not be kept.

import type { TObject } from 'typebox';
import { fullFormats } from 'ajv-formats/dist/formats.js';

type Schema = Record<string, unknown>;

/** Keywords that document a schema without constraining it: MongoDB refuses them, so they go. */
const ANNOTATIONS = new Set([
  'default',
  'examples',
  '$id',
  '$schema',
  '$comment',
  'readOnly',
  'writeOnly',
  'deprecated',
]);

/**
 * String formats MongoDB cannot check. Dropping them leaves the validator looser than the API's,
 * which is acceptable: they describe how a value is spelled, not what type it is stored as.
 */
const UNCHECKED_FORMATS = new Set(['uri', 'url', 'hostname', 'ipv4', 'ipv6', 'uuid', 'date', 'time', 'regex']);

/**
 * Formats MongoDB checks as a pattern: Ajv's own expression (ajv-formats, the mode Fastify and
 * src/domain/validation.ts load), so the database refuses exactly the addresses the API refuses.
 * Its i flag has no place in a $jsonSchema pattern, and PCRE's caseless mode would match more
 * than ECMAScript's does (the Kelvin sign for k), so each a-z is spelled a-zA-Z instead.
 */
const FORMAT_PATTERNS: Record<string, string> = { email: caseInsensitiveAscii(fullFormats.email as RegExp) };

function caseInsensitiveAscii(expression: RegExp): string {
  if (expression.flags !== 'i' || /[A-Z]/.test(expression.source.replace(/\\./g, ''))) {
    throw new Error(`cannot spell /${expression.source}/${expression.flags} without its flags`);
  }
  return expression.source.replaceAll('a-z', 'a-zA-Z');
}

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
      else if (
        format === undefined ||
        UNCHECKED_FORMATS.has(format as string) ||
        FORMAT_PATTERNS[format as string] !== undefined
      )
        out.bsonType = 'string';
      else throw unsupported(path, 'format', `${JSON.stringify(format)} is unknown`);
      if (out.bsonType === 'string') {
        copy(KEPT.string);
        const formatPattern = FORMAT_PATTERNS[format as string];
        if (formatPattern !== undefined) {
          if (out.pattern !== undefined)
            throw unsupported(path, 'pattern', `cannot be combined with format ${String(format)}`);
          out.pattern = formatPattern;
        }
        if (out.pattern !== undefined) out.pattern = toPcrePattern(out.pattern as string, path);
      }
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
        if (Array.isArray(items) || typeof items !== 'object')
          throw unsupported(path, 'items', 'must be a single schema');
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
      Object.entries(patternProperties).map(([pattern, property]) => [
        toPcrePattern(pattern, path),
        convert(property, `${path}[/${pattern}/]`),
      ]),
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

/**
 * The PCRE spelling of an ECMAScript pattern, with the same matches. Without the m flag, `$` in
 * ECMAScript matches only at the end of the text; PCRE's `$` also matches before a final line
 * break, so MongoDB would take "EUR\n" for a currency. PCRE's `\z` is ECMAScript's `$`.
 * Constructs whose classes differ between the two (`.`, `\s`, `\d`, `\w`, `\b`, Unicode escapes
 * and properties) are refused rather than translated approximately.
 */
export function toPcrePattern(pattern: string, path = '$'): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern.charAt(i);
    if (char === '\\') {
      const next = pattern[i + 1];
      if (next === undefined || /[sSdDwWbBuUpPxck0-9]/.test(next)) {
        throw unsupported(
          path,
          'pattern',
          `${JSON.stringify(pattern)}: \\${next ?? ''} does not mean the same in MongoDB's PCRE`,
        );
      }
      out += char + next;
      i++;
    } else if (inClass) {
      if (char === ']') inClass = false;
      out += char;
    } else if (char === '[') {
      inClass = true;
      out += char;
    } else if (char === '.') {
      throw unsupported(
        path,
        'pattern',
        `${JSON.stringify(pattern)}: . does not match the same characters in MongoDB's PCRE`,
      );
    } else {
      out += char === '$' ? '\\z' : char;
    }
  }
  return out;
}

function unsupported(path: string, keyword: string, why: string): Error {
  return new Error(`cannot express ${path} in MongoDB $jsonSchema: ${keyword} ${why}`);
}
