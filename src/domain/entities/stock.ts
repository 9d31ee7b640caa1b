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
