// The order workflow's routes under /v1/orders: placing an order (POST /v1/orders) and the status
// actions (POST /v1/orders/:id/pay, ship, deliver, cancel). Reading and listing orders are the
// generic document routes'. Handlers stay thin: the workflow lives in src/shop/orders.ts.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  ORDER_ACTIONS,
  OrderActionRequest,
  OrderPlacement,
  TRANSITIONS,
  priceOrder,
  transitionFor,
  unknownCustomer,
  type OrderAction,
} from '../../domain/orders.ts';
import {
  MAX_MOVE_QUANTITY,
  insufficientStock,
  stockLimitExceeded,
  type StockCounter,
} from '../../domain/stock-movements.ts';
import { Order } from '../../domain/entities/index.ts';
import { documentNotFound, type StoredDocument } from '../../data/documents.ts';
import { kindOf, problemKinds, problemResponses, thrownBy, type ProblemKind } from '../schemas/problem.ts';
import { ConditionalHeaders, etagHeader, etagOf, expectedVersion } from '../conditional.ts';
import { IdParams, capitalized } from '../schemas/documents.ts';
import { OPTIONAL_BODY } from '../plugins/openapi.ts';
import { component } from '../schemas/component.ts';
import { writeContextOf } from '../actor.ts';

const tags = ['orders'];

const EXAMPLE_ID = '6650f0c2a1b2c3d4e5f60718';
const examplePlacement = (skus: string[], quantity = 1): OrderPlacement => ({
  customerId: EXAMPLE_ID,
  warehouse: 'AMS-1',
  lines: skus.map((sku) => ({ sku, quantity })),
});
const product = (sku: string, currency: string, status = 'active', amount = 2499) => ({
  sku,
  name: sku,
  price: { amount, currency },
  status,
});

/** A counter of a line's stock item at its limit, as the workflow refuses it. */
const counterFull = (counter: StockCounter, when: string): ProblemKind =>
  kindOf(
    stockLimitExceeded(
      { id: EXAMPLE_ID, sku: 'TSHIRT-RED-M', warehouse: 'AMS-1' },
      counter,
      MAX_MOVE_QUANTITY - 1,
      3,
      MAX_MOVE_QUANTITY,
    ),
    when,
  );

// Each example is the error the workflow itself builds for such a request.
const PLACEMENT_CONFLICTS: ProblemKind[] = [
  kindOf(
    insufficientStock([
      { sku: 'TSHIRT-RED-M', warehouse: 'AMS-1', requested: 3, available: 1 },
      { sku: 'MUG-BLUE', warehouse: 'AMS-1', requested: 1, available: 0 },
    ]),
    'the warehouse has fewer available units than a line asks for; ' +
      '`shortages` lists every short line as `{ sku, warehouse, requested, available }`.',
  ),
  kindOf(unknownCustomer(EXAMPLE_ID), 'no customer has the id `customerId`.'),
  kindOf(
    thrownBy(() => priceOrder(examplePlacement(['NOPE-1', 'LAMP-OLD']), [product('LAMP-OLD', 'EUR', 'archived')])),
    'a SKU is not an active product of the catalog; ' +
      '`products` lists each as `{ sku, reason: unknown | inactive, status? }`.',
  ),
  kindOf(
    thrownBy(() =>
      priceOrder(examplePlacement(['TSHIRT-RED-M', 'TEA-EARL-GREY']), [
        product('TSHIRT-RED-M', 'EUR'),
        product('TEA-EARL-GREY', 'GBP'),
      ]),
    ),
    "the products are priced in more than one currency; `currencies` gives each line's `{ sku, currency }`.",
  ),
  kindOf(
    thrownBy(() => priceOrder(examplePlacement(['SOFA-XL'], 2), [product('SOFA-XL', 'EUR', 'active', 1_250_000_000)])),
    'the order would total more than the largest amount (2^31-1 minor units).',
  ),
  counterFull(
    'reserved',
    "a line's stock item would hold more reserved units than the limit; `field`, `limit`, " +
      '`value` and `documentId` say which.',
  ),
];

const invalidTransition = (action: OrderAction): ProblemKind => {
  const { from } = TRANSITIONS[action];
  return kindOf(
    thrownBy(() => transitionFor(action, EXAMPLE_ID, from.includes('placed') ? 'shipped' : 'cancelled')),
    `the order is not ${from.join(' or ')}; \`currentStatus\` is its status, ` +
      `\`allowedFrom\` the statuses ${action} is allowed from, \`allowedActions\` what it allows now.`,
  );
};

/** The limits an action's stock movement can reach: each counter it raises. */
function stockLimitKinds(action: OrderAction): ProblemKind[] {
  const raised = Object.entries(TRANSITIONS[action].stock ?? {})
    .filter(([, perUnit]) => perUnit > 0)
    .map(([counter]) => counter as StockCounter);
  return raised.map((counter) =>
    counterFull(
      counter,
      `a line's stock item would hold more ${counter} units than the limit; \`field\`, \`limit\`, ` +
        '`value` and `documentId` say which.',
    ),
  );
}

const placement = component(OrderPlacement, 'OrderPlacement');
const actionRequest = component(OrderActionRequest, 'OrderActionRequest');

const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(placement.schema);
  app.addSchema(actionRequest.schema);

  const toResource = (order: StoredDocument) => app.stores.repositoryOf(Order.collection).toResource(order);
  /** The order as the answer's body, its version as the ETag. */
  const answer = (reply: { header: (name: string, value: string) => unknown }, order: StoredDocument) => {
    reply.header('etag', etagOf(order.version));
    return toResource(order);
  };

  app.post(
    '',
    {
      schema: {
        tags,
        operationId: 'placeOrder',
        summary: 'Place an order',
        description:
          'In one transaction: checks the customer and the products (active, one currency), ' +
          "reserves every line's units in the warehouse (available to reserved, never below zero), " +
          'prices the lines from the catalog, stores the order as placed and ' +
          "counts it in the customer's stats (orderCount, lastOrderAt, spent in its currency). " +
          'Any refusal changes nothing. ' +
          'A SKU on two lines is a 400 (send the whole quantity on one line); at most 100 lines.',
        body: placement.ref,
        response: {
          201: {
            description: 'Placed; Location names the new order.',
            headers: { ...etagHeader, location: { type: 'string', description: 'Path of the new order.' } },
            ...Type.Ref('Order'),
          },
          ...problemResponses(400, 413, 415, 500, 503),
          ...problemKinds(
            409,
            'The order cannot be placed as asked; nothing was changed. The problem type says why:',
            PLACEMENT_CONFLICTS,
          ),
        },
      },
    },
    async (request, reply) => {
      const order = await app.shop.orders.place(request.body, writeContextOf(request));
      reply.code(201).header('location', `/v1/orders/${order._id.toHexString()}`);
      return answer(reply, order);
    },
  );

  for (const action of ORDER_ACTIONS) {
    const { from, to, summary } = TRANSITIONS[action];
    app.post(
      `/:id/${action}`,
      {
        schema: {
          tags,
          operationId: `${action}Order`,
          summary: `${capitalized(action)} an order`,
          description:
            `${summary} Allowed from ${from.join(' or ')}; the order becomes ${to}, ` +
            'with a history entry (and the note, if given). ' +
            'Of concurrent actions on one order exactly one applies; the others answer 409. The body is optional.',
          [OPTIONAL_BODY]: true,
          params: IdParams,
          headers: ConditionalHeaders,
          body: Type.Union([actionRequest.ref, Type.Null()]),
          response: {
            200: { description: `The order, now ${to}.`, headers: etagHeader, ...Type.Ref('Order') },
            ...problemResponses(400, 412, 413, 415, 500, 503),
            ...problemKinds(404, 'No such order.', [
              kindOf(documentNotFound(Order.singular, EXAMPLE_ID), 'no order has this id.'),
            ]),
            ...problemKinds(
              409,
              `The order's status does not allow ${action}` +
                (stockLimitKinds(action).length > 0 ? ', or a counter of its stock would pass its limit' : '') +
                '; nothing was changed.',
              [invalidTransition(action), ...stockLimitKinds(action)],
            ),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const body = request.body;
        const order = await app.shop.orders.act(
          { id, action, note: body?.note, expectedVersion: expectedVersion(request.headers['if-match']) },
          writeContextOf(request),
        );
        return answer(reply, order);
      },
    );
  }
};

export default orderRoutes;
