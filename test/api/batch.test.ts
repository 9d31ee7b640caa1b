import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import mongoose from 'mongoose';
import { BATCH_MAX_OPERATIONS } from '../../src/domain/batch.ts';
import { Customer, Order, Product } from '../../src/domain/entities/index.ts';
import { storedOrder } from '../helpers/documents.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

const COLLECTIONS = ['products', 'customers', 'stock', 'orders'];

let sequence = 0;
const sku = () => `BATCH-${String(++sequence).padStart(5, '0')}`;
const productInput = (overrides: Record<string, unknown> = {}) => ({ ...Product.example, sku: sku(), ...overrides });
const customerInput = (overrides: Record<string, unknown> = {}) => ({
  ...Customer.example,
  email: `batch-${++sequence}@example.com`,
  ...overrides,
});

describe('POST /v1/batch', () => {
  let t: TestApp;
  const db = () => t.app.db.connection.db!;
  const batch = (operations: unknown[]) => t.app.inject({ method: 'POST', url: '/v1/batch', payload: { operations } });
  /** Every document of every collection, in a stable order: "nothing changed" is equality of two dumps. */
  const dump = async () =>
    Object.fromEntries(
      await Promise.all(
        COLLECTIONS.map(async (name) => [name, await db().collection(name).find().sort({ _id: 1 }).toArray()]),
      ),
    );
  const create = async (collection: string, payload: Record<string, unknown>) => {
    const res = await t.app.inject({ method: 'POST', url: `/v1/${collection}`, payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  };
  const stored = (collection: string, id: string) =>
    db()
      .collection(collection)
      .findOne({ _id: new mongoose.Types.ObjectId(id) });

  beforeAll(async () => {
    t = await buildTestApp('batch');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('applies inserts, a patch and a delete across products, customers and stock, and stores every change', async () => {
    const customer = await create('customers', customerInput());
    const doomed = await create('products', productInput());
    const product = productInput({ tags: undefined, attributes: undefined, status: undefined });
    const res = await batch([
      { op: 'insert', collection: 'products', document: product },
      { op: 'insert', collection: 'stock', document: { sku: product.sku, warehouse: 'BER-1', available: 40 } },
      { op: 'patch', collection: 'customers', id: customer.id, patch: { name: 'Ada King' }, ifMatch: '"1"' },
      { op: 'delete', collection: 'products', id: doomed.id },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    const { results } = res.json();
    expect(results.map((r: { index: number; op: string; status: number }) => [r.index, r.op, r.status])).toEqual([
      [0, 'insert', 201],
      [1, 'insert', 201],
      [2, 'patch', 200],
      [3, 'delete', 204],
    ]);
    // Defaults are filled in as the single create route fills them in.
    expect(results[0].document).toMatchObject({
      sku: product.sku,
      status: 'draft',
      tags: [],
      attributes: {},
      version: 1,
    });
    expect(results[1].document).toMatchObject({
      sku: product.sku,
      warehouse: 'BER-1',
      available: 40,
      reserved: 0,
      shipped: 0,
    });
    expect(results[2]).toMatchObject({ id: customer.id, version: 2, document: { name: 'Ada King' } });
    expect(results[3]).toEqual({ index: 3, op: 'delete', status: 204, id: doomed.id, version: 1 });

    expect(await stored('products', results[0].id)).toMatchObject({ sku: product.sku, status: 'draft', version: 1 });
    expect(await stored('stock', results[1].id)).toMatchObject({ sku: product.sku, available: 40 });
    expect(await stored('customers', customer.id)).toMatchObject({ name: 'Ada King', version: 2 });
    expect(await stored('products', doomed.id)).toBeNull();
    const read = await t.app.inject({ url: `/v1/products/${results[0].id}` });
    expect(read.json()).toEqual(results[0].document);
  });

  it('when the last operation duplicates a SKU, answers 409 naming it and leaves the database exactly as it was', async () => {
    const existing = await create('products', productInput());
    const customer = await create('customers', customerInput());
    const before = await dump();
    const res = await batch([
      { op: 'insert', collection: 'customers', document: customerInput() },
      { op: 'patch', collection: 'customers', id: customer.id, patch: { name: 'Changed' } },
      {
        op: 'replace',
        collection: 'products',
        id: existing.id,
        document: { ...productInput(), sku: existing.sku, name: 'Renamed' },
      },
      { op: 'insert', collection: 'stock', document: { sku: existing.sku, warehouse: 'AMS-1', available: 3 } },
      { op: 'insert', collection: 'products', document: productInput({ sku: existing.sku }) },
    ]);
    expect(res.statusCode, res.body).toBe(409);
    expect(res.headers['content-type']).toMatch(PROBLEM);
    expect(res.json()).toMatchObject({
      type: 'urn:storekeeper:problem:duplicate',
      failedOperation: { index: 4, op: 'insert', collection: 'products' },
      errors: [{ in: 'body', pointer: '/operations/4/document/sku', message: 'is already taken' }],
    });
    expect(await dump()).toEqual(before);
  });

  it('inserts a run of documents into one collection together, in order, each with its own result and audit entry', async () => {
    const products = Array.from({ length: 30 }, () => productInput());
    const res = await batch([
      ...products.map((document) => ({ op: 'insert', collection: 'products', document })),
      { op: 'insert', collection: 'stock', document: { sku: products[0]!.sku, warehouse: 'AMS-1', available: 5 } },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    const { results } = res.json();
    expect(results.map((r: { index: number; status: number }) => [r.index, r.status])).toEqual(
      products.map((_, i) => [i, 201]).concat([[30, 201]]),
    );
    expect(results.slice(0, 30).map((r: { document: { sku: string } }) => r.document.sku)).toEqual(
      products.map((p) => p.sku),
    );
    expect(
      await db()
        .collection('products')
        .countDocuments({ sku: { $in: products.map((p) => p.sku) } }),
    ).toBe(30);
    const entries = await db().collection('audit_events').find({ requestId: res.headers['x-request-id'] }).toArray();
    expect(entries).toHaveLength(31);
  });

  it('stores a run of inserts exactly as single creates store the same documents', async () => {
    // The audit stamp names the write that stored a document (a single create carries one), not the document.
    const strip = ({ _id, email, sku: _sku, createdAt, updatedAt, _audit, ...rest }: Record<string, unknown>) => {
      expect(_id).toBeInstanceOf(mongoose.Types.ObjectId);
      expect(createdAt).toBeInstanceOf(Date);
      expect(updatedAt).toEqual(createdAt);
      return rest;
    };
    for (const [collection, input] of [
      ['customers', () => customerInput()],
      ['products', () => productInput()],
    ] as const) {
      const single = await create(collection, input());
      const run = [input(), input()];
      const res = await batch(run.map((document) => ({ op: 'insert', collection, document })));
      expect(res.statusCode, res.body).toBe(200);
      const [first, second] = res.json().results.map((r: { document: { id: string } }) => r.document.id);
      const expected = strip((await stored(collection, single.id))!);
      expect(strip((await stored(collection, first))!), collection).toEqual(expected);
      expect(strip((await stored(collection, second))!), collection).toEqual(expected);
    }
  });

  it.each([
    ['an existing SKU', (existing: string) => existing],
    ['a SKU an earlier insert of the same batch takes', (_existing: string, earlier: string) => earlier],
  ])(
    'when an insert in the middle of a run duplicates %s, answers 409 naming that operation, and writes nothing',
    async (_case, duplicateOf) => {
      const existing = await create('products', productInput());
      const run = Array.from({ length: 6 }, () => productInput());
      run[4] = productInput({ sku: duplicateOf(existing.sku, run[1]!.sku) });
      const before = await dump();
      const res = await batch(run.map((document) => ({ op: 'insert', collection: 'products', document })));
      expect(res.statusCode, res.body).toBe(409);
      expect(res.json()).toMatchObject({
        type: 'urn:storekeeper:problem:duplicate',
        failedOperation: { index: 4, op: 'insert', collection: 'products' },
        errors: [{ in: 'body', pointer: '/operations/4/document/sku', message: 'is already taken' }],
      });
      expect(await dump()).toEqual(before);
    },
  );

  it('when an If-Match in the middle is stale, answers 412 naming that operation, and writes nothing', async () => {
    const customer = await create('customers', customerInput());
    const product = await create('products', productInput());
    await t.app.inject({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      payload: { name: 'v2' },
    });
    const before = await dump();
    const res = await batch([
      { op: 'patch', collection: 'customers', id: customer.id, patch: { name: 'First' } },
      { op: 'patch', collection: 'products', id: product.id, patch: { name: 'Second' }, ifMatch: '"1"' },
      { op: 'insert', collection: 'products', document: productInput() },
    ]);
    expect(res.statusCode, res.body).toBe(412);
    expect(res.json()).toMatchObject({
      type: 'urn:storekeeper:problem:precondition-failed',
      failedOperation: { index: 1, op: 'patch', collection: 'products' },
    });
    expect(await dump()).toEqual(before);
  });

  it('answers 404 naming the operation whose document does not exist, and writes nothing', async () => {
    const before = await dump();
    const res = await batch([
      { op: 'insert', collection: 'products', document: productInput() },
      { op: 'delete', collection: 'stock', id: new mongoose.Types.ObjectId().toHexString() },
    ]);
    expect(res.statusCode, res.body).toBe(404);
    expect(res.json().failedOperation).toEqual({ index: 1, op: 'delete', collection: 'stock' });
    expect(await dump()).toEqual(before);
  });

  it('validates every operation before writing: 400 with a pointer per invalid value, nothing written', async () => {
    const customer = await create('customers', customerInput());
    const before = await dump();
    const res = await batch([
      { op: 'insert', collection: 'products', document: productInput() },
      {
        op: 'insert',
        collection: 'products',
        document: productInput({ price: { amount: -1, currency: 'EUR' }, extra: 1 }),
      },
      { op: 'patch', collection: 'customers', id: customer.id, patch: { email: 'not an e-mail' } },
      { op: 'replace', collection: 'stock', id: customer.id },
      { op: 'delete', collection: 'products', id: customer.id, document: {} },
      { op: 'patch', collection: 'products', id: customer.id, patch: {} },
    ]);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toMatch(PROBLEM);
    const pointers = res.json().errors.map((e: { pointer: string }) => e.pointer);
    expect(pointers).toEqual(
      expect.arrayContaining([
        '/operations/1/document/price/amount',
        '/operations/1/document/extra',
        '/operations/2/patch/email',
        '/operations/3/document',
        '/operations/4/document',
        '/operations/5/patch',
      ]),
    );
    expect(pointers.some((p: string) => p.startsWith('/operations/0'))).toBe(false);
    expect(await dump()).toEqual(before);
  });

  it('refuses bad ids and If-Match values with pointers, before writing', async () => {
    const res = await batch([{ op: 'delete', collection: 'products', id: 'nope', ifMatch: 'W/"1"' }]);
    expect(res.statusCode).toBe(400);
    const pointers = res.json().errors.map((e: { pointer: string }) => e.pointer);
    expect(pointers).toEqual(expect.arrayContaining(['/operations/0/id', '/operations/0/ifMatch']));
  });

  it('refuses operations on orders and on unknown collections with 400', async () => {
    const order = storedOrder();
    await db().collection('orders').insertOne(order);
    const before = await dump();
    for (const operation of [
      { op: 'delete', collection: 'orders', id: String(order._id) },
      { op: 'patch', collection: 'orders', id: String(order._id), patch: { warehouse: 'BER-1' } },
      { op: 'insert', collection: 'warehouses', document: { code: 'X' } },
    ]) {
      const res = await batch([{ op: 'insert', collection: 'products', document: productInput() }, operation]);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().errors.map((e: { pointer: string }) => e.pointer)).toEqual(['/operations/1/collection']);
    }
    expect(await dump()).toEqual(before);
  });

  it(`refuses an empty batch and one of more than ${BATCH_MAX_OPERATIONS} operations with 400`, async () => {
    const before = await dump();
    const empty = await batch([]);
    expect(empty.statusCode).toBe(400);
    const tooMany = await batch(
      Array.from({ length: BATCH_MAX_OPERATIONS + 1 }, () => ({
        op: 'insert',
        collection: 'products',
        document: productInput(),
      })),
    );
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json().errors.map((e: { pointer: string }) => e.pointer)).toEqual(['/operations']);
    expect(await dump()).toEqual(before);
  });

  it('applies the deletion rules: a customer with orders is a 409 and nothing is written; a product with orders is archived', async () => {
    const customer = await create('customers', customerInput());
    const ordered = await create('products', productInput());
    await db()
      .collection(Order.collection)
      .insertOne(
        storedOrder({
          customerId: new mongoose.Types.ObjectId(customer.id),
          lines: [{ ...Order.serverExample.lines[0], sku: ordered.sku }],
        }),
      );

    const before = await dump();
    const refused = await batch([
      { op: 'insert', collection: 'products', document: productInput() },
      { op: 'delete', collection: 'customers', id: customer.id },
    ]);
    expect(refused.statusCode, refused.body).toBe(409);
    expect(refused.json()).toMatchObject({
      type: 'urn:storekeeper:problem:customer-has-orders',
      failedOperation: { index: 1, op: 'delete', collection: 'customers' },
    });
    expect(await dump()).toEqual(before);

    const archived = await batch([{ op: 'delete', collection: 'products', id: ordered.id }]);
    expect(archived.statusCode, archived.body).toBe(200);
    expect(archived.json().results).toEqual([
      expect.objectContaining({
        index: 0,
        op: 'delete',
        status: 200,
        id: ordered.id,
        version: 2,
        document: expect.objectContaining({ status: 'archived' }),
      }),
    ]);
    expect(await stored('products', ordered.id)).toMatchObject({ status: 'archived', version: 2 });
  });

  it('lets a later operation see what an earlier one wrote', async () => {
    const created = await create('products', productInput());
    const res = await batch([
      { op: 'patch', collection: 'products', id: created.id, patch: { name: 'Once' }, ifMatch: '"1"' },
      { op: 'patch', collection: 'products', id: created.id, patch: { name: 'Twice' }, ifMatch: '"2"' },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    expect(await stored('products', created.id)).toMatchObject({ name: 'Twice', version: 3 });
  });
});
