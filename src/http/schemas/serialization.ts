// Response schemas as the serializer compiles them. fast-json-stringify writes a union (anyOf,
// oneOf) by testing each value against the members with Ajv, value by value: on a page of
// products, whose free-form attributes are such unions, that was half the time spent writing the
// page. A union whose members are all plain JSON values (strings without a format, numbers,
// booleans, null, and lists of those) comes out exactly as JSON.stringify writes the value, so for
// the serializer it becomes "any value". The documented schemas (OpenAPI, request validation)
// keep their unions; objects, dates and everything else keep their schema, so a response still
// carries only what its schema allows.

import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

type SerializerFactory = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildSerializer']
>;
type Schema = Record<string, unknown>;

const PLAIN_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null']);
/** Members whose content is data, not schema: copied as they are. */
const DATA_KEYWORDS = new Set(['examples', 'example', 'default', 'enum', 'const']);

/** True for a schema whose values JSON.stringify writes as fast-json-stringify would. */
function plainValue(schema: unknown): boolean {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return false;
  const node = schema as Schema;
  const members = (node.anyOf ?? node.oneOf) as unknown[] | undefined;
  if (members !== undefined) return Array.isArray(members) && members.every(plainValue);
  if (node.type === 'array') return plainValue(node.items);
  return (
    typeof node.type === 'string' && PLAIN_TYPES.has(node.type) && node.format === undefined && node.$ref === undefined
  );
}

/** A copy of a schema with its plain-valued unions turned into "any value". */
export function forSerialization(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forSerialization);
  if (schema === null || typeof schema !== 'object') return schema;
  const node = schema as Schema;
  if ((node.anyOf !== undefined || node.oneOf !== undefined) && plainValue(node)) return {};
  const copy: Schema = {};
  for (const [key, value] of Object.entries(node)) copy[key] = DATA_KEYWORDS.has(key) ? value : forSerialization(value);
  return copy;
}

/**
 * Fastify's own serializer factory (fast-json-stringify, loaded the way Fastify loads it, so its
 * version is Fastify's), given the schemas as forSerialization turns them.
 */
export function buildSerializer(): SerializerFactory {
  const fromFastify = createRequire(import.meta.resolve('fastify'));
  const { SerializerSelector } = fromFastify('@fastify/fast-json-stringify-compiler') as {
    SerializerSelector: () => SerializerFactory;
  };
  const factory = SerializerSelector();
  return (externalSchemas, options) => {
    const shared = Object.fromEntries(
      Object.entries((externalSchemas ?? {}) as Record<string, unknown>).map(([id, schema]) => [
        id,
        forSerialization(schema),
      ]),
    );
    const compile = factory(shared, options);
    return (route) => compile({ ...route, schema: forSerialization(route.schema) });
  };
}
