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
  // The catalog is the last collection a shop needs to shard (docs/scaling.md); when it does:
  shardKey: {
    key: { sku: 1 },
    why:
      'The SKU is how everything else names a product: an order prices its lines by SKU ($in), a restock ' +
      'checks the SKU exists, the importer matches on it, and sku_unique stays unique across shards only as the ' +
      "key's prefix. One document per value (the catalog's size in cardinality), chosen by people rather than " +
      'generated, so inserts do not pile onto the last chunk (an import sorted by SKU fills one range at a time, ' +
      'which the balancer then moves). Ranged rather than hashed, so that a SKU prefix reaches only the shards ' +
      'holding that range. Immutable, so a document never moves between shards.',
    uniqueElsewhere: {
      gtin_unique_when_present:
        'Recreated without unique when products are sharded (MongoDB refuses to shard a collection with a unique ' +
        'index the key does not prefix). A GTIN then stays unique through a proxy collection product_gtins ' +
        '(_id: the GTIN, productId), unsharded, written in the same transaction as every product write that sets, ' +
        'changes or drops a gtin: such creates, replaces and patches run as transactions instead of atomic ' +
        'writes (deletes already are).',
    },
    scatterGather: [
      {
        shapes: ['_id'],
        cost:
          'A product by id (GET, the document cache filling, a write reading the version it changes): one _id ' +
          'index lookup on every shard. The document cache answers repeated reads without MongoDB.',
      },
      {
        shapes: ['_id + version'],
        cost:
          'Replace, patch, archive and delete by id (findOneAndReplace and deleteOne on {_id, version}). When ' +
          'sharded, the repository adds the SKU of the version it read (immutable, so the condition is the same) ' +
          'and each write reaches one shard; without it the write is broadcast, or refused by servers that ' +
          'require the key in a findAndModify.',
      },
      {
        shapes: ['_audit.id + _id'],
        cost:
          'After an atomic write whose outcome MongoDB did not report, the unit of work looks for its stamp: ' +
          'every shard, only while MongoDB is failing.',
      },
      {
        shapes: ['sku'],
        cost:
          'sku[prefix]: a range of the ranged key, not an equality: mongos sends it to the shards owning chunks ' +
          'in that range, usually one.',
      },
      {
        shapes: ['gtin'],
        cost:
          'A barcode lookup: every shard answers from its gtin index, one match overall. Once product_gtins ' +
          'exists, a GTIN resolves to an id there first.',
      },
      {
        shapes: ['name', 'status', 'category', 'tags', 'price.amount', 'price.currency', 'createdAt', 'updatedAt'],
        cost:
          'Catalog lists (category pages, status, tags, price, name prefix, changes since): every shard runs the ' +
          "page's query on its own index and returns at most a page; mongos merges them in sort order. The work " +
          'grows with the number of shards, not with the catalog.',
      },
      {
        shapes: ['sort createdAt', 'sort updatedAt', 'sort name', 'sort price.amount'],
        cost: 'Unfiltered lists: the first page of each shard, merged by mongos in the sort order.',
      },
      {
        shapes: ['$text'],
        cost:
          'Full-text search (q): every shard searches its text index; mongos merges what they return. Text ' +
          'search cannot be targeted by a SKU key.',
      },
      {
        shapes: ['sort sku'],
        cost:
          "The importer's report: every product in SKU order, read as one stream merged from all shards; an " +
          "operator's reconciliation, not a request.",
      },
    ],
  },
  operations: {
    create: true,
    replace: true,
    patch: true,
    delete: {
      // A stock item names its product by SKU: deleting the product would leave it naming none.
      rule: 'a product that orders or stock items refer to is archived (status archived) instead of deleted',
      decide: async (product, references): Promise<Deletion> =>
        (await references.ordersWithSku(product.sku)) || (await references.stockWithSku(product.sku))
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
