// The first schema: creates products, customers, stock and orders with their validators,
// collation and indexes. A snapshot of src/domain/entities printed by `npm run schema:print`
// (migrations never import src/, so this file keeps meaning what it meant when it ran). When a
// declaration changes, write a new migration; test/data/schema-drift.test.ts says when one is due.

const COLLECTIONS = [
  {
    name: 'products',
    validator: {
      $jsonSchema: {
        bsonType: 'object',
        required: [
          '_id',
          'sku',
          'name',
          'price',
          'category',
          'tags',
          'attributes',
          'status',
          'version',
          'createdAt',
          'updatedAt',
        ],
        properties: {
          _id: { bsonType: 'objectId' },
          sku: {
            bsonType: 'string',
            pattern: '^[A-Z0-9][A-Z0-9-]{2,31}$',
            description: 'Stock-keeping unit: 3-32 upper-case letters, digits and dashes.',
          },
          name: { bsonType: 'string', minLength: 1, maxLength: 200, description: 'Display name; searched by q.' },
          description: { bsonType: 'string', maxLength: 5000, description: 'Long description; searched by q.' },
          gtin: {
            bsonType: 'string',
            pattern: '^[0-9]{8,14}$',
            description: 'Barcode (GTIN/EAN), unique when present.',
          },
          price: {
            bsonType: 'object',
            required: ['amount', 'currency'],
            properties: {
              amount: {
                bsonType: ['int', 'long'],
                minimum: 0,
                maximum: 2_147_483_647,
                description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
              },
              currency: { bsonType: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.' },
            },
            additionalProperties: false,
            description: 'Unit price.',
          },
          category: {
            bsonType: 'string',
            maxLength: 64,
            pattern: '^[a-z0-9]+(-[a-z0-9]+)*$',
            description: 'Category slug.',
          },
          tags: {
            bsonType: 'array',
            items: { bsonType: 'string', maxLength: 40, pattern: '^[a-z0-9]+(-[a-z0-9]+)*$' },
            maxItems: 20,
            uniqueItems: true,
            description: 'Lower-case tags.',
          },
          attributes: {
            bsonType: 'object',
            patternProperties: {
              '^[a-zA-Z][a-zA-Z0-9_]{0,39}$': {
                anyOf: [
                  { bsonType: 'string', maxLength: 200 },
                  { bsonType: ['int', 'long', 'double', 'decimal'] },
                  { bsonType: 'bool' },
                  {
                    bsonType: 'array',
                    items: {
                      anyOf: [
                        { bsonType: 'string', maxLength: 200 },
                        { bsonType: ['int', 'long', 'double', 'decimal'] },
                      ],
                    },
                    maxItems: 20,
                  },
                ],
              },
            },
            additionalProperties: false,
            maxProperties: 50,
            description:
              'Free-form attributes: names of letters, digits and _; values strings, numbers, booleans or lists.',
          },
          status: { enum: ['draft', 'active', 'archived'], description: 'Only active products can be ordered.' },
          version: {
            bsonType: ['int', 'long'],
            minimum: 1,
            description: 'Incremented by every write; the ETag is derived from it.',
          },
          createdAt: { bsonType: 'date', description: 'When the document was created.' },
          updatedAt: { bsonType: 'date', description: 'When the document last changed.' },
        },
        additionalProperties: false,
      },
    },
    indexes: [
      // uniqueness of SKUs; lookups by sku
      { name: 'sku_unique', key: { sku: 1 }, unique: true },
      // uniqueness of barcodes among products that have one (partial: products without a GTIN cost nothing)
      {
        name: 'gtin_unique_when_present',
        key: { gtin: 1 },
        unique: true,
        partialFilterExpression: { gtin: { $exists: true } },
      },
      // a category page sorted by price
      { name: 'category_price', key: { category: 1, 'price.amount': 1, _id: 1 } },
      // products of a status, by last change
      { name: 'status_updated', key: { status: 1, updatedAt: 1, _id: 1 } },
      // the default listing, newest or oldest first
      { name: 'created', key: { createdAt: 1, _id: 1 } },
      // sync consumers: what changed since
      { name: 'updated', key: { updatedAt: 1, _id: 1 } },
      // alphabetical listing
      { name: 'name', key: { name: 1, _id: 1 } },
      // sort by price across the catalog
      { name: 'price', key: { 'price.amount': 1, _id: 1 } },
      // products carrying a tag (multikey)
      { name: 'tags', key: { tags: 1 } },
      // full-text search (q) on name and description
      { name: 'text', key: { name: 'text', description: 'text' }, weights: { name: 5, description: 1 } },
    ],
  },
  {
    name: 'customers',
    collation: { locale: 'en', strength: 2 },
    validator: {
      $jsonSchema: {
        bsonType: 'object',
        required: ['_id', 'email', 'name', 'addresses', 'marketingOptIn', 'stats', 'version', 'createdAt', 'updatedAt'],
        properties: {
          _id: { bsonType: 'objectId' },
          email: { bsonType: 'string', maxLength: 254, description: 'Unique, compared without regard to case.' },
          name: { bsonType: 'string', minLength: 1, maxLength: 200 },
          phone: { bsonType: 'string', pattern: '^\\+[1-9][0-9]{6,14}$', description: 'E.164 phone number.' },
          addresses: {
            bsonType: 'array',
            items: {
              bsonType: 'object',
              required: ['line1', 'city', 'postalCode', 'country'],
              properties: {
                label: { bsonType: 'string', maxLength: 40 },
                line1: { bsonType: 'string', minLength: 1, maxLength: 200 },
                line2: { bsonType: 'string', maxLength: 200 },
                city: { bsonType: 'string', minLength: 1, maxLength: 100 },
                region: { bsonType: 'string', maxLength: 100 },
                postalCode: { bsonType: 'string', minLength: 1, maxLength: 20 },
                country: { bsonType: 'string', pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 code.' },
              },
              additionalProperties: false,
            },
            maxItems: 10,
          },
          marketingOptIn: { bsonType: 'bool' },
          stats: {
            bsonType: 'object',
            required: ['orderCount', 'spent'],
            properties: {
              orderCount: { bsonType: ['int', 'long'], minimum: 0 },
              spent: {
                bsonType: 'object',
                patternProperties: { '^[A-Z]{3}$': { bsonType: ['int', 'long'], minimum: 0 } },
                additionalProperties: false,
                description: 'Total spent per currency, in minor units.',
              },
              lastOrderAt: { bsonType: 'date' },
            },
            additionalProperties: false,
            description: 'Maintained by the order workflow.',
          },
          version: {
            bsonType: ['int', 'long'],
            minimum: 1,
            description: 'Incremented by every write; the ETag is derived from it.',
          },
          createdAt: { bsonType: 'date', description: 'When the document was created.' },
          updatedAt: { bsonType: 'date', description: 'When the document last changed.' },
        },
        additionalProperties: false,
      },
    },
    indexes: [
      // one customer per e-mail, case-insensitive (collection collation); login lookups
      { name: 'email_unique', key: { email: 1 }, unique: true },
      // the default listing
      { name: 'created', key: { createdAt: 1, _id: 1 } },
      // sync consumers: what changed since
      { name: 'updated', key: { updatedAt: 1, _id: 1 } },
      // alphabetical listing, case-insensitive
      { name: 'name', key: { name: 1, _id: 1 } },
      // customers with an address in a country (multikey)
      { name: 'country', key: { 'addresses.country': 1 } },
      // customers who ordered, by order count (partial: most sign-ups never order)
      {
        name: 'buyers_by_order_count',
        key: { 'stats.orderCount': 1, _id: 1 },
        partialFilterExpression: { 'stats.orderCount': { $gt: 0 } },
      },
    ],
  },
  {
    name: 'stock',
    validator: {
      $jsonSchema: {
        bsonType: 'object',
        required: ['_id', 'sku', 'warehouse', 'available', 'reserved', 'shipped', 'version', 'createdAt', 'updatedAt'],
        properties: {
          _id: { bsonType: 'objectId' },
          sku: {
            bsonType: 'string',
            pattern: '^[A-Z0-9][A-Z0-9-]{2,31}$',
            description: 'Stock-keeping unit: 3-32 upper-case letters, digits and dashes.',
          },
          warehouse: { bsonType: 'string', pattern: '^[A-Z0-9][A-Z0-9-]{1,15}$', description: 'Warehouse code.' },
          available: {
            bsonType: ['int', 'long'],
            minimum: 0,
            maximum: 1_000_000_000,
            description: 'Units on the shelf that orders can still reserve.',
          },
          reorderLevel: {
            bsonType: ['int', 'long'],
            minimum: 0,
            maximum: 1_000_000_000,
            description: 'Below this many available units the item counts as low on stock.',
          },
          reserved: {
            bsonType: ['int', 'long'],
            minimum: 0,
            maximum: 1_000_000_000,
            description: 'Units reserved by placed or paid orders, not yet shipped.',
          },
          shipped: {
            bsonType: ['int', 'long'],
            minimum: 0,
            maximum: 1_000_000_000,
            description: 'Units that left the warehouse with shipped orders.',
          },
          version: {
            bsonType: ['int', 'long'],
            minimum: 1,
            description: 'Incremented by every write; the ETag is derived from it.',
          },
          createdAt: { bsonType: 'date', description: 'When the document was created.' },
          updatedAt: { bsonType: 'date', description: 'When the document last changed.' },
        },
        additionalProperties: false,
      },
    },
    indexes: [
      // one stock item per SKU and warehouse; all stock of a SKU
      { name: 'sku_warehouse_unique', key: { sku: 1, warehouse: 1 }, unique: true },
      // a warehouse's items by how many are left (low stock)
      { name: 'warehouse_available', key: { warehouse: 1, available: 1, _id: 1 } },
      // sort by units available
      { name: 'available', key: { available: 1, _id: 1 } },
      // the default listing
      { name: 'created', key: { createdAt: 1, _id: 1 } },
      // sync consumers: what changed since
      { name: 'updated', key: { updatedAt: 1, _id: 1 } },
    ],
  },
  {
    name: 'orders',
    validator: {
      $jsonSchema: {
        bsonType: 'object',
        required: [
          '_id',
          'customerId',
          'warehouse',
          'lines',
          'totals',
          'status',
          'history',
          'version',
          'createdAt',
          'updatedAt',
        ],
        properties: {
          _id: { bsonType: 'objectId' },
          customerId: { bsonType: 'objectId', description: 'The customer who ordered.' },
          warehouse: { bsonType: 'string', pattern: '^[A-Z0-9][A-Z0-9-]{1,15}$', description: 'Warehouse code.' },
          lines: {
            bsonType: 'array',
            items: {
              bsonType: 'object',
              required: ['sku', 'name', 'quantity', 'unitPrice', 'lineTotal'],
              properties: {
                sku: {
                  bsonType: 'string',
                  pattern: '^[A-Z0-9][A-Z0-9-]{2,31}$',
                  description: 'Stock-keeping unit: 3-32 upper-case letters, digits and dashes.',
                },
                name: { bsonType: 'string', maxLength: 200, description: 'Product name when ordered.' },
                quantity: { bsonType: ['int', 'long'], minimum: 1, maximum: 10_000 },
                unitPrice: {
                  bsonType: 'object',
                  required: ['amount', 'currency'],
                  properties: {
                    amount: {
                      bsonType: ['int', 'long'],
                      minimum: 0,
                      maximum: 2_147_483_647,
                      description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
                    },
                    currency: { bsonType: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.' },
                  },
                  additionalProperties: false,
                  description: 'Price of one unit when ordered.',
                },
                lineTotal: {
                  bsonType: 'object',
                  required: ['amount', 'currency'],
                  properties: {
                    amount: {
                      bsonType: ['int', 'long'],
                      minimum: 0,
                      maximum: 2_147_483_647,
                      description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
                    },
                    currency: { bsonType: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.' },
                  },
                  additionalProperties: false,
                  description: 'quantity x unitPrice.',
                },
              },
              additionalProperties: false,
            },
            minItems: 1,
            maxItems: 100,
          },
          totals: {
            bsonType: 'object',
            required: ['itemCount', 'subtotal'],
            properties: {
              itemCount: {
                bsonType: ['int', 'long'],
                minimum: 0,
                maximum: 1_000_000_000,
                description: 'Units over all lines.',
              },
              subtotal: {
                bsonType: 'object',
                required: ['amount', 'currency'],
                properties: {
                  amount: {
                    bsonType: ['int', 'long'],
                    minimum: 0,
                    maximum: 2_147_483_647,
                    description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
                  },
                  currency: { bsonType: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.' },
                },
                additionalProperties: false,
                description: 'Sum of the line totals.',
              },
            },
            additionalProperties: false,
          },
          status: { enum: ['placed', 'paid', 'shipped', 'delivered', 'cancelled'] },
          history: {
            bsonType: 'array',
            items: {
              bsonType: 'object',
              required: ['status', 'at'],
              properties: {
                status: { enum: ['placed', 'paid', 'shipped', 'delivered', 'cancelled'] },
                at: { bsonType: 'date' },
                note: { bsonType: 'string', maxLength: 500 },
              },
              additionalProperties: false,
            },
            description: 'Every status the order went through, oldest first.',
          },
          version: {
            bsonType: ['int', 'long'],
            minimum: 1,
            description: 'Incremented by every write; the ETag is derived from it.',
          },
          createdAt: { bsonType: 'date', description: 'When the document was created.' },
          updatedAt: { bsonType: 'date', description: 'When the document last changed.' },
        },
        additionalProperties: false,
      },
    },
    indexes: [
      // a customer's order history, newest first
      { name: 'customer_created', key: { customerId: 1, createdAt: 1, _id: 1 } },
      // work queues: paid orders to ship, oldest first
      { name: 'status_created', key: { status: 1, createdAt: 1, _id: 1 } },
      // orders containing a SKU (and whether a product may be deleted)
      { name: 'line_sku', key: { 'lines.sku': 1 } },
      // the default listing
      { name: 'created', key: { createdAt: 1, _id: 1 } },
      // sync consumers: what changed since
      { name: 'updated', key: { updatedAt: 1, _id: 1 } },
      // largest orders first
      { name: 'subtotal', key: { 'totals.subtotal.amount': 1, _id: 1 } },
    ],
  },
];

const VALIDATION = { validationLevel: 'strict', validationAction: 'error' };

/**
 * Safe to run again: an existing collection gets the validator through collMod instead, and
 * createIndexes leaves identical indexes alone (a different index under a declared name fails).
 * @param db {import('mongodb').Db}
 */
export const up = async (db) => {
  const existing = new Map((await db.listCollections().toArray()).map((info) => [info.name, info]));
  // One collection at a time: concurrent creations of one collection are more than some mongod
  // builds survive, and the order keeps failures easy to read.
  for (const { name, collation, validator, indexes } of COLLECTIONS) {
    const found = existing.get(name);
    if (found === undefined) {
      await db.createCollection(name, { validator, ...VALIDATION, ...(collation ? { collation } : {}) });
    } else {
      // A collation is fixed at creation; a collection without the declared one would compare
      // (and enforce uniqueness) differently, so it cannot be adopted in place.
      const actual = found.options?.collation;
      const want = collation ? `${collation.locale}/${collation.strength}` : 'simple';
      const have = actual ? `${actual.locale}/${actual.strength}` : 'simple';
      if (have !== want) {
        throw new Error(
          `collection ${name} exists with collation ${have}, not ${want}: ` +
            'copy its documents into a collection created with the declared collation',
        );
      }
      await db.command({ collMod: name, validator, ...VALIDATION });
    }
    await db.collection(name).createIndexes(indexes);
  }
};

/** Drops the four collections, documents included. @param db {import('mongodb').Db} */
export const down = async (db) => {
  for (const { name } of [...COLLECTIONS].reverse()) {
    await db.collection(name).drop();
  }
};
