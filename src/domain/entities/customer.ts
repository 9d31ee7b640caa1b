// Customers: unique by e-mail regardless of case (the collection's collation makes the unique
// index and every query case-insensitive), with embedded addresses and running order stats
// that only the order workflow changes.

import { Type } from 'typebox';
import { defineEntity, RANGE, pageIndex } from '../entity.ts';
import { customerHasOrders } from '../deletion.ts';
import { DateTime, Money } from '../types.ts';

const Address = Type.Object(
  {
    label: Type.Optional(Type.String({ maxLength: 40, examples: ['home'] })),
    line1: Type.String({ minLength: 1, maxLength: 200 }),
    line2: Type.Optional(Type.String({ maxLength: 200 })),
    city: Type.String({ minLength: 1, maxLength: 100 }),
    region: Type.Optional(Type.String({ maxLength: 100 })),
    postalCode: Type.String({ minLength: 1, maxLength: 20 }),
    country: Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 code.' }),
  },
  { additionalProperties: false },
);

export const Customer = defineEntity({
  collection: 'customers',
  singular: 'customer',
  schemaName: 'Customer',
  description: 'A customer of the shop.',
  writable: Type.Object(
    {
      email: Type.String({
        format: 'email',
        maxLength: 254,
        description: 'Unique, compared without regard to case.',
      }),
      name: Type.String({ minLength: 1, maxLength: 200 }),
      phone: Type.Optional(Type.String({ pattern: '^\\+[1-9][0-9]{6,14}$', description: 'E.164 phone number.' })),
      addresses: Type.Array(Address, { maxItems: 10, default: [] }),
      marketingOptIn: Type.Boolean({ default: false }),
    },
    { additionalProperties: false },
  ),
  server: Type.Object(
    {
      stats: Type.Object(
        {
          orderCount: Type.Integer({ minimum: 0 }),
          // An array of Money rather than a record keyed by currency: an array's entries can be
          // indexed and queried ("spent at least X in C"), keys of a record cannot.
          spent: Type.Array(Money('Total spent in one currency.'), {
            maxItems: 20,
            description: 'Total spent per currency, at most one entry per currency.',
          }),
          lastOrderAt: Type.Optional(DateTime()),
        },
        { additionalProperties: false, description: 'Maintained by the order workflow.' },
      ),
    },
    { additionalProperties: false },
  ),
  immutable: [],
  // No filter on stats.spent: the list API compiles each clause on its own, and on an array of
  // entries `stats.spent.currency=EUR&stats.spent.amount[gte]=X` would match a customer whose EUR
  // entry is small when another currency's entry is large. The query needs one $elemMatch.
  filters: {
    email: ['eq', 'in', 'prefix'],
    name: ['eq'],
    marketingOptIn: ['eq'],
    'addresses.country': ['eq', 'in'],
    'stats.orderCount': ['eq', ...RANGE],
    createdAt: [...RANGE],
    updatedAt: [...RANGE],
  },
  sorts: ['createdAt', 'updatedAt', 'name'],
  defaultSort: 'createdAt',
  textSearch: false,
  collation: { locale: 'en', strength: 2 },
  indexes: [
    {
      name: 'email_unique',
      key: { email: 1 },
      unique: true,
      serves: 'one customer per e-mail, case-insensitive (collection collation); login lookups',
    },
    pageIndex('created', 'createdAt', 'the default listing'),
    pageIndex('updated', 'updatedAt', 'sync consumers: what changed since'),
    pageIndex('name', 'name', 'alphabetical listing, case-insensitive'),
    { name: 'country', key: { 'addresses.country': 1 }, serves: 'customers with an address in a country (multikey)' },
    {
      name: 'buyers_by_order_count',
      key: { 'stats.orderCount': 1, _id: 1 },
      partialFilterExpression: { 'stats.orderCount': { $gt: 0 } },
      serves: 'customers who ordered, by order count (partial: most sign-ups never order)',
    },
    {
      name: 'spent_by_currency',
      key: { 'stats.spent.currency': 1, 'stats.spent.amount': 1 },
      serves:
        "customers who spent at least X in currency C, as { 'stats.spent': { $elemMatch: { currency: C, " +
        'amount: { $gte: X } } } } (multikey)',
    },
  ],
  shardKey: {
    key: { _id: 'hashed' },
    why:
      'Every workflow reaches a customer by id: placing an order checks the customer exists and counts the ' +
      'purchase in its stats (findOneAndUpdate on _id, in the transaction), and the API reads, replaces, patches ' +
      'and deletes by id. ObjectIds grow with time, so a ranged _id would send every sign-up to the last chunk; ' +
      'hashed spreads them, one document per value. The e-mail is no candidate: it changes (a PATCH would move ' +
      "the document between shards), the key's index must use the simple collation where this collection's is " +
      'case-insensitive, and mongos cannot target a string key under that collation; ObjectIds are not compared ' +
      'by collation.',
    uniqueElsewhere: {
      email_unique:
        'Recreated without unique when customers are sharded. One customer per e-mail, regardless of case, then ' +
        "holds through a proxy collection customer_emails with this collection's collation and a unique index on " +
        'email (unsharded: one small document per customer), written in the same transaction as every create, ' +
        'replace or patch that sets or changes an e-mail, which then run as transactions instead of atomic writes.',
    },
    scatterGather: [
      {
        shapes: ['email'],
        cost:
          'A customer by e-mail (email[eq|in|prefix], the importer matching customers and the customers its ' +
          'orders name): every shard answers from its email index, at most one match per e-mail. With the proxy ' +
          'collection an e-mail resolves to an id on one shard first.',
      },
      {
        shapes: ['name', 'marketingOptIn', 'addresses.country', 'stats.orderCount', 'createdAt', 'updatedAt'],
        cost:
          'Back-office lists: every shard runs the query on its own index and returns at most a page; mongos ' +
          'merges them in sort order.',
      },
      {
        shapes: ['sort createdAt', 'sort updatedAt', 'sort name'],
        cost: 'Unfiltered lists: the first page of each shard, merged by mongos in the sort order.',
      },
      {
        shapes: ['sort email'],
        cost:
          "The importer's report: every customer in e-mail order, one stream merged from all shards; an " +
          "operator's reconciliation, not a request.",
      },
    ],
  },
  operations: {
    create: true,
    replace: true,
    patch: true,
    delete: {
      rule: 'only a customer without orders can be deleted',
      decide: async (customer, references) => {
        if (customer.stats.orderCount > 0 || (await references.ordersOfCustomer(customer._id)))
          throw customerHasOrders();
        return { action: 'delete' };
      },
    },
  },
  serverDefaults: { stats: { orderCount: 0, spent: [] } },
  example: {
    email: 'ada@example.com',
    name: 'Ada Lovelace',
    phone: '+442079460000',
    addresses: [{ label: 'home', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }],
    marketingOptIn: false,
  },
  serverExample: {
    stats: { orderCount: 3, spent: [{ currency: 'EUR', amount: 12497 }], lastOrderAt: '2026-11-20T14:03:00.000Z' },
  },
});
