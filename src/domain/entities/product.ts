// Products: the catalog. Identified by a unique SKU; free-form attributes are where a document
// store earns its keep (sizes, materials, voltages differ by category). A product that orders
// refer to is archived instead of deleted, so order history keeps its meaning.

import { Type } from 'typebox';
import { defineEntity, RANGE, pageIndex } from '../entity.ts';
import type { Deletion } from '../deletion.ts';
import { Money, Sku } from '../types.ts';

export const PRODUCT_STATUSES = ['draft', 'active', 'archived'] as const;

const AttributeValue = Type.Union([
  Type.String({ maxLength: 200 }),
  Type.Number(),
  Type.Boolean(),
  Type.Array(Type.Union([Type.String({ maxLength: 200 }), Type.Number()]), { maxItems: 20 }),
]);

export const Product = defineEntity({
  collection: 'products',
  singular: 'product',
  schemaName: 'Product',
  description: 'A product of the catalog.',
  writable: Type.Object(
    {
      sku: Sku(),
      name: Type.String({ minLength: 1, maxLength: 200, description: 'Display name; searched by q.' }),
      description: Type.Optional(Type.String({ maxLength: 5000, description: 'Long description; searched by q.' })),
      gtin: Type.Optional(
        Type.String({
          pattern: '^[0-9]{8,14}$',
          description: 'Barcode (GTIN/EAN), unique when present.',
          examples: ['4006381333931'],
        }),
      ),
      price: Money('Unit price.'),
      category: Type.String({ pattern: '^[a-z0-9]+(-[a-z0-9]+)*$', maxLength: 64, description: 'Category slug.' }),
      tags: Type.Array(Type.String({ pattern: '^[a-z0-9]+(-[a-z0-9]+)*$', maxLength: 40 }), {
        maxItems: 20,
        uniqueItems: true,
        default: [],
        description: 'Lower-case tags.',
      }),
      attributes: Type.Record(Type.String({ pattern: '^[a-zA-Z][a-zA-Z0-9_]{0,39}$' }), AttributeValue, {
        maxProperties: 50,
        additionalProperties: false,
        default: {},
        description:
          'Free-form attributes: names of letters, digits and _; values strings, numbers, booleans or lists.',
      }),
      status: Type.Enum(PRODUCT_STATUSES, { default: 'draft', description: 'Only active products can be ordered.' }),
    },
    { additionalProperties: false },
  ),
  server: Type.Object({}, { additionalProperties: false }),
  immutable: ['sku'],
  filters: {
    sku: ['eq', 'in', 'prefix'],
    name: ['prefix'],
    gtin: ['eq', 'exists'],
    status: ['eq', 'ne', 'in'],
    category: ['eq', 'in'],
    tags: ['eq', 'in', 'all'],
    'price.amount': ['eq', ...RANGE],
    'price.currency': ['eq'],
    createdAt: [...RANGE],
    updatedAt: [...RANGE],
  },
  sorts: ['createdAt', 'updatedAt', 'name', 'price.amount'],
  defaultSort: 'createdAt',
  textSearch: true,
  indexes: [
    { name: 'sku_unique', key: { sku: 1 }, unique: true, serves: 'uniqueness of SKUs; lookups by sku' },
    {
      name: 'gtin_unique_when_present',
      key: { gtin: 1 },
      unique: true,
      partialFilterExpression: { gtin: { $exists: true } },
      serves: 'uniqueness of barcodes among products that have one (partial: products without a GTIN cost nothing)',
    },
    pageIndex('category_price', ['category', 'price.amount'], 'a category page sorted by price'),
    pageIndex('status_updated', ['status', 'updatedAt'], 'products of a status, by last change'),
    pageIndex('created', 'createdAt', 'the default listing, newest or oldest first'),
    pageIndex('updated', 'updatedAt', 'sync consumers: what changed since'),
    pageIndex('name', 'name', 'alphabetical listing'),
    pageIndex('price', 'price.amount', 'sort by price across the catalog'),
    { name: 'tags', key: { tags: 1 }, serves: 'products carrying a tag (multikey)' },
    {
      name: 'text',
      key: { name: 'text', description: 'text' },
      weights: { name: 5, description: 1 },
      serves: 'full-text search (q) on name and description',
    },
  ],
  operations: {
    create: true,
    replace: true,
    patch: true,
    delete: {
      rule: 'a product that orders refer to is archived (status archived) instead of deleted',
      decide: async (product, references): Promise<Deletion> =>
        (await references.ordersWithSku(product.sku))
          ? { action: 'archive', changes: { status: 'archived' } }
          : { action: 'delete' },
    },
  },
  serverDefaults: {},
  example: {
    sku: 'TSHIRT-RED-M',
    name: 'Organic cotton T-shirt, red, M',
    description: 'Heavyweight organic cotton, relaxed fit.',
    price: { amount: 2499, currency: 'EUR' },
    category: 'apparel',
    tags: ['organic', 'summer'],
    attributes: { color: 'red', size: 'M', material: 'cotton', weightGrams: 180 },
    status: 'active',
  },
  serverExample: {},
});
