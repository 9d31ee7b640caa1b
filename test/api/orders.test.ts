import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { Order } from '../../src/domain/entities/index.ts';
import { storedOrder } from '../helpers/documents.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE as PROBLEM, expectProblemAnswers } from '../helpers/problems.ts';

const MERGE_PATCH = 'application/merge-patch+json';
const { ObjectId } = mongoose.Types;

const line = (sku: string, quantity: number, unit: number) => ({
  sku,
  name: `Product ${sku}`,
  quantity,
  unitPrice: { amount: unit, currency: 'EUR' },
  lineTotal: { amount: quantity * unit, currency: 'EUR' },
});

/** A valid stored order with the given lines, status and creation time. */
const order = (fields: {
  customerId: InstanceType<typeof ObjectId>;
  lines: ReturnType<typeof line>[];
  status?: string;
  createdAt: Date;
}) => {
  const { customerId, lines, status = 'placed', createdAt } = fields;
  return storedOrder({
    customerId,
    lines,
    totals: {
      itemCount: lines.reduce((sum, l) => sum + l.quantity, 0),
      subtotal: { amount: lines.reduce((sum, l) => sum + l.lineTotal.amount, 0), currency: 'EUR' },
    },
    status,
    history: [
      { status: 'placed', at: createdAt },
      ...(status === 'placed' ? [] : [{ status, at: new Date(createdAt.getTime() + 60_000) }]),
    ],
    createdAt,
    updatedAt: createdAt,
  });
};

const at = (minute: number) => new Date(Date.UTC(2026, 10, 25, 9, minute));

describe('/v1/orders', () => {
  let t: TestApp;
  const orders = () => t.app.db.connection.db!.collection('orders');
  const insert = async (...documents: Record<string, unknown>[]) => {
    await orders().insertMany(documents);
    return documents.map((d) => (d._id as InstanceType<typeof ObjectId>).toHexString());
  };

  beforeAll(async () => {
    t = await buildTestApp('orders');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  describe('the generic API does not replace, change or delete orders (placement is its own route)', () => {
    let existing: string;
    beforeAll(async () => {
      existing = (await insert(storedOrder()))[0]!;
    });

    it.each([
      [
        'PUT',
        '/v1/orders/:id',
        { 'content-type': 'application/json' },
        JSON.stringify(Order.serverExample),
        'GET, HEAD',
      ],
      [
        'PATCH',
        '/v1/orders/:id',
        { 'content-type': MERGE_PATCH },
        JSON.stringify({ status: 'cancelled' }),
        'GET, HEAD',
      ],
      ['DELETE', '/v1/orders/:id', {}, undefined, 'GET, HEAD'],
    ] as const)(
      '%s %s answers 405 with Allow and a problem, and the order is untouched',
      async (method, path, headers, payload, allow) => {
        const before = await orders().find().sort({ _id: 1 }).toArray();
        const res = await t.app.inject({
          method,
          url: path.replace(':id', existing),
          headers,
          ...(payload !== undefined && { payload }),
        });
        expect(res.statusCode).toBe(405);
        expect(res.headers.allow).toBe(allow);
        expect(res.headers['content-type']).toMatch(PROBLEM);
        expect(res.json()).toMatchObject({
          type: 'urn:storekeeper:problem:method-not-allowed',
          title: 'Method Not Allowed',
          status: 405,
          instance: path.replace(':id', existing),
        });
        expect(res.json().detail).toContain(method);
        expect(await orders().find().sort({ _id: 1 }).toArray()).toEqual(before);
      },
    );

    it('answers 405 before looking at the body or the id: a malformed body or an unknown id changes nothing', async () => {
      const garbage = await t.app.inject({
        method: 'PUT',
        url: `/v1/orders/${existing}`,
        headers: { 'content-type': 'text/plain' },
        payload: '{',
      });
      expect(garbage.statusCode).toBe(405);
      const unknown = await t.app.inject({ method: 'DELETE', url: `/v1/orders/${new ObjectId().toHexString()}` });
      expect(unknown.statusCode).toBe(405);
      expect(unknown.headers.allow).toBe('GET, HEAD');
    });

    it('POST /v1/orders is placement, not a 405: a generic order document is refused as a placement (400)', async () => {
      const before = await orders().countDocuments();
      const res = await t.app.inject({ method: 'POST', url: '/v1/orders', payload: Order.serverExample });
      expect(res.statusCode).toBe(400);
      expect(res.json().type).toBe('urn:storekeeper:problem:validation-failed');
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toEqual(
        expect.arrayContaining(['/lines/0/name', '/totals', '/status']),
      );
      expect(await orders().countDocuments()).toBe(before);
    });

    it.each(['PUT', 'PATCH', 'DELETE'] as const)(
      '%s on the collection answers 405 and Allow lists POST (placement)',
      async (method) => {
        const res = await t.app.inject({ method, url: '/v1/orders' });
        expect(res.statusCode).toBe(405);
        expect(res.headers.allow).toBe('GET, HEAD, POST');
      },
    );

    it('what Allow lists does answer: GET and HEAD of an order and of the list', async () => {
      expect((await t.app.inject({ method: 'GET', url: `/v1/orders/${existing}` })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'HEAD', url: `/v1/orders/${existing}` })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: '/v1/orders' })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'HEAD', url: '/v1/orders' })).statusCode).toBe(200);
    });

    it('collections that allow a method still answer it: POST /v1/stock is not a 405', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/stock',
        payload: { sku: 'ALLOWED-1', warehouse: 'AMS-1', available: 1 },
      });
      expect(res.statusCode, res.body).toBe(201);
    });

    it('the refused operations are not in the OpenAPI document; placement is', async () => {
      const spec = t.app.swagger() as { paths: Record<string, Record<string, any>> };
      expect(Object.keys(spec.paths['/v1/orders'] ?? {}).sort()).toEqual(['get', 'post']);
      expect(spec.paths['/v1/orders']!.post.operationId).toBe('placeOrder');
      expect(Object.keys(spec.paths['/v1/orders/{id}'] ?? {}).sort()).toEqual(['get']);
      expect(Object.keys(spec.paths['/v1/stock/{id}'] ?? {}).sort()).toEqual(['delete', 'get', 'patch', 'put']);
    });
  });

  describe('read', () => {
    it('answers a stored order with its ETag, ids as hex strings and dates as ISO strings', async () => {
      const customerId = new ObjectId();
      const document = order({
        customerId,
        lines: [line('TSHIRT-RED-M', 2, 2499), line('MUG-BLUE', 1, 900)],
        status: 'paid',
        createdAt: at(1),
      });
      const [id] = await insert(document);
      const res = await t.app.inject({ url: `/v1/orders/${id}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers.etag).toBe('"1"');
      expect(res.json()).toEqual({
        id,
        customerId: customerId.toHexString(),
        warehouse: 'AMS-1',
        lines: [line('TSHIRT-RED-M', 2, 2499), line('MUG-BLUE', 1, 900)],
        totals: { itemCount: 3, subtotal: { amount: 5898, currency: 'EUR' } },
        status: 'paid',
        history: [
          { status: 'placed', at: '2026-11-25T09:01:00.000Z' },
          { status: 'paid', at: '2026-11-25T09:02:00.000Z' },
        ],
        version: 1,
        createdAt: '2026-11-25T09:01:00.000Z',
        updatedAt: '2026-11-25T09:01:00.000Z',
      });
      const cached = await t.app.inject({ url: `/v1/orders/${id}`, headers: { 'if-none-match': '"1"' } });
      expect(cached.statusCode).toBe(304);
    });

    it('answers 404 for an unknown id and 400 for a malformed one', async () => {
      const missing = await t.app.inject({ url: `/v1/orders/${new ObjectId().toHexString()}` });
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toMatchObject({ type: 'urn:storekeeper:problem:not-found' });
      expect(missing.json().detail).toMatch(/^No order with id /);
      const malformed = await t.app.inject({ url: '/v1/orders/ABCDEF' });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().errors[0]).toMatchObject({ in: 'params', pointer: '/id' });
    });
  });

  describe('list', () => {
    const customer = new ObjectId();
    const other = new ObjectId();
    const ids: Record<string, string> = {};
    beforeAll(async () => {
      const documents = {
        // Two orders share a creation time and two share a subtotal: ties are broken by id.
        o1: order({ customerId: customer, lines: [line('LAMP-1', 1, 5900)], status: 'placed', createdAt: at(10) }),
        o2: order({ customerId: customer, lines: [line('CUP-GREEN', 2, 900)], status: 'paid', createdAt: at(11) }),
        o3: order({
          customerId: customer,
          lines: [line('CUP-GREEN', 1, 900), line('LAMP-1', 1, 5900)],
          status: 'shipped',
          createdAt: at(11),
        }),
        o4: order({ customerId: customer, lines: [line('SOCKS-3', 3, 600)], status: 'cancelled', createdAt: at(13) }),
        o5: order({ customerId: customer, lines: [line('PEN-1', 12, 150)], status: 'delivered', createdAt: at(14) }),
        x1: order({ customerId: other, lines: [line('CUP-GREEN', 5, 900)], status: 'paid', createdAt: at(12) }),
      };
      for (const [key, document] of Object.entries(documents)) ids[key] = (await insert(document))[0]!;
    });

    const listIds = async (query: string) => {
      const res = await t.app.inject({ url: `/v1/orders?${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().items.map((o: { id: string }) => o.id);
    };
    const tie = (a: string, b: string) => [ids[a]!, ids[b]!].sort();

    it("lists a customer's orders newest first, ties by id", async () => {
      const [first, second] = tie('o2', 'o3');
      expect(await listIds(`customerId=${customer.toHexString()}&sort=-createdAt`)).toEqual([
        ids.o5,
        ids.o4,
        second,
        first,
        ids.o1,
      ]);
      expect(await listIds(`customerId=${customer.toHexString()}`)).toEqual([ids.o5, ids.o4, second, first, ids.o1]);
      expect(await listIds(`customerId=${other.toHexString()}`)).toEqual([ids.x1]);
      expect(await listIds(`customerId=${new ObjectId().toHexString()}`)).toEqual([]);
    });

    it('sorts by subtotal, ties by id', async () => {
      // Subtotals: o1 5900, o2 1800, o3 6800, o4 1800, o5 1800.
      const ascending = await listIds(`customerId=${customer.toHexString()}&sort=totals.subtotal.amount`);
      const lows = [ids.o2!, ids.o4!, ids.o5!].sort();
      expect(ascending).toEqual([...lows, ids.o1, ids.o3]);
      const descending = await listIds(`customerId=${customer.toHexString()}&sort=-totals.subtotal.amount`);
      expect(descending).toEqual([ids.o3, ids.o1, ...[...lows].reverse()]);
      const large = await listIds(
        `customerId=${customer.toHexString()}&totals.subtotal.amount[gte]=5000&sort=totals.subtotal.amount`,
      );
      expect(large).toEqual([ids.o1, ids.o3]);
    });

    it('filters by status (in, ne) and by a SKU on any line', async () => {
      const c = `customerId=${customer.toHexString()}`;
      expect(await listIds(`${c}&status[in]=paid,shipped&sort=createdAt`)).toEqual(tie('o2', 'o3'));
      expect(await listIds(`status[in]=paid&sort=createdAt&${c}`)).toEqual([ids.o2]);
      expect(new Set(await listIds(`${c}&status[ne]=cancelled`))).toEqual(new Set([ids.o1, ids.o2, ids.o3, ids.o5]));
      expect(new Set(await listIds('lines.sku=CUP-GREEN'))).toEqual(new Set([ids.o2, ids.o3, ids.x1]));
      expect(await listIds(`lines.sku=LAMP-1&${c}&sort=createdAt`)).toEqual([ids.o1, ids.o3]);
      expect(await listIds('lines.sku=LAMP-1&status=shipped')).toEqual([ids.o3]);
    });

    it.each([
      ['-createdAt', ''],
      ['createdAt', ''],
      ['totals.subtotal.amount', ''],
      ['-totals.subtotal.amount', '&fields=status'],
      ['-createdAt', '&fields=customerId,totals&count=true'],
    ])('pages of 2 sorted by %s return each of the 5 orders exactly once (%s)', async (sort, extra) => {
      const seen: string[] = [];
      let url: string | null = `/v1/orders?customerId=${customer.toHexString()}&sort=${sort}&limit=2${extra}`;
      const pageSizes: number[] = [];
      while (url !== null) {
        const res: { statusCode: number; body: string; headers: Record<string, unknown>; json(): any } =
          await t.app.inject({ url });
        expect(res.statusCode, res.body).toBe(200);
        const page = res.json();
        pageSizes.push(page.items.length);
        seen.push(...page.items.map((o: { id: string }) => o.id));
        if (page.next !== null) expect(res.headers.link).toBe(`<${page.next}>; rel="next"`);
        if (extra.includes('count=true')) expect(page.total).toBe(5);
        url = page.next;
      }
      expect(pageSizes).toEqual([2, 2, 1]);
      expect(seen).toEqual(await listIds(`customerId=${customer.toHexString()}&sort=${sort}`));
      expect(new Set(seen).size).toBe(5);
      expect(new Set(seen)).toEqual(new Set([ids.o1, ids.o2, ids.o3, ids.o4, ids.o5]));
    });

    it('projects the requested fields of an order, ids and dates still as strings', async () => {
      const res = await t.app.inject({
        url: `/v1/orders?customerId=${customer.toHexString()}&sort=createdAt&limit=1&fields=customerId,history`,
      });
      const [item] = res.json().items;
      expect(Object.keys(item).sort()).toEqual(['createdAt', 'customerId', 'history', 'id', 'version']);
      expect(item).toMatchObject({
        id: ids.o1,
        customerId: customer.toHexString(),
        createdAt: '2026-11-25T09:10:00.000Z',
      });
      expect(item.history).toEqual([{ status: 'placed', at: '2026-11-25T09:10:00.000Z' }]);
    });

    it.each([
      ['a malformed customer id', 'customerId=42', '/customerId'],
      ['an unknown status', 'status[in]=paid,lost', '/status[in]/1'],
      ['an operator the field does not allow', 'customerId[ne]=6650f0c2a1b2c3d4e5f60718', '/customerId[ne]'],
      ['a sort on an unindexed field', 'sort=status', '/sort'],
      ['a malformed SKU', 'lines.sku=not a sku', '/lines.sku'],
    ])('refuses %s with a 400 pointing at the parameter', async (_case, query, pointer) => {
      const res = await t.app.inject({ url: `/v1/orders?${query}` });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    });
  });

  it('every error body is a problem document carrying the request id of the response', async () => {
    const id = (await insert(storedOrder()))[0]!;
    const failures = [
      { method: 'POST' as const, url: '/v1/orders', payload: {} },
      { method: 'PUT' as const, url: `/v1/orders/${id}`, payload: {} },
      {
        method: 'PATCH' as const,
        url: `/v1/orders/${id}`,
        payload: { status: 'paid' },
        headers: { 'content-type': MERGE_PATCH },
      },
      { method: 'DELETE' as const, url: `/v1/orders/${id}`, headers: { 'x-request-id': 'caller-chosen.id-4' } },
      { method: 'GET' as const, url: `/v1/orders/${new ObjectId().toHexString()}` },
      { method: 'GET' as const, url: '/v1/orders/zzz' },
      { method: 'GET' as const, url: '/v1/orders?status=lost' },
      { method: 'GET' as const, url: '/v1/orders?sort=createdAt&cursor=bm90LWpzb24' },
    ];
    const statuses = await expectProblemAnswers(t.app, failures);
    expect(statuses).toEqual([400, 405, 405, 405, 404, 400, 400, 400]);
    expect(await orders().findOne({ _id: new ObjectId(id) })).toMatchObject({ status: 'placed', version: 1 });
  });
});
