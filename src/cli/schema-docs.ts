// `npm run schema:docs`: writes docs/schema.md, the collections as the entity declarations
// (src/domain/entities, and the audit trail's in src/domain/audit.ts) define them: fields with their
// types and rules, references, indexes, what the list API allows, the validator, TTLs and the shard
// key; then the service's other collections, by name, with the migrations that define them.
// `-- --check` only compares, exiting 1 when the committed page is stale (CI). The page depends on
// the code alone (no dates, no database), so the same code always writes the same page.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AUDIT_EXPIRY_INDEX, AuditEvent } from '../domain/audit.ts';
import { ENTITIES } from '../domain/entities/index.ts';
import { documentWrites, type Entity, type JsonSchema } from '../domain/entity.ts';
import { API_KEYS_COLLECTION } from '../data/api-keys.ts';
import { POSITIONS_COLLECTION } from '../data/audit-stream.ts';
import { SECRETS_COLLECTION } from '../data/cursor-keys.ts';
import { IDEMPOTENCY_COLLECTION } from '../data/idempotency.ts';
import { LOCK_TTL_SECONDS, MIGRATION_SETTINGS, MIGRATIONS_DIR } from '../data/migrations.ts';
import { RATE_USAGE_COLLECTION } from '../data/rate-usage.ts';
import { generateWhenRun } from './generated-file.ts';
import { collectionSpec, toLiteral } from './print-schema.ts';

export const SCHEMA_DOC_FILE = fileURLToPath(new URL('../../docs/schema.md', import.meta.url));

const DOCUMENTED: readonly Entity[] = [...(ENTITIES as readonly Entity[]), AuditEvent];

/** The TTL indexes outside the declarations' index lists, by collection. */
const TTLS: Record<string, { name: string; key: Record<string, number>; expireAfterSeconds: number }[]> = {
  [AuditEvent.collection]: [AUDIT_EXPIRY_INDEX],
};

/** The service's bookkeeping collections, by the constant that names each and the module that holds it. */
const BOOKKEEPING = [
  { name: API_KEYS_COLLECTION, module: 'src/data/api-keys.ts' },
  { name: IDEMPOTENCY_COLLECTION, module: 'src/data/idempotency.ts' },
  { name: RATE_USAGE_COLLECTION, module: 'src/data/rate-usage.ts' },
  { name: POSITIONS_COLLECTION, module: 'src/data/audit-stream.ts' },
  { name: SECRETS_COLLECTION, module: 'src/data/cursor-keys.ts' },
  { name: MIGRATION_SETTINGS.changelogCollectionName, module: 'src/data/migrations.ts' },
  { name: MIGRATION_SETTINGS.lockCollectionName, module: 'src/data/migrations.ts' },
];

// --- fields ------------------------------------------------------------------------------------

interface Field {
  path: string;
  schema: JsonSchema;
  /** The validator's node at the same place: how MongoDB stores the value. */
  stored: JsonSchema | undefined;
  required: boolean;
  /** The top-level member it belongs to. */
  top: string;
}

const member = (schema: JsonSchema | undefined, name: string) => schema?.properties?.[name] as JsonSchema | undefined;

/** Every field of a schema, depth first; array items and map values are stepped through ("*" names a map's members). */
function fieldsOf(schema: JsonSchema, stored: JsonSchema | undefined, prefix = '', top = ''): Field[] {
  let object = schema;
  let storedObject = stored;
  while (object.type === 'array') {
    object = object.items as JsonSchema;
    storedObject = storedObject?.items as JsonSchema | undefined;
  }
  const fields: Field[] = [];
  const required = new Set(object.required ?? []);
  for (const [name, child] of Object.entries(object.properties ?? {}) as [string, JsonSchema][]) {
    const path = `${prefix}${name}`;
    const storedChild = member(storedObject, name === 'id' && prefix === '' ? '_id' : name);
    fields.push({ path, schema: child, stored: storedChild, required: required.has(name), top: top || name });
    fields.push(...fieldsOf(child, storedChild, `${path}.`, top || name));
  }
  const values = Object.values(object.patternProperties ?? {}) as JsonSchema[];
  const storedValues = Object.values(storedObject?.patternProperties ?? {}) as JsonSchema[];
  if (values[0] !== undefined) {
    const path = `${prefix}*`;
    fields.push({ path, schema: values[0], stored: storedValues[0], required: false, top: top || path });
  }
  return fields;
}

const grouped = (type: string) => (type.includes(' ') ? `(${type})` : type);

function apiType(schema: JsonSchema): string {
  const anyOf = (schema as { anyOf?: JsonSchema[] }).anyOf;
  if (anyOf) return anyOf.map(apiType).join(' \\| ');
  if (schema.enum) return typeof schema.enum[0];
  if (schema.type === 'array') return `array of ${grouped(apiType(schema.items as JsonSchema))}`;
  if (schema.patternProperties) return 'object (map)';
  return typeof schema.type === 'string' ? schema.type : 'any';
}

function storedType(schema: JsonSchema | undefined): string {
  const node = schema as { bsonType?: string | string[]; anyOf?: JsonSchema[]; items?: JsonSchema } | undefined;
  if (node?.anyOf) return node.anyOf.map(storedType).join(' \\| ');
  if (node?.bsonType === 'array') return `array of ${grouped(storedType(node.items))}`;
  if (node?.bsonType === undefined) return node && 'enum' in node ? 'string' : '';
  return Array.isArray(node.bsonType) ? node.bsonType.join('/') : node.bsonType;
}

const code = (text: unknown) => `\`${String(text).replace(/\|/g, '\\|')}\``;
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function rules(field: Field): string {
  const { schema } = field;
  const said: string[] = [field.required ? 'required' : 'optional'];
  if (schema.enum) said.push(`one of ${schema.enum.map(code).join(', ')}`);
  if (schema.format !== undefined) said.push(`format ${code(schema.format)}`);
  if (schema.pattern !== undefined) said.push(`pattern ${code(schema.pattern)}`);
  if (schema.minLength !== undefined) said.push(`min length ${schema.minLength}`);
  if (schema.maxLength !== undefined) said.push(`max length ${schema.maxLength}`);
  if (schema.minimum !== undefined) said.push(`min ${schema.minimum}`);
  if (schema.maximum !== undefined) said.push(`max ${schema.maximum}`);
  const extra = schema as { minItems?: number; maxItems?: number; uniqueItems?: boolean; maxProperties?: number };
  if (extra.minItems !== undefined) said.push(`min items ${extra.minItems}`);
  if (extra.maxItems !== undefined) said.push(`max items ${extra.maxItems}`);
  if (extra.uniqueItems === true) said.push('items unique');
  if (extra.maxProperties !== undefined) said.push(`max members ${extra.maxProperties}`);
  const names = Object.keys(schema.patternProperties ?? {});
  if (names[0] !== undefined) said.push(`member names ${code(names[0])}`);
  const items = schema.type === 'array' ? (schema.items as JsonSchema) : undefined;
  if (items?.type === 'string' && items.pattern !== undefined) said.push(`each ${code(items.pattern)}`);
  if (items?.type === 'string' && items.maxLength !== undefined) said.push(`each max length ${items.maxLength}`);
  const fallback = (schema as { default?: unknown }).default;
  if (fallback !== undefined) said.push(`default ${code(JSON.stringify(fallback))}`);
  return said.join('; ');
}

function setBy(entity: Entity, field: Field): string {
  if (field.top in entity.writable.properties)
    return entity.immutable.includes(field.top) ? 'client, at creation only' : 'client';
  if (field.top === '_audit') return 'service, stored only (never shown)';
  return 'service';
}

function fieldsTable(entity: Entity): string[] {
  const validator = collectionSpec(entity).validator.$jsonSchema as JsonSchema;
  const fields = fieldsOf(entity.resource, validator);
  // What the document stores beyond the resource (the audit stamp), without its inner members.
  for (const [name, schema] of Object.entries(entity.stored.properties) as [string, JsonSchema][]) {
    if (name !== '_id' && !(name in entity.resource.properties))
      fields.push({ path: name, schema, stored: member(validator, name), required: false, top: name });
  }
  const lines = [
    '| Field | Type | Stored as | Rules | Set by | Description |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const field of fields) {
    const description = cell((field.schema as { description?: string }).description ?? '');
    const name = field.path === 'id' ? '`id` (`_id`)' : code(field.path);
    lines.push(
      `| ${name} | ${apiType(field.schema)} | ${storedType(field.stored)} | ${rules(field)} | ${setBy(entity, field)} | ${description} |`,
    );
  }
  return lines;
}

// --- references ---------------------------------------------------------------------------------

interface Reference {
  from: Entity;
  path: string;
  to: Entity;
  /** The field of `to` the reference holds: its id, or the one field of a unique index (a natural key). */
  by: string;
  /** Whether one document of `from` refers to several of `to` (the path steps through an array). */
  many: boolean;
}

/**
 * References between the entities, by the conventions the declarations follow: a field named
 * `<singular>Id` holding an ObjectId is that entity's id; a field named like another entity's
 * one-field unique key, with the same pattern, holds that natural key.
 */
export function referencesOf(entities: readonly Entity[]): Reference[] {
  const references: Reference[] = [];
  for (const from of entities) {
    for (const field of fieldsOf(from.resource, undefined)) {
      const name = field.path.split('.').at(-1) ?? field.path;
      const many = field.path.includes('.') && hasArrayOnPath(from, field.path);
      for (const to of entities) {
        if (to === from) continue;
        if (field.schema.format === 'objectid' && name === `${to.singular}Id`)
          references.push({ from, path: field.path, to, by: 'id', many });
        const natural = to.indexes.find(
          (index) =>
            index.unique === true &&
            index.partialFilterExpression === undefined &&
            Object.keys(index.key).join() === name,
        );
        const target = member(to.resource, name);
        if (natural && target?.pattern !== undefined && target.pattern === field.schema.pattern)
          references.push({ from, path: field.path, to, by: name, many });
      }
    }
  }
  return references;
}

function hasArrayOnPath(entity: Entity, path: string): boolean {
  let schema = entity.resource as JsonSchema;
  for (const segment of path.split('.').slice(0, -1)) {
    schema = member(schema, segment) ?? schema;
    if (schema.type === 'array') return true;
  }
  return false;
}

const removal = (entity: Entity) =>
  entity.operations.delete === false ? 'never deleted' : `deleting one: ${entity.operations.delete.rule}`;

function diagram(references: Reference[]): string[] {
  const lines = ['```mermaid', 'erDiagram'];
  for (const reference of references) {
    // Left: how many of `to` one `from` names; right: how many `from` name one `to`.
    const left = reference.many ? '}|' : '||';
    lines.push(`  ${reference.to.schemaName} ${left}--o{ ${reference.from.schemaName} : "${reference.path}"`);
  }
  for (const entity of ENTITIES as readonly Entity[]) {
    lines.push(`  ${entity.schemaName} {`, '    ObjectId id PK');
    for (const index of entity.indexes) {
      const [only, ...more] = Object.keys(index.key);
      if (index.unique === true && only !== undefined && more.length === 0)
        lines.push(`    string ${only} UK${index.partialFilterExpression ? ' "when present"' : ''}`);
    }
    for (const reference of references.filter((candidate) => candidate.from === entity))
      lines.push(
        `    ${reference.by === 'id' ? 'ObjectId' : 'string'} ${reference.path.replace(/\./g, '_')} FK` +
          (reference.path.includes('.') ? ` "${reference.path}"` : ''),
      );
    lines.push('  }');
  }
  lines.push('```');
  return lines;
}

// --- one collection --------------------------------------------------------------------------------

function operations(entity: Entity): string {
  const writes = documentWrites(entity);
  const { create } = entity.operations;
  const said = [
    create === true
      ? `created by POST /v1/${entity.collection}`
      : create === false
        ? 'never created through the API'
        : `created by a workflow: ${create.workflow}`,
    writes.replace ? 'replaced by PUT' : 'never replaced',
    writes.patch ? 'merge-patched by PATCH' : 'never patched',
    entity.operations.delete === false ? 'never deleted' : `deleted by DELETE: ${entity.operations.delete.rule}`,
  ];
  return `${said.join('; ')}.`;
}

function indexesTable(entity: Entity): string[] {
  const lines = ['| Name | Keys | Options | Serves |', '| --- | --- | --- | --- |'];
  const collation = entity.collation ? `collation ${code(toLiteral(entity.collation))} (the collection's)` : '';
  for (const { spec, serves } of collectionSpec(entity).indexes) {
    const { name, key, ...rest } = spec as { name: string; key: unknown } & Record<string, unknown>;
    const options = Object.entries(rest).map(([option, value]) =>
      value === true ? option : `${option} ${code(toLiteral(value))}`,
    );
    if (collation) options.push(collation);
    lines.push(`| ${code(name)} | ${code(toLiteral(key))} | ${options.join('; ')} | ${cell(serves)} |`);
  }
  return lines;
}

function lists(entity: Entity): string[] {
  const lines = ['| Filter | Operators |', '| --- | --- |'];
  for (const [field, ops] of Object.entries(entity.filters)) lines.push(`| ${code(field)} | ${ops.join(', ')} |`);
  const sorts = entity.sorts.map((sort) => (sort === entity.defaultSort ? `${code(sort)} (default)` : code(sort)));
  lines.push(
    '',
    `Sorts: ${sorts.join(', ')}, either direction, ties broken by \`_id\`. ` +
      (entity.textSearch ? 'Full-text search: `q`.' : 'No full-text search.'),
  );
  return lines;
}

function validator(entity: Entity): string {
  const schema = collectionSpec(entity).validator.$jsonSchema as JsonSchema;
  const required = (schema.required ?? []).map(code).join(', ');
  return (
    `\`$jsonSchema\`, derived from the stored document by \`toMongoJsonSchema\` (src/data/json-schema.ts): the ` +
    `"Stored as" types and the rules above, no member that is not declared, required ${required}. ` +
    'The migrations install it with validationLevel strict and validationAction error, and the tests hold it ' +
    'to the declaration; `npm run schema:print` prints it.'
  );
}

function ttl(entity: Entity): string {
  const indexes = TTLS[entity.collection] ?? [];
  if (indexes.length === 0) return 'None: documents stay until deleted.';
  return indexes
    .map(
      ({ name, key, expireAfterSeconds }) =>
        `Index ${code(name)} on ${code(toLiteral(key))}, expireAfterSeconds ${expireAfterSeconds}: ` +
        `MongoDB's TTL monitor removes a document ${expireAfterSeconds === 0 ? 'once' : `${expireAfterSeconds} s after`} ` +
        `the time in ${code(Object.keys(key)[0])} has passed.`,
    )
    .join(' ');
}

function shardKey(entity: Entity): string[] {
  const { key, why, uniqueElsewhere, scatterGather } = entity.shardKey;
  const lines = [`${code(toLiteral(key))}. ${why}`, ''];
  for (const [index, how] of Object.entries(uniqueElsewhere))
    lines.push(`- Unique index ${code(index)}, which the key does not prefix: ${how}`);
  if (Object.keys(uniqueElsewhere).length > 0) lines.push('');
  lines.push(
    "Every other query the code issues here holds the key's first field to a value (or a list): it reaches one shard " +
      '(or those owning the values). These reach every shard, or several:',
    '',
    '| Query shapes | Cost |',
    '| --- | --- |',
  );
  for (const { shapes, cost } of scatterGather) lines.push(`| ${shapes.map(code).join(', ')} | ${cell(cost)} |`);
  return lines;
}

function section(entity: Entity, references: Reference[]): string[] {
  const outgoing = references.filter((reference) => reference.from === entity);
  const incoming = references.filter((reference) => reference.to === entity);
  const lines = [
    `## ${entity.collection}`,
    '',
    `${entity.description} ${entity.singular[0]?.toUpperCase()}${entity.singular.slice(1)}s are ${operations(entity)}`,
    '',
  ];
  if (entity.immutable.length > 0)
    lines.push(`Fixed at creation (identity): ${entity.immutable.map(code).join(', ')}.`, '');
  if (entity.collation)
    lines.push(`Collation ${code(toLiteral(entity.collation))}: every index and query of the collection uses it.`, '');
  lines.push('### Fields', '', ...fieldsTable(entity), '');
  if (outgoing.length + incoming.length > 0) {
    lines.push('### References', '');
    for (const { path, to, by } of outgoing)
      lines.push(
        `- ${code(path)} holds a ${to.singular}'s ${code(by)} ([${to.collection}](#${to.collection})); ${removal(to)}.`,
      );
    for (const { from, path, by } of incoming)
      lines.push(
        `- ${from.collection} ${code(path)} holds a ${entity.singular}'s ${code(by)} ([${from.collection}](#${from.collection})).`,
      );
    lines.push('');
  }
  lines.push('### Indexes', '', ...indexesTable(entity), '', '### Lists', '', ...lists(entity), '');
  lines.push('### Validator', '', validator(entity), '', '### TTL', '', ttl(entity), '');
  lines.push('### Shard key', '', ...shardKey(entity), '');
  return lines;
}

// --- the page ----------------------------------------------------------------------------------------

/** The migrations that name a collection in a constant (`= '<name>'`): where its schema is written. */
async function migrationsNaming(name: string): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.js')).sort();
  const naming: string[] = [];
  for (const file of files) {
    if (new RegExp(`=\\s*'${name}'`).test(await readFile(join(MIGRATIONS_DIR, file), 'utf8'))) naming.push(file);
  }
  return naming;
}

async function bookkeeping(): Promise<string[]> {
  const lines = ['| Collection | Named in | Schema, indexes and TTL in |', '| --- | --- | --- |'];
  for (const { name, module } of BOOKKEEPING) {
    const migrations = await migrationsNaming(name);
    const where =
      migrations.length > 0
        ? migrations.map((file) => `[${file}](../migrations/${file})`).join(', ')
        : `migrate-mongo's own, prepared in [${module}](../${module})` +
          (name === MIGRATION_SETTINGS.lockCollectionName
            ? ` (a lock expires ${LOCK_TTL_SECONDS} s after it is taken)`
            : '');
    lines.push(`| ${code(name)} | [${module}](../${module}) | ${where} |`);
  }
  return lines;
}

export async function renderSchemaDoc(): Promise<string> {
  const references = referencesOf(ENTITIES);
  const lines = [
    '# Schema',
    '',
    '<!-- Generated by `npm run schema:docs` from the entity declarations: do not edit. -->',
    '',
    'The collections storekeeper keeps in MongoDB, as `src/domain/entities/` (and `src/domain/audit.ts` for the',
    'audit trail) declare them; `npm run schema:docs` writes this page and CI fails when it is stale',
    '(`npm run schema:docs:check`). The API shows each document with `id` for its `_id`; types are those of the',
    'API (JSON) and, under "Stored as", the BSON types the validator accepts. The shard keys are a plan, not',
    "today's deployment: [docs/scaling.md](scaling.md) says when and how.",
    '',
    ...diagram(references),
    '',
    ...DOCUMENTED.map(
      (entity) => `- [${entity.collection}](#${entity.collection}): ${entity.description.split('.')[0]}.`,
    ),
    "- [The service's other collections](#the-services-other-collections)",
    '',
  ];
  for (const entity of DOCUMENTED) lines.push(...section(entity, references));
  lines.push(
    "## The service's other collections",
    '',
    'Bookkeeping that no entity declares: each is named by a constant in the module that uses it, and its schema',
    'is in the migrations that create it (migrations never import `src/`). None of them is sharded by the plan: each',
    "stays small, on the database's primary shard ([docs/scaling.md](scaling.md)).",
    '',
    ...(await bookkeeping()),
    '',
  );
  return lines.join('\n');
}

generateWhenRun(
  import.meta.url,
  { path: SCHEMA_DOC_FILE, name: 'docs/schema.md', command: 'schema:docs' },
  renderSchemaDoc,
);
