// docs/schema.md as `npm run schema:docs` renders it: every declared collection has its section, and
// that section names every field, index, filter and sort of the declaration and its shard key;
// the diagram names every entity; the same code renders the same page. What to expect is read from
// the declarations here, not from the generator, so a field the generator stopped walking fails.

import { describe, expect, it } from 'vitest';
import { referencesOf, renderSchemaDoc } from '../../src/cli/schema-docs.ts';
import { AuditEvent } from '../../src/domain/audit.ts';
import { ENTITIES, Customer, Order, Product, Stock } from '../../src/domain/entities/index.ts';
import type { Entity, JsonSchema } from '../../src/domain/entity.ts';
import { toLiteral } from '../../src/cli/print-schema.ts';

const DOCUMENTED: readonly Entity[] = [...ENTITIES, AuditEvent];

/** Every field path of a schema, through nested objects and array items, as dotted paths. */
function paths(schema: JsonSchema, prefix = ''): string[] {
  let object = schema;
  while (object.type === 'array') object = object.items as JsonSchema;
  return Object.entries(object.properties ?? {}).flatMap(([name, child]) => [
    `${prefix}${name}`,
    ...paths(child as JsonSchema, `${prefix}${name}.`),
  ]);
}

describe('docs/schema.md', () => {
  const rendering = renderSchemaDoc();

  function sectionOf(page: string, entity: Entity): string {
    const section = page.split('\n## ').find((part) => part.startsWith(`${entity.collection}\n`));
    if (section === undefined) throw new Error(`no section for ${entity.collection}`);
    return section;
  }

  it('is the same page every time', async () => {
    expect(await renderSchemaDoc()).toBe(await rendering);
  });

  for (const entity of DOCUMENTED) {
    describe(entity.collection, () => {
      it('names every field of the document, nested ones by their dotted path', async () => {
        const section = sectionOf(await rendering, entity);
        const missing = paths(entity.resource as JsonSchema).filter((path) => !section.includes(`| \`${path}\``));
        expect(missing).toEqual([]);
      });

      it('names every index with its keys', async () => {
        const section = sectionOf(await rendering, entity);
        for (const index of entity.indexes)
          expect(section).toContain(`| \`${index.name}\` | \`${toLiteral(index.key)}\``);
      });

      it('names every filter with its operators, every sort, and the shard key with its scatter-gather shapes', async () => {
        const section = sectionOf(await rendering, entity);
        for (const [field, ops] of Object.entries(entity.filters))
          expect(section).toContain(`| \`${field}\` | ${ops.join(', ')} |`);
        for (const sort of entity.sorts) expect(section).toContain(`\`${sort}\``);
        expect(section).toContain(`\`${toLiteral(entity.shardKey.key)}\``);
        for (const shape of entity.shardKey.scatterGather.flatMap((group) => group.shapes))
          expect(section).toContain(`\`${shape}\``);
        for (const index of Object.keys(entity.shardKey.uniqueElsewhere))
          expect(section).toContain(`Unique index \`${index}\``);
      });
    });
  }

  it('draws every entity and the references between them', async () => {
    const page = await rendering;
    const diagram = page.slice(page.indexOf('```mermaid'), page.indexOf('```', page.indexOf('```mermaid') + 3));
    expect(diagram).toContain('erDiagram');
    for (const entity of ENTITIES) expect(diagram).toContain(`  ${entity.schemaName} {`);
    const references = referencesOf(ENTITIES).map(
      ({ from, path, to, by }) => `${from.collection}.${path} -> ${to.collection}.${by}`,
    );
    expect(references.sort()).toEqual(
      ['orders.customerId -> customers.id', 'orders.lines.sku -> products.sku', 'stock.sku -> products.sku'].sort(),
    );
    expect(diagram).toContain(`${Customer.schemaName} ||--o{ ${Order.schemaName} : "customerId"`);
    expect(diagram).toContain(`${Product.schemaName} }|--o{ ${Order.schemaName} : "lines.sku"`);
    expect(diagram).toContain(`${Product.schemaName} ||--o{ ${Stock.schemaName} : "sku"`);
  });

  it('lists the service collections that no entity declares', async () => {
    const page = await rendering;
    for (const name of ['api_keys', 'idempotency_records', 'rate_usage', 'stream_positions', 'service_secrets'])
      expect(page).toContain(`| \`${name}\` |`);
  });
});
