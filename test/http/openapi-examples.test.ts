// The contract's examples and headers against the service: every request example the document
// gives is sent to the real app and accepted; every example (of a schema, a request or a
// response, problem documents included, each also against the schema of its kind) is valid
// against its schema; every response declares the headers the service sends with it; and the
// batch's documented schema accepts exactly the operations the route accepts.

import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import mongoose from 'mongoose';
import { OPENAPI_FILE } from '../../src/cli/openapi.ts';
import { Customer, Order, Product, Stock } from '../../src/domain/entities/index.ts';
import { TRANSITIONS, type OrderAction } from '../../src/domain/orders.ts';
import { OBJECT_ID_PATTERN } from '../../src/domain/types.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

type Json = Record<string, any>;
const { ObjectId } = mongoose.Types;

const PROBLEM = 'application/problem+json';
/** The ids the examples use: the example documents, and a second product the batch example deletes. */
const EXAMPLE_ID = '6650f0c2a1b2c3d4e5f60718';
const OTHER_PRODUCT_ID = '6650f0c2a1b2c3d4e5f60719';

let spec: Json;

/** Ajv for OpenAPI 3.1's JSON Schema, with the formats the service checks, over the whole document. */
function contractValidator() {
  const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addFormat('objectid', new RegExp(OBJECT_ID_PATTERN));
  ajv.addSchema(spec, 'openapi.json');
  return (pointer: string, value: unknown): string[] => {
    const validate = ajv.getSchema(`openapi.json#${pointer}`) ?? ajv.compile({ $ref: `openapi.json#${pointer}` });
    return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
  };
}

const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

function operations(): { path: string; method: string; operation: Json }[] {
  return Object.entries(spec.paths as Record<string, Record<string, Json>>).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
  );
}

/** The named or single examples of a media type, with where each is in the document. */
function mediaExamples(media: Json, at: string): { at: string; value: unknown }[] {
  if (media.example !== undefined) return [{ at: `${at}/example`, value: media.example }];
  return Object.entries((media.examples ?? {}) as Record<string, { value: unknown }>).map(([name, named]) => ({
    at: `${at}/examples/${name}`,
    value: named.value,
  }));
}

/** The schema component a $ref names (or the first alternative that is one), or undefined. */
function component(schema: Json | undefined): Json | undefined {
  if (typeof schema?.$ref === 'string') return spec.components.schemas[schema.$ref.split('/').pop()!];
  const alternatives = (schema?.anyOf ?? schema?.oneOf ?? []) as Json[];
  return alternatives.map(component).find((found) => found !== undefined);
}

beforeAll(async () => {
  spec = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'));
});

describe('the examples of the contract', () => {
  it('every example is valid against its schema, and a problem also against the schema of its kind', () => {
    const check = contractValidator();
    const failures: string[] = [];
    let checked = 0;
    for (const [name, schema] of Object.entries(spec.components.schemas as Record<string, Json>)) {
      for (const [i, example] of ((schema.examples ?? []) as unknown[]).entries()) {
        checked++;
        failures.push(
          ...check(`/components/schemas/${escapePointer(name)}`, example).map(
            (e) => `schema ${name} example ${i}: ${e}`,
          ),
        );
      }
    }
    for (const { path, method, operation } of operations()) {
      const base = `/paths/${escapePointer(path)}/${method}`;
      const media: [string, Json][] = [
        ...Object.entries((operation.requestBody?.content ?? {}) as Record<string, Json>).map(
          ([type, m]): [string, Json] => [`${base}/requestBody/content/${escapePointer(type)}`, m],
        ),
        ...Object.entries(operation.responses as Record<string, Json>).flatMap(([status, response]) =>
          Object.entries((response.content ?? {}) as Record<string, Json>).map(([type, m]): [string, Json] => [
            `${base}/responses/${status}/content/${escapePointer(type)}`,
            m,
          ]),
        ),
      ];
      for (const [at, m] of media) {
        for (const example of mediaExamples(m, at)) {
          checked++;
          const label = `${method.toUpperCase()} ${path} ${example.at.slice(base.length)}`;
          failures.push(...check(`${at}/schema`, example.value).map((e) => `${label}: ${e}`));
          if (!at.endsWith(escapePointer(PROBLEM))) continue;
          const problem = example.value as Json;
          const kind = Object.values(spec.components.schemas as Record<string, Json>).find(
            (s) => s.allOf?.[1]?.properties?.type?.enum?.[0] === problem.type,
          );
          const named = Object.entries(spec.components.schemas as Record<string, Json>).find(
            ([, s]) => s === kind,
          )?.[0];
          if (named !== undefined)
            failures.push(...check(`/components/schemas/${named}`, problem).map((e) => `${label} as ${named}: ${e}`));
          if (problem.failedOperation !== undefined)
            failures.push(
              ...check('/components/schemas/BatchFailureProblem', problem).map(
                (e) => `${label} as BatchFailureProblem: ${e}`,
              ),
            );
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect(failures).toEqual([]);
  });

  it('every kind of problem with extension members has a schema that a response refers to', () => {
    const text = JSON.stringify(spec.paths);
    const kinds = Object.entries(spec.components.schemas as Record<string, Json>).filter(
      ([, s]) => s.allOf?.[0]?.$ref === '#/components/schemas/Problem',
    );
    expect(kinds.map(([name]) => name)).toEqual(
      expect.arrayContaining([
        'InsufficientStockProblem',
        'InvalidTransitionProblem',
        'InsufficientScopeProblem',
        'BatchFailureProblem',
        'ValidationProblem',
      ]),
    );
    for (const [name] of kinds) expect(text, name).toContain(`"#/components/schemas/${name}"`);
  });
});

describe('the headers of the contract', () => {
  it('every response declares X-Request-Id and the RateLimit headers; 429 and 503 Retry-After; 201 Location; answers of documents ETag', () => {
    for (const { path, method, operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses as Record<string, Json>)) {
        const names = Object.keys(response.headers ?? {});
        const label = `${method.toUpperCase()} ${path} ${status}`;
        expect(names, label).toEqual(
          expect.arrayContaining([
            'X-Request-Id',
            'RateLimit-Limit',
            'RateLimit-Remaining',
            'RateLimit-Reset',
            'RateLimit-Policy',
          ]),
        );
        if (status === '429' || status === '503') expect(names, label).toContain('Retry-After');
        if (status === '201') expect(names, label).toContain('Location');
        const body = response.content?.['application/json']?.schema?.$ref as string | undefined;
        if (body !== undefined && /\/(Product|Customer|StockItem|Order)$/.test(body))
          expect(names, label).toContain('ETag');
        if (operation.parameters?.some((p: Json) => p.name === 'idempotency-key') && /^2/.test(status))
          expect(names, label).toContain('Idempotency-Replayed');
      }
    }
  });

  it('open routes say they need no credentials', () => {
    expect(spec.paths['/health/live'].get.security).toEqual([]);
    expect(spec.paths['/health/ready'].get.security).toEqual([]);
    expect(spec.servers).toEqual([expect.objectContaining({ url: '/' })]);
  });
});

describe('the contract against the service', () => {
  let t: TestApp;
  const db = () => t.app.db.connection.db!;

  beforeAll(async () => {
    t = await buildTestApp('openapi_examples');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  /**
   * The documents the examples refer to, by the examples' ids: the example product, customer
   * (at version 2, as the batch example's ifMatch says), stock item and order, and a second
   * product that no order refers to.
   */
  async function exampleWorld(orderStatus = 'placed'): Promise<void> {
    const now = new Date();
    const system = (version = 1) => ({ version, createdAt: now, updatedAt: now });
    const id = (hex: string) => new ObjectId(hex);
    for (const name of ['products', 'customers', 'stock', 'orders']) await db().collection(name).deleteMany({});
    await db()
      .collection('products')
      .insertMany([
        { _id: id(EXAMPLE_ID), ...Product.example, ...system() },
        { _id: id(OTHER_PRODUCT_ID), ...Product.example, sku: 'MUG-BLUE', name: 'Mug, blue', ...system() },
      ]);
    const { lastOrderAt, ...stats } = Customer.serverExample.stats;
    await db()
      .collection('customers')
      .insertOne({
        _id: id(EXAMPLE_ID),
        ...Customer.example,
        stats: { ...stats, lastOrderAt: new Date(lastOrderAt!) },
        ...system(2),
      });
    await db()
      .collection('stock')
      .insertOne({ _id: id(EXAMPLE_ID), ...Stock.example, ...Stock.serverExample, ...system() });
    const order = Order.serverExample;
    await db()
      .collection('orders')
      .insertOne({
        _id: id(EXAMPLE_ID),
        ...order,
        customerId: id(order.customerId),
        status: orderStatus,
        history: [{ status: orderStatus, at: now }],
        ...system(),
      });
  }

  /** What an operation's example needs changed in the example world first. */
  const preparations: Record<string, (operationId: string) => Promise<void>> = {
    // A create example is the example document: it must not exist yet.
    create: async (operationId) => {
      const collection = { createProduct: 'products', createCustomer: 'customers', createStockItem: 'stock' }[
        operationId
      ];
      if (collection !== undefined) await db().collection(collection).deleteMany({});
    },
    // The batch inserts the example product.
    runBatch: async () => {
      await db()
        .collection('products')
        .deleteOne({ _id: new ObjectId(EXAMPLE_ID) });
    },
  };

  it('accepts every request example the contract documents, with its path and header parameters', async () => {
    const sent: string[] = [];
    for (const { path, method, operation } of operations()) {
      const content = operation.requestBody?.content as Record<string, Json> | undefined;
      if (content === undefined) continue;
      for (const [type, media] of Object.entries(content)) {
        const example = mediaExamples(media, '')[0]?.value ?? component(media.schema)?.examples?.[0];
        expect(example, `${method} ${path} has a request example`).toBeDefined();
        const action = /\/orders\/\{id\}\/(\w+)$/.exec(path)?.[1] as OrderAction | undefined;
        await exampleWorld(action === undefined ? 'placed' : TRANSITIONS[action].from[0]);
        const operationId = operation.operationId as string;
        await (preparations[operationId] ?? preparations[operationId.startsWith('create') ? 'create' : ''])?.(
          operationId,
        );
        const url = path.replace(/\{(\w+)\}/g, (_, name: string) => {
          const parameter = (operation.parameters as Json[]).find((p) => p.in === 'path' && p.name === name)!;
          return String(parameter.example ?? parameter.schema.examples[0]);
        });
        const res = await t.app.inject({
          method: method.toUpperCase() as 'POST',
          url,
          headers: { 'content-type': type },
          payload: JSON.stringify(example),
        });
        expect(res.statusCode, `${method.toUpperCase()} ${url}: ${res.body}`).toBeLessThan(300);
        sent.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(sent).toEqual(
      expect.arrayContaining([
        'POST /v1/products',
        'PATCH /v1/customers/{id}',
        'POST /v1/orders',
        'POST /v1/batch',
        'POST /v1/keys',
        'POST /v1/stock/move',
      ]),
    );
  });

  it("the batch's documented schema accepts exactly the operations the route accepts", async () => {
    await exampleWorld();
    const check = contractValidator();
    let sequence = 0;
    const product = () => ({ ...Product.example, sku: `BATCH-${++sequence}` });
    const customer = () => ({ ...Customer.example, email: `batch-${++sequence}@example.com` });
    const stock = () => ({ ...Stock.example, warehouse: `W-${++sequence}` });
    const id = new ObjectId().toHexString();
    const cases: [string, () => Json][] = [
      ['insert a product', () => ({ op: 'insert', collection: 'products', document: product() })],
      [
        'insert a customer with defaults',
        () => ({ op: 'insert', collection: 'customers', document: { email: customer().email, name: 'Ada' } }),
      ],
      ['insert a stock item', () => ({ op: 'insert', collection: 'stock', document: stock() })],
      ['replace', () => ({ op: 'replace', collection: 'products', id, document: product(), ifMatch: '"1"' })],
      ['patch', () => ({ op: 'patch', collection: 'customers', id, patch: { phone: null } })],
      ['delete', () => ({ op: 'delete', collection: 'stock', id, ifMatch: '*' })],
      ['insert without a document', () => ({ op: 'insert', collection: 'products' })],
      ['insert with an id', () => ({ op: 'insert', collection: 'products', id, document: product() })],
      ['insert with ifMatch', () => ({ op: 'insert', collection: 'products', document: product(), ifMatch: '"1"' })],
      [
        'insert of an invalid document',
        () => ({
          op: 'insert',
          collection: 'products',
          document: { ...product(), price: { amount: -1, currency: 'EUR' } },
        }),
      ],
      ['insert of a customer into products', () => ({ op: 'insert', collection: 'products', document: customer() })],
      ['replace without an id', () => ({ op: 'replace', collection: 'products', document: product() })],
      [
        'replace with a patch',
        () => ({ op: 'replace', collection: 'products', id, document: product(), patch: { name: 'x' } }),
      ],
      ['patch with a document', () => ({ op: 'patch', collection: 'customers', id, document: customer() })],
      ['empty patch', () => ({ op: 'patch', collection: 'customers', id, patch: {} })],
      [
        'patch removing a required member',
        () => ({ op: 'patch', collection: 'customers', id, patch: { email: null } }),
      ],
      ['delete with a document', () => ({ op: 'delete', collection: 'stock', id, document: stock() })],
      ['delete without an id', () => ({ op: 'delete', collection: 'stock' })],
      ['a malformed id', () => ({ op: 'delete', collection: 'stock', id: 'nope' })],
      ['a weak ETag', () => ({ op: 'delete', collection: 'stock', id, ifMatch: 'W/"1"' })],
      ['an order', () => ({ op: 'delete', collection: 'orders', id })],
      ['an unknown op', () => ({ op: 'upsert', collection: 'stock', id })],
      ['an unknown member', () => ({ op: 'delete', collection: 'stock', id, note: 'x' })],
    ];
    const disagreements: string[] = [];
    for (const [label, operation] of cases) {
      const body = { operations: [operation()] };
      const documented = check('/components/schemas/BatchRequest', body).length === 0;
      const res = await t.app.inject({ method: 'POST', url: '/v1/batch', payload: body });
      if (documented !== (res.statusCode !== 400))
        disagreements.push(
          `${label}: contract ${documented ? 'accepts' : 'refuses'}, route answers ${res.statusCode} ${res.body}`,
        );
    }
    expect(disagreements).toEqual([]);
  });
});
