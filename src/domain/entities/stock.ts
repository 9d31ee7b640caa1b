// Stock: one document per SKU per warehouse. Clients set what is on the shelf (available);
// reserved and shipped move only through orders, so available + reserved + shipped is what
// was ever stocked.

import { Type } from 'typebox';
import { defineEntity, RANGE, pageIndex } from '../entity.ts';
import { stockReserved } from '../deletion.ts';
import { Quantity, Sku, WarehouseCode } from '../types.ts';

export const Stock = defineEntity({
  collection: 'stock',
  singular: 'stock item',
  schemaName: 'StockItem',
  description: 'The stock of one SKU in one warehouse.',
  writable: Type.Object(
    {
      sku: Sku(),
      warehouse: WarehouseCode(),
      available: Quantity('Units on the shelf that orders can still reserve.'),
      reorderLevel: Type.Optional(Quantity('Below this many available units the item counts as low on stock.')),
    },
    { additionalProperties: false },
  ),
  server: Type.Object(
    {
      reserved: Quantity('Units reserved by placed or paid orders, not yet shipped.'),
      shipped: Quantity('Units that left the warehouse with shipped orders.'),
    },
    { additionalProperties: false },
  ),
  immutable: ['sku', 'warehouse'],
  filters: {
    sku: ['eq', 'in'],
    warehouse: ['eq', 'in'],
    available: ['eq', ...RANGE],
    reserved: ['gt', 'gte'],
    updatedAt: [...RANGE],
  },
  sorts: ['updatedAt', 'available', 'createdAt'],
  defaultSort: 'createdAt',
  textSearch: false,
  indexes: [
    {
      name: 'sku_warehouse_unique',
      key: { sku: 1, warehouse: 1 },
      unique: true,
      serves: 'one stock item per SKU and warehouse; all stock of a SKU',
    },
    pageIndex(
      'warehouse_available',
      ['warehouse', 'available'],
      "a warehouse's items by how many are left (low stock)",
    ),
    pageIndex('available', 'available', 'sort by units available'),
    pageIndex('created', 'createdAt', 'the default listing'),
    pageIndex('updated', 'updatedAt', 'sync consumers: what changed since'),
  ],
  shardKey: {
    key: { sku: 1, warehouse: 1 },
    why:
      'A stock item is its place: every movement (reserve, release, ship, restock, move) is one findOneAndUpdate ' +
      'or upsert on exactly this SKU and warehouse, which the key sends to one shard, and sku_warehouse_unique is ' +
      "the key itself, so a restock's upsert stays unique. The SKU first: the warehouses of a SKU sit together, " +
      "so an order's availability read (warehouse and sku $in) and all the stock of a SKU reach only the shards " +
      'owning those SKUs. Cardinality is products times warehouses, one document per value; SKUs are not ' +
      'generated in order; both fields are immutable. A best-selling item is one hot document, which no key ' +
      'could split.',
    uniqueElsewhere: {},
    scatterGather: [
      {
        shapes: ['_id'],
        cost:
          'A stock item by id (GET, the document cache filling, a write reading the version it changes): one ' +
          '_id index lookup on every shard; the document cache answers repeated reads.',
      },
      {
        shapes: ['_id + version'],
        cost:
          'Replace, patch and delete by id (findOneAndReplace and deleteOne on {_id, version}). When sharded, the ' +
          'repository adds the SKU and warehouse of the version it read (both immutable) and each write reaches ' +
          'one shard; without them the write is broadcast, or refused by servers that require the key in a ' +
          'findAndModify.',
      },
      {
        shapes: ['_audit.id + _id'],
        cost:
          'After an atomic write whose outcome MongoDB did not report, the unit of work looks for its stamp: ' +
          'every shard, only while MongoDB is failing.',
      },
      {
        shapes: ['warehouse', 'available', 'reserved', 'updatedAt'],
        cost:
          "Warehouse lists (a warehouse's low stock, reservations, changes since): every shard runs the query on " +
          'its own index and returns at most a page; mongos merges them in sort order.',
      },
      {
        shapes: ['sort updatedAt', 'sort available', 'sort createdAt'],
        cost: 'Unfiltered lists: the first page of each shard, merged by mongos in the sort order.',
      },
      {
        shapes: ['sort sku + warehouse'],
        cost:
          "The importer's ledger check and report: every stock item in key order, read as one stream merged from " +
          "all shards (in key order, so each shard's part is one range); an operator's reconciliation.",
      },
    ],
  },
  operations: {
    create: true,
    replace: true,
    patch: true,
    delete: {
      rule: 'only stock with nothing reserved can be deleted',
      decide: async (item) => {
        if (item.reserved > 0) throw stockReserved(item.reserved);
        return { action: 'delete' };
      },
    },
  },
  serverDefaults: { reserved: 0, shipped: 0 },
  example: { sku: 'TSHIRT-RED-M', warehouse: 'AMS-1', available: 120, reorderLevel: 20 },
  serverExample: { reserved: 4, shipped: 36 },
});
