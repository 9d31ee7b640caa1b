// The database's own guard: documents written straight through the driver, past the service,
// are refused when they break the declared rules, and the unique indexes hold.

import { describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import type { TSchema } from 'typebox';
import { Customer, ENTITIES, Order, Product, Stock } from '../../src/domain/entities/index.ts';
import type { Entity } from '../../src/domain/entity.ts';
import { useMigratedDatabase } from '../helpers/app.ts';

const { ObjectId } = mongoose.mongo;
const DOCUMENT_VALIDATION_FAILURE = 121;
const DUPLICATE_KEY = 11000;

type Doc = Record<string, unknown>;

/** A value as it is stored: date-time strings become Dates and objectid strings ObjectIds. */
function toStored(schema: TSchema, value: unknown): unknown {
  const s = schema as Record<string, unknown>;
  if (typeof value === 'string' && s.format === 'date-time') return new Date(value);
  if (typeof value === 'string' && s.format === 'objectid') return new ObjectId(value);
  if (Array.isArray(value) && s.items) return value.map((item) => toStored(s.items as TSchema, item));
  if (value !== null && typeof value === 'object' && s.properties) {
    const properties = s.properties as Record<string, TSchema>;
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, properties[key] ? toStored(properties[key], item) : item]),
    );
  }
  return value;
}

/** The entity's example as a complete stored document, with a fresh _id. */
function validDocument(entity: Entity, overrides: Doc = {}): Doc {
  const now = new Date().toISOString();
  const resource = {
    _id: new ObjectId().toHexString(),
    ...entity.example,
    ...entity.serverExample,
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
  return { ...(toStored(entity.stored, resource) as Doc), ...overrides };
}

describe('the database validates what is written to it', () => {
  const database = useMigratedDatabase('validator');

  const products = () => database.db.collection<Doc>('products');

  it.each(ENTITIES.map((entity) => [entity.collection, entity] as [string, Entity]))(
    'accepts the example %s document',
    async (name, entity) => {
      const document = validDocument(entity);
      await database.db.collection<Doc>(name).insertOne(document);
      expect(await database.db.collection<Doc>(name).findOne({ _id: document._id as mongoose.mongo.ObjectId })).toEqual(
        document,
      );
    },
  );

  const broken: [string, (doc: Doc) => void][] = [
    ['a price amount of the wrong type', (doc) => ((doc.price as Doc).amount = '2499')],
    ['a fractional price amount', (doc) => ((doc.price as Doc).amount = 24.99)],
    ['a negative price', (doc) => ((doc.price as Doc).amount = -1)],
    ['a missing required field', (doc) => delete doc.name],
    ['an unknown field', (doc) => (doc.colour = 'red')],
    ['an unknown field in a nested object', (doc) => ((doc.price as Doc).tax = 0)],
    ['a SKU breaking its pattern', (doc) => (doc.sku = 'tshirt red')],
    ['a date stored as a string', (doc) => (doc.createdAt = '2026-11-25T09:30:00.000Z')],
    ['an id stored as a string', (doc) => (doc._id = new ObjectId().toHexString())],
    ['a status outside the enum', (doc) => (doc.status = 'deleted')],
    ['an attribute name breaking its pattern', (doc) => (doc.attributes = { 'bad name': 1 })],
    ['an attribute value of no allowed type', (doc) => (doc.attributes = { nested: { a: 1 } })],
    ['a repeated tag', (doc) => (doc.tags = ['organic', 'organic'])],
    ['a version of 0', (doc) => (doc.version = 0)],
  ];

  it.each(broken)('refuses a product with %s', async (_what, breakIt) => {
    const document = validDocument(Product, { sku: `BROKEN-${new ObjectId().toHexString().slice(-8).toUpperCase()}` });
    breakIt(document);
    await expect(products().insertOne(document)).rejects.toMatchObject({ code: DOCUMENT_VALIDATION_FAILURE });
  });

  it('refuses an update that breaks the rules, not only inserts', async () => {
    const document = validDocument(Product, { sku: 'UPDATE-1' });
    await products().insertOne(document);
    await expect(
      products().updateOne({ _id: document._id as mongoose.mongo.ObjectId }, { $set: { 'price.amount': -5 } }),
    ).rejects.toMatchObject({
      code: DOCUMENT_VALIDATION_FAILURE,
    });
    await expect(
      products().updateOne({ _id: document._id as mongoose.mongo.ObjectId }, { $unset: { status: '' } }),
    ).rejects.toMatchObject({
      code: DOCUMENT_VALIDATION_FAILURE,
    });
  });

  it('refuses an order whose customerId is a hex string instead of an ObjectId', async () => {
    const order = validDocument(Order, { customerId: '6650f0c2a1b2c3d4e5f60718' });
    await expect(database.db.collection<Doc>('orders').insertOne(order)).rejects.toMatchObject({
      code: DOCUMENT_VALIDATION_FAILURE,
    });
  });

  it('refuses an amount beyond the 32-bit maximum the declaration allows', async () => {
    const tooBig = validDocument(Product, { sku: 'BIG-NUMBER', price: { amount: 2_147_483_648, currency: 'EUR' } });
    await expect(products().insertOne(tooBig)).rejects.toMatchObject({ code: DOCUMENT_VALIDATION_FAILURE });
    await products().insertOne(
      validDocument(Product, { sku: 'MAX-NUMBER', price: { amount: 2_147_483_647, currency: 'EUR' } }),
    );
  });

  it('refuses a second product with the same SKU', async () => {
    await products().insertOne(validDocument(Product, { sku: 'DUPLICATE-1' }));
    await expect(products().insertOne(validDocument(Product, { sku: 'DUPLICATE-1' }))).rejects.toMatchObject({
      code: DUPLICATE_KEY,
    });
  });

  it('lets any number of products go without a GTIN, but never two share one', async () => {
    for (const sku of ['NO-GTIN-1', 'NO-GTIN-2']) {
      const document = validDocument(Product, { sku });
      delete document.gtin;
      await products().insertOne(document);
    }
    await products().insertOne(validDocument(Product, { sku: 'GTIN-1', gtin: '4006381333931' }));
    await expect(
      products().insertOne(validDocument(Product, { sku: 'GTIN-2', gtin: '4006381333931' })),
    ).rejects.toMatchObject({
      code: DUPLICATE_KEY,
    });
  });

  it('treats two e-mails that differ only in case as the same customer', async () => {
    const customers = database.db.collection<Doc>('customers');
    await customers.insertOne(validDocument(Customer, { email: 'grace@example.com' }));
    await expect(customers.insertOne(validDocument(Customer, { email: 'Grace@Example.COM' }))).rejects.toMatchObject({
      code: DUPLICATE_KEY,
    });
    // The collection's collation also makes plain queries case-insensitive.
    expect(await customers.countDocuments({ email: 'GRACE@example.com' })).toBe(1);
  });

  it('refuses a second stock item for the same SKU and warehouse', async () => {
    const stock = database.db.collection<Doc>('stock');
    await stock.insertOne(validDocument(Stock, { sku: 'STOCK-1', warehouse: 'AMS-1' }));
    await stock.insertOne(validDocument(Stock, { sku: 'STOCK-1', warehouse: 'RTM-1' }));
    await expect(stock.insertOne(validDocument(Stock, { sku: 'STOCK-1', warehouse: 'AMS-1' }))).rejects.toMatchObject({
      code: DUPLICATE_KEY,
    });
  });
});
