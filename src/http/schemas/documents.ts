// HTTP schemas of the document API, derived from each entity's declaration: the request
// bodies, the merge-patch body, the resource, the list page and the list's query language.
// Nothing here is written per entity, so the API cannot disagree with the model.

import { Type, type TObject, type TSchema } from 'typebox';
import { PREFIX_MAX_LENGTH, schemaAt, type Entity, type FilterOp } from '../../domain/entity.ts';

type JsonSchema = TSchema & Record<string, any>;

export const LIST_DEFAULT_LIMIT = 50;
export const LIST_MAX_LIMIT = 200;
export const LIST_MAX_VALUES = 50;
/** Filter parameters in one list request: each is a clause MongoDB must weigh, so their number is bounded. */
export const LIST_MAX_FILTERS = 10;
/** Query parameters that are not filters. */
export const CONTROL_PARAMS = ['sort', 'fields', 'limit', 'cursor', 'count', 'q'] as const;
export const LIST_OPERATORS: readonly FilterOp[] = ['in', 'nin', 'all'];

export interface DocumentSchemas {
  resource: string;
  input: string;
  patch: string;
  page: string;
  shared: JsonSchema[];
  query: TObject;
  sortable: string[];
}

/** The body of a merge patch: every member optional, null removes an optional member. */
function mergePatchOf(schema: JsonSchema, required: boolean): JsonSchema {
  if (schema.type === 'object' && schema.properties) {
    const properties: Record<string, JsonSchema> = {};
    const requiredHere = new Set<string>(schema.required ?? []);
    for (const [name, child] of Object.entries(schema.properties as Record<string, JsonSchema>)) {
      properties[name] = mergePatchOf(child, requiredHere.has(name));
    }
    const object = { type: 'object', properties, additionalProperties: false } as JsonSchema;
    return required ? object : { anyOf: [object, { type: 'null' }] };
  }
  if (schema.type === 'object' && schema.patternProperties) {
    const patternProperties: Record<string, JsonSchema> = {};
    for (const [pattern, value] of Object.entries(schema.patternProperties as Record<string, JsonSchema>)) {
      patternProperties[pattern] = { anyOf: [value, { type: 'null' }] } as JsonSchema;
    }
    const record = {
      type: 'object',
      patternProperties,
      additionalProperties: false,
      ...(schema.maxProperties !== undefined && { maxProperties: schema.maxProperties }),
    } as JsonSchema;
    return required ? record : { anyOf: [record, { type: 'null' }] };
  }
  const { default: _default, ...rest } = schema;
  return required ? rest : { anyOf: [rest, { type: 'null' }] };
}

/** A copy without `default`s: a listed item leaves out what was not asked for, instead of inventing it. */
function withoutDefaults(schema: JsonSchema): JsonSchema {
  if (Array.isArray(schema)) return schema.map(withoutDefaults) as unknown as JsonSchema;
  if (schema === null || typeof schema !== 'object') return schema;
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'default') continue;
    copy[key] = value !== null && typeof value === 'object' ? withoutDefaults(value as JsonSchema) : value;
  }
  return copy as JsonSchema;
}

/** The query string of the list: each allowed filter as its own typed parameter. */
function listQuery(entity: Entity, sortable: string[]): TObject {
  const properties: Record<string, TSchema> = {};
  for (const [field, ops] of Object.entries(entity.filters)) {
    const { default: _default, examples: _examples, description: _description, ...value } = schemaAt(entity, field);
    for (const op of ops) {
      const name = op === 'eq' ? field : `${field}[${op}]`;
      if (op === 'exists') properties[name] = Type.Boolean({ description: `Whether ${field} is present.` });
      else if (op === 'prefix') {
        // Not the field's own schema: a prefix of a valid value need not be valid itself. No control
        // characters (a NUL cannot be part of a MongoDB pattern); matched literally.
        properties[name] = Type.String({
          minLength: 1,
          maxLength: PREFIX_MAX_LENGTH,
          pattern: '^[^\\u0000-\\u001f\\u007f]+$',
          description: `${field} starts with this text, taken literally (1-${PREFIX_MAX_LENGTH} characters${entity.collation ? ', compared as the collection compares, regardless of case' : ', case-sensitive'}).`,
        });
      } else if (LIST_OPERATORS.includes(op)) {
        properties[name] = Type.Array(value as TSchema, {
          minItems: 1,
          maxItems: LIST_MAX_VALUES,
          description: `${field} ${op === 'in' ? 'is any of' : op === 'nin' ? 'is none of' : 'contains all of'} these (comma-separated or repeated).`,
        });
      } else {
        properties[name] = { ...(value as TSchema), description: `${field} ${describeOp(op)} this.` } as TSchema;
      }
    }
  }
  if (entity.textSearch) {
    properties.q = Type.String({ minLength: 1, maxLength: 200, description: 'Full-text search on the text-indexed fields.' });
  }
  const resourceFields = Object.keys(entity.resource.properties).filter((name) => name !== 'id');
  properties.sort = Type.Enum(sortable, {
    default: `-${entity.defaultSort}`,
    description: 'Sort key; a leading - sorts descending. Ties are broken by id.',
  });
  properties.fields = Type.String({
    pattern: `^(${resourceFields.join('|')})(,(${resourceFields.join('|')}))*$`,
    maxLength: 500,
    description: `Comma-separated fields to return (id and version always come): ${resourceFields.join(', ')}.`,
  });
  properties.limit = Type.Integer({ minimum: 1, maximum: LIST_MAX_LIMIT, default: LIST_DEFAULT_LIMIT, description: 'Page size.' });
  properties.cursor = Type.String({ minLength: 1, maxLength: 1024, description: 'Opaque cursor from the `next` link of the previous page.' });
  properties.count = Type.Boolean({ default: false, description: 'Also count all matches (bounded in time; left out when it takes too long).' });

  const optional: Record<string, TSchema> = {};
  for (const [name, schema] of Object.entries(properties)) optional[name] = Type.Optional(schema);
  return Type.Object(optional, { additionalProperties: false });
}

function describeOp(op: FilterOp): string {
  return { eq: 'equals (or, for a list field, contains)', ne: 'differs from', gt: 'is greater than', gte: 'is at least', lt: 'is less than', lte: 'is at most' }[
    op as 'eq'
  ];
}

export function documentSchemas(entity: Entity): DocumentSchemas {
  const name = entity.schemaName;
  const sortable = entity.sorts.flatMap((field) => [field, `-${field}`]);
  const resourceExample = {
    id: '6650f0c2a1b2c3d4e5f60718',
    ...entity.example,
    ...entity.serverExample,
    version: 3,
    createdAt: '2026-11-20T10:00:00.000Z',
    updatedAt: '2026-11-25T09:30:00.000Z',
  };
  const resource = { ...entity.resource, $id: name, examples: [resourceExample] } as JsonSchema;
  const input = { ...entity.writable, $id: `${name}Input`, description: `A ${entity.singular} as clients write it.`, examples: [entity.example] };
  const patch = {
    ...mergePatchOf(entity.writable as JsonSchema, true),
    $id: `${name}Patch`,
    minProperties: 1,
    description: `A JSON Merge Patch (RFC 7396) of a ${entity.singular}: members replace, objects merge, null removes an optional member.`,
  } as JsonSchema;
  const summary = {
    ...withoutDefaults(Type.Partial(entity.resource) as JsonSchema),
    required: ['id'],
    additionalProperties: false,
    $id: `${name}Fields`,
    description: `A ${entity.singular} as listed: the fields requested with \`fields\`, or all of them.`,
  } as JsonSchema;
  const page = {
    ...Type.Object(
      {
        items: Type.Array(Type.Ref(`${name}Fields`)),
        next: Type.Union([Type.String(), Type.Null()], { description: 'Link to the next page, null on the last one.' }),
        total: Type.Optional(Type.Integer({ minimum: 0, description: 'All matches, when count=true and counting finished in time.' })),
      },
      { additionalProperties: false },
    ),
    $id: `${name}Page`,
    examples: [{ items: [resourceExample], next: `/v1/${entity.collection}?limit=1&cursor=eyJoIjoi...`, total: 42 }],
  } as JsonSchema;
  return {
    resource: name,
    input: `${name}Input`,
    patch: `${name}Patch`,
    page: `${name}Page`,
    shared: [resource, input, patch, summary, page],
    query: listQuery(entity, sortable),
    sortable,
  };
}
