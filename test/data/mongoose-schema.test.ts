import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import type { Entity } from '../../src/domain/entity.ts';
import { ENTITIES, Product } from '../../src/domain/entities/index.ts';
import { toMongooseSchema } from '../../src/data/mongoose-schema.ts';

type JsonSchema = Record<string, any>;

/** Every leaf path of a JSON schema with whether it is required, as Mongoose names paths. */
function jsonPaths(schema: JsonSchema, prefix = ''): Map<string, boolean> {
  const paths = new Map<string, boolean>();
  const required = new Set<string>(schema.required ?? []);
  for (const [name, child] of Object.entries(schema.properties as Record<string, JsonSchema>)) {
    if (name === '_id') continue;
    const path = `${prefix}${name}`;
    if (child.type === 'object' && child.properties && !child.patternProperties) {
      // Mongoose marks the nested path itself, and each of its own paths.
      paths.set(path, required.has(name));
      for (const [inner, isRequired] of jsonPaths(child, `${path}.`)) paths.set(inner, isRequired);
    } else {
      paths.set(path, required.has(name));
    }
  }
  return paths;
}

function mongoosePaths(schema: mongoose.Schema, prefix = ''): Map<string, boolean> {
  const paths = new Map<string, boolean>();
  schema.eachPath((path, type) => {
    if (path === '_id') return;
    const full = `${prefix}${path}`;
    paths.set(full, Boolean((type as { isRequired?: boolean }).isRequired));
    const nested = (type as { schema?: mongoose.Schema; $isSingleNested?: boolean }).schema;
    if (nested && (type as { $isSingleNested?: boolean }).$isSingleNested) {
      for (const [inner, isRequired] of mongoosePaths(nested, `${full}.`)) paths.set(inner, isRequired);
    }
  });
  return paths;
}

describe('the Mongoose models agree with the entity declarations field by field', () => {
  for (const entity of ENTITIES as readonly Entity[]) {
    it(`${entity.collection}: same fields, same required flags`, () => {
      const schema = toMongooseSchema(entity.stored, { collection: entity.collection, collation: entity.collation });
      expect(Object.fromEntries(mongoosePaths(schema))).toEqual(
        Object.fromEntries(jsonPaths(entity.stored as JsonSchema)),
      );
    });
  }

  it('the model refuses what the declaration refuses, before any write', async () => {
    const connection = mongoose.createConnection();
    const Model = connection.model('ProductCheck', toMongooseSchema(Product.stored, { collection: 'products' }));
    const now = new Date();
    const valid = { ...Product.example, version: 1, createdAt: now, updatedAt: now };
    await expect(new Model(valid).validate()).resolves.toBeUndefined();
    const invalid = new Model({
      ...valid,
      sku: 'lower case',
      price: { amount: 1.5, currency: 'EUR' },
      attributes: { 'bad key': 1 },
    });
    const error = await invalid.validate().then(
      () => undefined,
      (refused: unknown) => refused as mongoose.Error.ValidationError,
    );
    expect(Object.keys(error?.errors ?? {}).sort()).toEqual(['attributes', 'price.amount', 'sku']);
    expect(() => new Model({ ...valid, unknownField: 1 })).toThrow(/not in schema/);
    await connection.close();
  });
});
