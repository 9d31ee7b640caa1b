// The shape of an entity declaration. Each collection is declared once, in src/domain/entities:
// its fields (TypeBox), what clients may write, which filters and sorts the API allows, the
// indexes that serve them and the key it would be sharded on. The Mongoose model, the MongoDB
// validator, the HTTP schemas, the OpenAPI description, the TypeScript types and docs/schema.md
// are all derived from that one declaration.

import { Type, type Static, type TObject, type TProperties, type TSchema } from 'typebox';
import type { Deletion, References } from './deletion.ts';
import { AuditStampSchema } from './audit-stamp.ts';
import { DateTime, ObjectIdString } from './types.ts';

/**
 * Filter operators of the list API. On array fields `eq` means "contains", `in` "contains any"
 * and `all` "contains all". `prefix` (string fields) means "starts with", matched literally: the
 * one way client text reaches a pattern match, anchored and escaped (src/data/query.ts).
 */
export type FilterOp = 'eq' | 'ne' | 'in' | 'nin' | 'gt' | 'gte' | 'lt' | 'lte' | 'exists' | 'all' | 'prefix';

/** The range operators, as a filter on a number or a time takes them. */
export const RANGE: readonly FilterOp[] = ['gt', 'gte', 'lt', 'lte'];

/** Longest value of a `prefix` filter: enough to narrow any name down, short enough to stay cheap. */
export const PREFIX_MAX_LENGTH = 64;

export interface IndexDeclaration {
  name: string;
  key: Record<string, 1 | -1 | 'text'>;
  unique?: boolean;
  partialFilterExpression?: Record<string, unknown>;
  weights?: Record<string, number>;
  /** The query this index exists for: documentation, and a reviewer's checklist. */
  serves: string;
}

/**
 * The index of keyset pages: the fields a page is selected by with equality (if any), the field
 * it is sorted by last, then _id to break ties.
 */
export function pageIndex(name: string, fields: string | readonly string[], serves: string): IndexDeclaration {
  const key: Record<string, 1> = {};
  for (const field of typeof fields === 'string' ? [fields] : fields) key[field] = 1;
  key._id = 1;
  return { name, key, serves };
}

/**
 * How the collection is split across shards once one replica set is not enough (docs/scaling.md):
 * the key, and what it costs, said where a reviewer of the entity sees it. Nothing runs sharded
 * today; test/data/shard-keys.test.ts holds each declaration to the indexes and to the queries the
 * code issues, so that a new unique index or a new query shape cannot go unclassified.
 */
export interface ShardKeyDeclaration {
  /** 1 for a ranged field, 'hashed' for the (one) hashed field. */
  key: Record<string, 1 | 'hashed'>;
  /** Why this key: cardinality, frequency, monotonicity, and the queries it keeps on one shard. */
  why: string;
  /**
   * The unique indexes the key does not prefix, by name, and how each stays unique once sharded:
   * MongoDB enforces uniqueness across shards only for an index that starts with the shard key
   * and refuses to shard a collection with another unique index, so each of these has to change.
   */
  uniqueElsewhere: Record<string, string>;
  /**
   * The query shapes that carry no equality on the key's first field, so reach every shard (or
   * several), and what each costs. A shape is named by the fields its filter names, sorted and
   * joined by ' + ', or, for an unfiltered query, 'sort <fields>'.
   */
  scatterGather: { shapes: string[]; cost: string }[];
}

/** How documents of an entity may be deleted: the rule in words (for the API description) and in code. */
export interface DeletionDeclaration<D = Record<string, unknown>> {
  rule: string;
  /**
   * Decides, from the stored document and what refers to it (read in the deleting transaction),
   * whether it is deleted or archived; throws the problem when it is refused. (A method: an
   * entity's rule takes its own documents, and every entity is still an Entity.)
   */
  decide(document: D, references: References): Promise<Deletion>;
}

export interface Operations<D = Record<string, unknown>> {
  /**
   * true: the generic create (POST of the writable fields). A workflow: documents are created
   * by a route of their own (orders are placed, not posted), so the generic layer registers
   * neither a create nor a 405 for it. false: the API never creates them.
   */
  create: boolean | { workflow: string };
  replace: boolean;
  patch: boolean;
  /** A deletable entity declares its rule; false when documents are never deleted. */
  delete: false | DeletionDeclaration<D>;
}

/** The generic document writes an entity allows: the routes and the batch both ask this. */
export interface DocumentWrites {
  create: boolean;
  replace: boolean;
  patch: boolean;
  delete: boolean;
}

export function documentWrites({ operations }: Pick<Entity, 'operations'>): DocumentWrites {
  return {
    create: operations.create === true,
    replace: operations.replace,
    patch: operations.patch,
    delete: operations.delete !== false,
  };
}

export interface EntityDeclaration<W extends TObject = TObject, S extends TObject = TObject> {
  /** Collection name and route segment: /v1/<collection>. */
  collection: string;
  /** Singular noun for messages and OpenAPI names, e.g. "product". */
  singular: string;
  /** PascalCase schema name for OpenAPI components, e.g. "Product". */
  schemaName: string;
  description: string;
  /** Fields a client sends when creating or replacing. */
  writable: W;
  /** Fields the service maintains; read-only through the API. */
  server: S;
  /** Writable fields fixed at creation (identity): a replace or patch may not change them. */
  immutable: string[];
  filters: Record<string, FilterOp[]>;
  /** Fields the list may sort on; each has an index ending in _id so keyset pages stay cheap. */
  sorts: string[];
  defaultSort: string;
  textSearch: boolean;
  /** Collection default collation (indexes and queries inherit it). */
  collation?: { locale: string; strength: number };
  indexes: IndexDeclaration[];
  /** The key this collection is sharded on when it has to be. */
  shardKey: ShardKeyDeclaration;
  /** What the API may do with its documents; a deletion rule sees the stored document. */
  operations: Operations<Static<W> & Static<S> & { _id: unknown }>;
  /** Server fields of a newly created document. */
  serverDefaults: Partial<Static<S>>;
  example: Static<W>;
  serverExample: Static<S>;
}

/** The keywords of a JSON Schema its readers look at (TypeBox's TSchema types none of them). */
export interface JsonSchema extends TSchema {
  type?: unknown;
  format?: unknown;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: unknown;
  properties?: Record<string, unknown>;
  patternProperties?: Record<string, unknown>;
  required?: readonly string[];
}

/** Fields every stored document has, maintained by the repository. */
export const SystemFields = {
  version: Type.Integer({ minimum: 1, description: 'Incremented by every write; the ETag is derived from it.' }),
  createdAt: DateTime({ description: 'When the document was created.' }),
  updatedAt: DateTime({ description: 'When the document last changed.' }),
};

export interface Entity<W extends TObject = TObject, S extends TObject = TObject> extends EntityDeclaration<W, S> {
  /** The resource as the API returns it: id, writable, server and system fields. */
  resource: TObject;
  /** The document as MongoDB stores it (with _id instead of id). */
  stored: TObject;
}

export function defineEntity<W extends TObject, S extends TObject>(declaration: EntityDeclaration<W, S>): Entity<W, S> {
  const fields: TProperties = { ...declaration.writable.properties, ...declaration.server.properties, ...SystemFields };
  const resource = Type.Object(
    { id: ObjectIdString({ description: `The ${declaration.singular}'s id.` }), ...fields },
    { additionalProperties: false, description: declaration.description },
  );
  // The stored document also carries the audit entry of its last single-document write (never shown).
  const stored = Type.Object(
    { _id: ObjectIdString(), ...fields, _audit: Type.Optional(AuditStampSchema) },
    { additionalProperties: false },
  );
  return { ...declaration, resource, stored };
}

/** The schema of a dotted path inside the stored document, stepping through arrays. */
export function schemaAt(entity: Entity, path: string): JsonSchema {
  let current = entity.stored as JsonSchema;
  for (const segment of path.split('.')) {
    while (current.type === 'array') current = current.items as JsonSchema;
    const next = current.properties?.[segment] as JsonSchema | undefined;
    if (next === undefined) throw new Error(`${entity.collection}: no field ${path}`);
    current = next;
  }
  while (current.type === 'array') current = current.items as JsonSchema;
  return current;
}
