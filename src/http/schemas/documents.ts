// HTTP schemas of the document API, derived from each entity's declaration: the request
// bodies, the merge-patch body, the resource, the list page and the list's query language.
// Nothing here is written per entity, so the API cannot disagree with the model.

import { Type, type TObject, type TSchema } from 'typebox';
import { PREFIX_MAX_LENGTH, documentWrites, schemaAt, type Entity, type FilterOp } from '../../domain/entity.ts';
import { ObjectIdString } from '../../domain/types.ts';
import { problemResponses } from './problem.ts';

/** A JSON Schema as TypeBox builds it: the keywords this module reads and writes. */
interface JsonSchema extends TSchema {
  [keyword: string]: unknown;
  type?: unknown;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  required?: string[];
  maxProperties?: number;
}

/** TypeBox's schemas are JSON Schema objects; its types name the keywords of each kind only. */
const json = (schema: TSchema) => schema as JsonSchema;

export const LIST_DEFAULT_LIMIT = 50;
export const LIST_MAX_LIMIT = 200;
export const LIST_MAX_VALUES = 50;
/** Filter parameters in one list request: each is a clause MongoDB must weigh, so their number is bounded. */
export const LIST_MAX_FILTERS = 10;
/** Query parameters that are not filters. */
export const CONTROL_PARAMS = ['sort', 'fields', 'limit', 'cursor', 'count', 'q'] as const;
export const LIST_OPERATORS: readonly FilterOp[] = ['in', 'nin', 'all'];

/** The path of a route about one document (or key, or audit entry): its id. */
export const IdParams = Type.Object(
  { id: ObjectIdString({ description: 'The document id.' }) },
  { additionalProperties: false },
);

/** The path and answers of a route that reads or changes one thing by id: the thing, or why not. */
export const byId = <Answer extends object, NotFound extends object>(answer: Answer, notFound: NotFound) => ({
  params: IdParams,
  response: { 200: answer, ...problemResponses(400, 500, 503), ...notFound },
});

/** "a product", "an order": the noun with its indefinite article. */
export const withArticle = (noun: string) => `${/^[aeiou]/i.test(noun) ? 'an' : 'a'} ${noun}`;

/** The text with its first letter in upper case, for names and sentences built from words. */
export const capitalized = (text: string) => `${text.charAt(0).toUpperCase()}${text.slice(1)}`;

export interface DocumentSchemas {
  resource: string;
  input: string;
  patch: string;
  page: string;
  shared: TSchema[];
  query: TObject;
  sortable: string[];
}

/** The body of a merge patch: every member optional, null removes an optional member. */
function mergePatchOf(schema: JsonSchema, required: boolean): JsonSchema {
  if (schema.type === 'object' && schema.properties) {
    const properties: Record<string, JsonSchema> = {};
    const requiredHere = new Set<string>(schema.required ?? []);
    for (const [name, child] of Object.entries(schema.properties)) {
      properties[name] = mergePatchOf(child, requiredHere.has(name));
    }
    const object: JsonSchema = { type: 'object', properties, additionalProperties: false };
    return required ? object : { anyOf: [object, { type: 'null' }] };
  }
  if (schema.type === 'object' && schema.patternProperties) {
    const patternProperties: Record<string, JsonSchema> = {};
    for (const [pattern, value] of Object.entries(schema.patternProperties)) {
      patternProperties[pattern] = { anyOf: [value, { type: 'null' }] };
    }
    const record: JsonSchema = {
      type: 'object',
      patternProperties,
      additionalProperties: false,
      ...(schema.maxProperties !== undefined && { maxProperties: schema.maxProperties }),
    };
    return required ? record : { anyOf: [record, { type: 'null' }] };
  }
  const { default: _default, ...rest } = schema;
  return required ? rest : { anyOf: [rest, { type: 'null' }] };
}

/** A copy without `default`s: a listed item leaves out what was not asked for, instead of inventing it. */
function withoutDefaults(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutDefaults);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([key]) => key !== 'default')
      .map(([key, value]) => [key, withoutDefaults(value)]),
  );
}

/** The query string of the list: each allowed filter as its own typed parameter. */
function listQuery(entity: Entity, sortable: string[]): TObject {
  const properties: Record<string, TSchema> = {};
  for (const [field, ops] of Object.entries(entity.filters)) {
    const {
      default: _default,
      examples: _examples,
      description: _description,
      ...value
    } = json(schemaAt(entity, field));
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
          description:
            `${field} starts with this text, taken literally (1-${PREFIX_MAX_LENGTH} characters` +
            (entity.collation ? ', compared as the collection compares, regardless of case).' : ', case-sensitive).'),
        });
      } else if (LIST_OPERATORS.includes(op)) {
        const says = op === 'in' ? 'is any of' : op === 'nin' ? 'is none of' : 'contains all of';
        properties[name] = Type.Array(value, {
          minItems: 1,
          maxItems: LIST_MAX_VALUES,
          description: `${field} ${says} these (comma-separated or repeated).`,
        });
      } else {
        properties[name] = { ...value, description: `${field} ${describeOp(op)} this.` };
      }
      // A parameter's schema says its type: an enum alone leaves clients to guess how to send it.
      const parameter = json(properties[name]);
      for (const schema of [parameter, parameter.items]) {
        if (schema?.enum !== undefined && schema.type === undefined)
          schema.type = typeof schema.enum[0] === 'number' ? 'number' : 'string';
      }
    }
  }
  if (entity.textSearch) {
    properties.q = Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'Full-text search on the text-indexed fields.',
    });
  }
  const resourceFields = Object.keys(entity.resource.properties).filter((name) => name !== 'id');
  properties.sort = Type.Enum(sortable, {
    type: 'string',
    default: `-${entity.defaultSort}`,
    description: 'Sort key; a leading - sorts descending. Ties are broken by id.',
  });
  properties.fields = Type.String({
    pattern: `^(${resourceFields.join('|')})(,(${resourceFields.join('|')}))*$`,
    maxLength: 500,
    description: `Comma-separated fields to return (id and version always come): ${resourceFields.join(', ')}.`,
  });
  properties.limit = Type.Integer({
    minimum: 1,
    maximum: LIST_MAX_LIMIT,
    default: LIST_DEFAULT_LIMIT,
    description: 'Page size.',
  });
  properties.cursor = Type.String({
    minLength: 1,
    maxLength: 1024,
    description: 'Opaque cursor from the `next` link of the previous page.',
  });
  properties.count = Type.Boolean({
    default: false,
    description: 'Also count all matches (bounded in time; left out when it takes too long).',
  });

  const optional: Record<string, TSchema> = {};
  for (const [name, schema] of Object.entries(properties)) optional[name] = Type.Optional(schema);
  return Type.Object(optional, { additionalProperties: false });
}

/** Whether clients write the entity's documents through the generic routes (or a batch). */
function writesDocuments(entity: Entity): boolean {
  const allowed = documentWrites(entity);
  return allowed.create || allowed.replace || allowed.patch;
}

function describeOp(op: FilterOp): string {
  return {
    eq: 'equals (or, for a list field, contains)',
    ne: 'differs from',
    gt: 'is greater than',
    gte: 'is at least',
    lt: 'is less than',
    lte: 'is at most',
  }[op as 'eq'];
}

const FIXED =
  'Fixed at creation: a replace must send the value the document has, ' +
  'a patch may leave it out or repeat it (else 400).';

/** Each member fixed at creation says so in its description. */
function withFixedMembers(schema: JsonSchema, entity: Entity): JsonSchema {
  const properties = { ...schema.properties };
  for (const member of entity.immutable) {
    const described = properties[member];
    if (described === undefined)
      throw new Error(`${entity.collection}: ${member} is fixed at creation but not writable`);
    properties[member] = {
      ...described,
      description: described.description ? `${described.description} ${FIXED}` : FIXED,
    };
  }
  return { ...schema, properties };
}

/** The writable schema with only what has no default required: a member left out gets its default. */
function inputOf(entity: Entity): JsonSchema {
  const writable = withFixedMembers(json(entity.writable), entity);
  const required = (writable.required ?? []).filter((member) => writable.properties?.[member]?.default === undefined);
  const { required: _required, ...rest } = writable;
  return required.length > 0 ? { ...rest, required } : rest;
}

/** The resource with what clients cannot write marked read-only: its id, the server's fields and the system fields. */
function resourceOf(entity: Entity): JsonSchema {
  const writable = new Set(Object.keys(entity.writable.properties));
  const properties = Object.fromEntries(
    Object.entries(entity.resource.properties).map(([name, schema]) => [
      name,
      writable.has(name) ? schema : { ...schema, readOnly: true },
    ]),
  );
  return withFixedMembers(json({ ...entity.resource, properties }), entity);
}

/**
 * A merge patch that the example document accepts: the first member that may change gets the
 * example's value again, and the first optional member without a default is removed (null).
 */
function patchExample(entity: Entity): Record<string, unknown> {
  const writable = json(entity.writable);
  const required = new Set(writable.required);
  const example = entity.example as Record<string, unknown>;
  const members = Object.keys(entity.writable.properties).filter((member) => !entity.immutable.includes(member));
  const changed = members.find((member) => required.has(member) && example[member] !== undefined);
  const removed = members.find(
    (member) => !required.has(member) && writable.properties?.[member]?.default === undefined,
  );
  return { ...(changed && { [changed]: example[changed] }), ...(removed && { [removed]: null }) };
}

/** The bodies clients write a document with, whole (create, replace) and as a merge patch. */
export function writeBodies(entity: Entity): { input: JsonSchema; patch: JsonSchema } {
  const name = entity.schemaName;
  const input = {
    ...inputOf(entity),
    $id: `${name}Input`,
    description:
      `${capitalized(withArticle(entity.singular))} as clients write it; ` + 'members left out get their defaults.',
    examples: [entity.example],
  };
  const patch = {
    ...mergePatchOf(withFixedMembers(json(entity.writable), entity), true),
    $id: `${name}Patch`,
    minProperties: 1,
    description:
      `A JSON Merge Patch (RFC 7396) of ${withArticle(entity.singular)}: ` +
      'members replace, objects merge, null removes an optional member.',
    examples: [patchExample(entity)],
  };
  return { input, patch };
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
  const resource: JsonSchema = { ...resourceOf(entity), $id: name, examples: [resourceExample] };
  const summary: JsonSchema = {
    ...(withoutDefaults(Type.Partial(entity.resource)) as JsonSchema),
    required: ['id'],
    additionalProperties: false,
    $id: `${name}Fields`,
    description:
      `${capitalized(withArticle(entity.singular))} as listed: ` +
      'the fields requested with `fields`, or all of them.',
  };
  const page = {
    ...Type.Object(
      {
        items: Type.Array(Type.Ref(`${name}Fields`)),
        next: Type.Union([Type.String(), Type.Null()], { description: 'Link to the next page, null on the last one.' }),
        total: Type.Optional(
          Type.Integer({ minimum: 0, description: 'All matches, when count=true and counting finished in time.' }),
        ),
      },
      { additionalProperties: false },
    ),
    $id: `${name}Page`,
    examples: [{ items: [resourceExample], next: `/v1/${entity.collection}?limit=1&cursor=eyJoIjoi...`, total: 42 }],
  };
  return {
    resource: name,
    input: `${name}Input`,
    patch: `${name}Patch`,
    page: `${name}Page`,
    // Orders are written only by their workflow: no input or patch of theirs to document.
    shared: [resource, ...(writesDocuments(entity) ? Object.values(writeBodies(entity)) : []), summary, page],
    query: listQuery(entity, sortable),
    sortable,
  };
}
