import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import mongoose from 'mongoose';
import {
  ORDER_ACTIONS,
  TRANSITIONS,
  actionsFrom,
  type OrderAction,
  type OrderStatus,
} from '../../src/domain/orders.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';
import type { StoredStock } from '../helpers/documents.ts';

const { ObjectId } = mongoose.Types;

/** The actions that bring a placed order to each status. */
const PATH_TO: Record<OrderStatus, OrderAction[]> = {
  placed: [],
  paid: ['pay'],
  shipped: ['pay', 'ship'],
  delivered: ['pay', 'ship', 'deliver'],
  cancelled: ['cancel'],
};
const STATUSES = Object.keys(PATH_TO) as OrderStatus[];

describe('order status actions: POST /v1/orders/:id/{pay,ship,deliver,cancel}', () => {
  let t: TestApp;
  let s: Shop;
  let customerId: string;
  let skus = 0;

  beforeAll(async () => {
    t = await buildTestApp('order_actions');
    await waitForDatabase(t.app);
    s = shop(t.app);
    customerId = (await s.customer()).id;
  });
  afterAll(() => t.app.close());

  /** A placed order of 3 units of one SKU and 2 of another (10 and 5 stocked), moved to `status`. */
  const orderIn = async (status: OrderStatus) => {
    const [a, b] = [`ACT-${++skus}-A`, `ACT-${skus}-B`];
    await s.product(a, { amount: 1000 });
    await s.product(b, { amount: 250 });
    await s.stock(a, 'AMS-1', 10);
    await s.stock(b, 'AMS-1', 5);
    const placed = await s.place(customerId, 'AMS-1', [
      { sku: a, quantity: 3 },
      { sku: b, quantity: 2 },
    ]);
    expect(placed.statusCode, placed.body).toBe(201);
    const id = placed.json().id as string;
    for (const action of PATH_TO[status]) {
      const res = await s.act(id, action);
      expect(res.statusCode, res.body).toBe(200);
    }
    return { id, a, b };
  };

  const stockOf = async (a: string, b: string) => ({
    a: await s.storedStock(a, 'AMS-1'),
    b: await s.storedStock(b, 'AMS-1'),
  });
  const counters = (item: StoredStock | null) => ({
    available: item!.available,
    reserved: item!.reserved,
    shipped: item!.shipped,
  });

  describe('from each status, each action', () => {
    const cases = ORDER_ACTIONS.flatMap((action) =>
      STATUSES.map((status) => ({ action, status, allowed: TRANSITIONS[action].from.includes(status) })),
    );

    it.each(cases.filter((c) => c.allowed))(
      '$action from $status: 200, the new status with a history entry',
      async ({ action, status }) => {
        const { id, a, b } = await orderIn(status);
        const before = (await s.storedOrder(id))!;
        const stockBefore = await stockOf(a, b);

        const res = await s.act(id, action);
        expect(res.statusCode, res.body).toBe(200);
        const order = res.json();
        const to = TRANSITIONS[action].to;
        expect(order.status).toBe(to);
        expect(order.version).toBe(before.version + 1);
        expect(res.headers.etag).toBe(`"${before.version + 1}"`);
        expect(order.history).toHaveLength(before.history.length + 1);
        expect(order.history.at(-1)).toEqual({ status: to, at: order.updatedAt });
        expect(order.history.slice(0, -1).map((h: { status: string }) => h.status)).toEqual(
          before.history.map((h: { status: string }) => h.status),
        );
        expect(new Date(order.updatedAt).getTime()).toBeGreaterThanOrEqual(before.updatedAt.getTime());

        const stored = (await s.storedOrder(id))!;
        expect(stored).toMatchObject({ status: to, version: before.version + 1 });
        expect(stored.lines).toEqual(before.lines);
        expect(stored.totals).toEqual(before.totals);

        // What the transition does to the stock, and only that.
        const after = await stockOf(a, b);
        const delta = { pay: [0, 0, 0], deliver: [0, 0, 0], ship: [0, -1, 1], cancel: [1, -1, 0] }[action];
        for (const [key, quantity] of [
          ['a', 3],
          ['b', 2],
        ] as const) {
          const was = counters(stockBefore[key]);
          expect(counters(after[key])).toEqual({
            available: was.available + delta[0]! * quantity,
            reserved: was.reserved + delta[1]! * quantity,
            shipped: was.shipped + delta[2]! * quantity,
          });
        }
      },
    );

    it.each(cases.filter((c) => !c.allowed))(
      '$action from $status: 409 invalid-transition naming the status and the allowed ones, nothing changed',
      async ({ action, status }) => {
        const { id } = await orderIn(status);
        const before = await s.snapshot();

        const res = await s.act(id, action, { note: 'should not be kept' });
        expect(res.statusCode).toBe(409);
        expect(res.headers['content-type']).toMatch(PROBLEM);
        expect(res.json()).toMatchObject({
          type: 'urn:storekeeper:problem:invalid-transition',
          title: 'Invalid Transition',
          status: 409,
          currentStatus: status,
          allowedFrom: [...TRANSITIONS[action].from],
          allowedActions: actionsFrom(status),
          instance: `/v1/orders/${id}/${action}`,
        });
        expect(res.json().detail).toContain(`is ${status}`);
        expect(await s.snapshot()).toEqual(before);
      },
    );
  });

  describe('the stock through a life cycle', () => {
    it('place, pay, ship, deliver: reserved on placement, consumed on ship, nothing more on deliver; units are kept', async () => {
      const { id, a, b } = await orderIn('placed');
      expect(counters((await stockOf(a, b)).a)).toEqual({ available: 7, reserved: 3, shipped: 0 });
      await s.act(id, 'pay');
      expect(counters((await stockOf(a, b)).a)).toEqual({ available: 7, reserved: 3, shipped: 0 });
      await s.act(id, 'ship');
      expect(counters((await stockOf(a, b)).a)).toEqual({ available: 7, reserved: 0, shipped: 3 });
      expect(counters((await stockOf(a, b)).b)).toEqual({ available: 3, reserved: 0, shipped: 2 });
      const delivered = await s.act(id, 'deliver');
      expect(delivered.json().history.map((h: { status: string }) => h.status)).toEqual([
        'placed',
        'paid',
        'shipped',
        'delivered',
      ]);
      const { a: itemA, b: itemB } = await stockOf(a, b);
      expect(counters(itemA)).toEqual({ available: 7, reserved: 0, shipped: 3 });
      expect(itemA!.available + itemA!.reserved + itemA!.shipped).toBe(10);
      expect(itemB!.available + itemB!.reserved + itemB!.shipped).toBe(5);
    });

    it('cancel after payment releases the reservation: the units can be ordered again', async () => {
      const { id, a } = await orderIn('paid');
      await s.act(id, 'cancel');
      expect(counters(await s.storedStock(a, 'AMS-1'))).toEqual({ available: 10, reserved: 0, shipped: 0 });
      const again = await s.place(customerId, 'AMS-1', [{ sku: a, quantity: 10 }]);
      expect(again.statusCode, again.body).toBe(201);
    });

    it("cancelling leaves the customer's stats as placement counted them (they count orders placed)", async () => {
      const buyer = (await s.customer()).id;
      await s.product('STATS-KEPT', { amount: 400 });
      await s.stock('STATS-KEPT', 'AMS-1', 5);
      const placed = await s.place(buyer, 'AMS-1', [{ sku: 'STATS-KEPT', quantity: 1 }]);
      const statsBefore = (await s.storedCustomer(buyer))!.stats;
      expect((await s.act(placed.json().id, 'cancel')).statusCode).toBe(200);
      expect((await s.storedCustomer(buyer))!.stats).toEqual(statsBefore);
    });
  });

  describe('the request', () => {
    it('keeps the note in the history entry', async () => {
      const { id } = await orderIn('placed');
      const res = await s.act(id, 'pay', { note: 'Paid by card, ref 7f3a.' });
      expect(res.statusCode).toBe(200);
      expect(res.json().history.at(-1)).toEqual({
        status: 'paid',
        at: res.json().updatedAt,
        note: 'Paid by card, ref 7f3a.',
      });
      expect((await s.storedOrder(id))!.history.at(-1)!.note).toBe('Paid by card, ref 7f3a.');
    });

    it('accepts an empty object as the body', async () => {
      const { id } = await orderIn('placed');
      const res = await t.app.inject({ method: 'POST', url: `/v1/orders/${id}/pay`, payload: {} });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().history.at(-1)).not.toHaveProperty('note');
    });

    it.each([
      ['a note over 500 characters', { note: 'x'.repeat(501) }, '/note'],
      ['an empty note', { note: '' }, '/note'],
      ['a status in the body', { status: 'delivered' }, '/status'],
    ])('refuses %s with a 400, and changes nothing', async (_case, payload, pointer) => {
      const { id } = await orderIn('placed');
      const before = await s.snapshot();
      const res = await t.app.inject({ method: 'POST', url: `/v1/orders/${id}/pay`, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
      expect(await s.snapshot()).toEqual(before);
    });

    it('answers 404 for an unknown order and 400 for a malformed id', async () => {
      const missing = await s.act(new ObjectId().toHexString(), 'pay');
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toMatchObject({ type: 'urn:storekeeper:problem:not-found' });
      expect(missing.json().detail).toMatch(/^No order with id /);
      const malformed = await s.act('nope', 'pay');
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().errors[0]).toMatchObject({ in: 'params', pointer: '/id' });
    });

    it('an unknown action is a 404 route, not an action', async () => {
      const { id } = await orderIn('placed');
      expect((await s.act(id, 'refund')).statusCode).toBe(404);
    });
  });

  describe('If-Match', () => {
    it('with the current ETag (or *): the action applies', async () => {
      const { id } = await orderIn('placed');
      const current = await t.app.inject({ url: `/v1/orders/${id}` });
      const paid = await s.act(id, 'pay', { ifMatch: current.headers.etag as string });
      expect(paid.statusCode, paid.body).toBe(200);
      const shipped = await s.act(id, 'ship', { ifMatch: '*' });
      expect(shipped.statusCode, shipped.body).toBe(200);
    });

    it('with a stale ETag: 412 and nothing changed, even though the action would be allowed', async () => {
      const { id, a, b } = await orderIn('paid');
      expect((await s.storedOrder(id))!.version).toBe(2);
      const before = await s.snapshot();
      const res = await s.act(id, 'cancel', { ifMatch: '"1"' });
      expect(res.statusCode).toBe(412);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:precondition-failed', status: 412 });
      expect(await s.snapshot()).toEqual(before);
      expect(counters(await s.storedStock(a, 'AMS-1')).reserved).toBe(3);
      expect(counters(await s.storedStock(b, 'AMS-1')).reserved).toBe(2);
    });

    it('with a malformed If-Match: 412, nothing changed', async () => {
      const { id } = await orderIn('placed');
      const res = await s.act(id, 'pay', { ifMatch: 'W/"1"' });
      expect(res.statusCode).toBe(412);
      expect((await s.storedOrder(id))!.status).toBe('placed');
    });
  });

  it('the OpenAPI document describes every action, its optional body and its 409', () => {
    const spec = t.app.swagger() as { paths: Record<string, Record<string, any>> };
    for (const action of ORDER_ACTIONS) {
      const operation = spec.paths[`/v1/orders/{id}/${action}`]!.post;
      expect(operation.operationId).toBe(`${action}Order`);
      expect(operation.requestBody.required).toBe(false);
      expect(operation).not.toHaveProperty('x-optional-body');
      expect(Object.keys(operation.responses).sort()).toEqual([
        '200',
        '400',
        '401',
        '403',
        '404',
        '409',
        '412',
        '413',
        '415',
        '422',
        '429',
        '500',
        '503',
      ]);
      expect(
        operation.responses['409'].content['application/problem+json'].examples['invalid-transition'].value.type,
      ).toBe('urn:storekeeper:problem:invalid-transition');
    }
  });
});
