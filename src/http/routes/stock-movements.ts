// Stock actions under /v1/stock: restocking (units arriving) and moving available units between
// warehouses, each one unit of work in src/shop/stock.ts. Reading, listing and
// correcting stock items are the generic document routes'.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  MAX_MOVE_QUANTITY,
  Restock,
  StockMove,
  insufficientStock,
  stockLimitExceeded,
  unknownProduct,
} from '../../domain/stock-movements.ts';
import { Stock } from '../../domain/entities/index.ts';
import type { StoredDocument } from '../../data/documents.ts';
import { kindOf, problemKinds, problemResponses } from '../schemas/problem.ts';
import { etagHeader, etagOf } from '../conditional.ts';
import { writeContextOf } from '../actor.ts';
import { component } from '../schemas/component.ts';

const tags = ['stock'];

/** An item at the counters' limit (a quantity's maximum is the counters' own), as the movement refuses it. */
const fullShelf = (by: number) =>
  kindOf(
    stockLimitExceeded(
      { id: '6650f0c2a1b2c3d4e5f60718', sku: 'TSHIRT-RED-M', warehouse: 'AMS-1' },
      'available',
      MAX_MOVE_QUANTITY - 10,
      by,
      MAX_MOVE_QUANTITY,
    ),
    "the receiving item's available units would pass their limit; `field`, " +
      '`limit` and `value` (what it would reach) say which and by how much, `documentId` names the item.',
  );

const itemExample = {
  id: '6650f0c2a1b2c3d4e5f60718',
  ...Stock.example,
  ...Stock.serverExample,
  version: 4,
  createdAt: '2026-11-20T10:00:00.000Z',
  updatedAt: '2026-11-25T09:30:00.000Z',
};

const restock = component(Restock, 'Restock');
const move = component(StockMove, 'StockMove');

const stockMovementRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(restock.schema);
  app.addSchema(move.schema);
  app.addSchema(
    Type.Object(
      {
        from: Type.Ref('StockItem', { description: 'The source stock item, as it is after the move.' }),
        to: Type.Ref('StockItem', {
          description: 'The destination stock item, as it is after the move (created if it was missing).',
        }),
      },
      {
        $id: 'StockMoveResult',
        additionalProperties: false,
        description: 'Both stock items after the move.',
        examples: [
          {
            from: { ...itemExample, available: 110, version: 5 },
            to: {
              ...itemExample,
              id: '6650f0c2a1b2c3d4e5f60719',
              warehouse: 'BER-2',
              available: 10,
              reserved: 0,
              shipped: 0,
              version: 1,
            },
          },
        ],
      },
    ),
  );

  const toResource = (item: StoredDocument) => app.stores.repositoryOf(Stock.collection).toResource(item);

  app.post(
    '/restock',
    {
      schema: {
        tags,
        operationId: 'restock',
        summary: 'Add arriving units to a warehouse',
        description:
          'Adds the units to the available ones of the stock item of this SKU in this warehouse, ' +
          'creating the item (201) when the warehouse has none. ' +
          'The product must exist (any status: stock may arrive before a product goes on sale).',
        body: restock.ref,
        response: {
          200: { description: 'The stock item, with the units added.', headers: etagHeader, ...Type.Ref('StockItem') },
          201: {
            description: 'The warehouse had no item of this SKU: created with the units; Location names it.',
            headers: { ...etagHeader, location: { type: 'string', description: 'Path of the new stock item.' } },
            ...Type.Ref('StockItem'),
          },
          ...problemResponses(400, 413, 415, 500, 503),
          ...problemKinds(409, 'Nothing was changed:', [
            kindOf(unknownProduct('NOPE-1'), 'no product has this SKU; `sku` names it.'),
            fullShelf(48),
          ]),
        },
      },
    },
    async (request, reply) => {
      const { item, created } = await app.shop.stock.restock(request.body, writeContextOf(request));
      if (created) reply.code(201).header('location', `/v1/stock/${item._id.toHexString()}`);
      return reply.header('etag', etagOf(item.version)).send(toResource(item));
    },
  );

  app.post(
    '/move',
    {
      schema: {
        tags,
        operationId: 'moveStock',
        summary: 'Move available units between warehouses',
        description:
          'Takes the units from the available ones in `from` and adds them to the available ones in `to`, ' +
          'in one transaction: both or neither. ' +
          'The destination item is created when missing; `from` and `to` must differ (else 400). ' +
          'Reserved and shipped units never move.',
        body: move.ref,
        response: {
          200: { description: 'Moved.', ...Type.Ref('StockMoveResult') },
          ...problemResponses(400, 413, 415, 500, 503),
          ...problemKinds(409, 'Nothing was moved:', [
            kindOf(
              insufficientStock([{ sku: 'TSHIRT-RED-M', warehouse: 'AMS-1', requested: 10, available: 4 }]),
              '`from` has fewer available units than asked (or no item of the SKU); `shortages` says how many it has.',
            ),
            fullShelf(11),
          ]),
        },
      },
    },
    async (request) => {
      const { from, to } = await app.shop.stock.move(request.body, writeContextOf(request));
      return { from: toResource(from), to: toResource(to) };
    },
  );
};

export default stockMovementRoutes;
