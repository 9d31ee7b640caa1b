// The migrations' snapshot against the declarations: after migrating a fresh database, every
// collection's validator, collation and indexes are exactly what src/domain/entities declares.
// When this fails after a declaration changed, write a migration (npm run schema:print).

import { describe, expect, it } from 'vitest';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import type { Entity, IndexDeclaration } from '../../src/domain/entity.ts';
import { toMongoJsonSchema } from '../../src/data/json-schema.ts';
import { useMigratedDatabase } from '../helpers/app.ts';

/** What the server adds to every index description on its own. */
const VOLATILE = ['v', 'ns', 'textIndexVersion', 'language_override', 'default_language', 'collation'];

type Index = Record<string, unknown> & { name: string; key: Record<string, unknown> };

/**
 * An index as the server lists it, in the declaration's terms: a text index lists its fields as
 * `_fts`/`_ftsx` plus weights, so its declared fields come back from the weights. Keys become
 * entries, because the order of an index's fields matters and object equality ignores it.
 */
function normalizeListed(index: Index): Record<string, unknown> {
  const rest = Object.fromEntries(Object.entries(index).filter(([field]) => !VOLATILE.includes(field)));
  const weights = index.weights as Record<string, number> | undefined;
  const key: [string, unknown][] = [];
  for (const [field, direction] of Object.entries(index.key)) {
    if (field === '_fts')
      key.push(
        ...Object.keys(weights ?? {})
          .sort()
          .map((text): [string, unknown] => [text, 'text']),
      );
    else if (field !== '_ftsx') key.push([field, direction]);
  }
  return { ...rest, key };
}

function normalizeDeclared({ serves: _serves, ...index }: IndexDeclaration): Record<string, unknown> {
  const textFields = Object.keys(index.key).filter((field) => index.key[field] === 'text');
  const key: [string, unknown][] = [];
  // The server lists a text index's fields together where the first one was declared.
  for (const [field, direction] of Object.entries(index.key)) {
    if (direction !== 'text') key.push([field, direction]);
    else if (field === textFields[0])
      key.push(...[...textFields].sort().map((text): [string, unknown] => [text, 'text']));
  }
  const weights =
    textFields.length > 0
      ? { ...Object.fromEntries(textFields.map((field) => [field, 1])), ...index.weights }
      : undefined;
  return { ...index, key, ...(weights ? { weights } : {}) };
}

const byName = (a: { name?: unknown }, b: { name?: unknown }) => String(a.name).localeCompare(String(b.name));

describe('the migrated schema matches the entity declarations', () => {
  const database = useMigratedDatabase('schema_drift');

  it('creates a collection for every entity and nothing else besides the bookkeeping (keys, audit, idempotency, migrations, rate usage, secrets, stream positions)', async () => {
    const names = (await database.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    // The bookkeeping collections are no entities: their schemas live in their migrations.
    expect(names).toEqual(
      [
        ...ENTITIES.map((e) => e.collection),
        'api_keys',
        'audit_events',
        'idempotency_records',
        'migrations_changelog',
        'migrations_lock',
        'rate_usage',
        'service_secrets',
        'stream_positions',
      ].sort(),
    );
  });

  describe.each(ENTITIES.map((entity) => [entity.collection, entity] as [string, Entity]))('%s', (name, entity) => {
    it('has the declaration as its strict validator', async () => {
      const [info] = await database.db.listCollections({ name }).toArray();
      const options = (info as { options: Record<string, unknown> }).options;
      expect(options.validator).toEqual({ $jsonSchema: toMongoJsonSchema(entity.stored) });
      expect(options.validationLevel).toBe('strict');
      expect(options.validationAction).toBe('error');
    });

    it('has the declared collation, inherited by every index', async () => {
      const [info] = await database.db.listCollections({ name }).toArray();
      const collation = (info as { options: { collation?: Record<string, unknown> } }).options.collation;
      const indexes = (await database.db.collection(name).listIndexes().toArray()) as Index[];
      if (entity.collation === undefined) {
        expect(collation).toBeUndefined();
        for (const index of indexes) expect(index.collation, index.name).toBeUndefined();
      } else {
        expect(collation).toMatchObject(entity.collation);
        for (const index of indexes) expect(index.collation, index.name).toMatchObject(entity.collation);
      }
    });

    it('has exactly the declared indexes', async () => {
      const listed = ((await database.db.collection(name).listIndexes().toArray()) as Index[]).filter(
        (index) => index.name !== '_id_',
      );
      expect(listed.map(normalizeListed).sort(byName)).toEqual(entity.indexes.map(normalizeDeclared).sort(byName));
    });
  });
});
