// The benchmark's floor: Fastify with the raw MongoDB driver, answering the routes the benchmark
// drives with the same MongoDB operations as the service and the same JSON, and nothing else:
// no schemas, no validation beyond the collections' own validators, no Mongoose, no logging,
// no authentication (the Authorization header is ignored). What the service costs above this
// is what its framework layers cost.

import Fastify, { type FastifyReply } from 'fastify';
import mongoose from 'mongoose';
import { applyMergePatch, type Json } from '../../src/domain/merge-patch.ts';
import type { CatalogProduct, OrderPlacement } from '../../src/domain/orders.ts';
import {
  InsufficientStock,
  PRODUCT_PROJECTION,
  TRANSACTION_OPTIONS,
  clientOptions,
  insertedDocuments,
  isObjectId,
  linkWith,
  listParameters,
  orderDocument,
  purchaseUpdates,
  serverEnvironment,
  toResource,
  valueAt,
  type PlainDocument,
} from './shared.ts';

const { MongoClient, ObjectId } = mongoose.mongo;
const WRITE_ATTEMPTS = 5;

const environment = serverEnvironment();
const client = await new MongoClient(environment.uri, clientOptions(environment, 'bench-floor')).connect();
const db = client.db(environment.dbName);
const products = db.collection<PlainDocument>('products');
// Loosely typed: the order placement's updates use dotted and positional paths.
const stock = db.collection('stock');
const customers = db.collection('customers');
const orders = db.collection<PlainDocument>('orders');

const app = Fastify({ logger: false, bodyLimit: 1_048_576 });
app.addContentTypeParser(
  'application/merge-patch+json',
  { parseAs: 'string' },
  app.getDefaultJsonParser('error', 'error'),
);

const fail = (reply: FastifyReply, status: number, title: string) => reply.code(status).send({ status, title });

const sendDocument = (reply: FastifyReply, document: PlainDocument, status = 200) =>
  reply
    .code(status)
    .header('etag', `"${document.version as number}"`)
    .send(toResource(document));

app.get('/health', async () => ({ status: 'ready' }));

app.get<{ Params: { id: string } }>('/v1/products/:id', async (request, reply) => {
  if (!isObjectId(request.params.id)) return fail(reply, 400, 'Bad Request');
  const document = await products.findOne({ _id: new ObjectId(request.params.id) });
  return document === null ? fail(reply, 404, 'Not Found') : sendDocument(reply, document);
});

// Keyset pages, the cursor being the last item's sort value and id (dates marked as such).
app.get<{ Querystring: Record<string, string> }>('/v1/products', async (request, reply) => {
  const { filter, field, direction, limit } = listParameters(request.query);
  let pageFilter: Record<string, unknown> = filter;
  if (request.query.cursor !== undefined) {
    const { v, d, i } = JSON.parse(Buffer.from(request.query.cursor, 'base64url').toString('utf8')) as {
      v: unknown;
      d?: boolean;
      i: string;
    };
    const value = d === true ? new Date(v as string) : v;
    const beyond = direction === 1 ? '$gt' : '$lt';
    pageFilter = {
      $and: [
        filter,
        { $or: [{ [field]: { [beyond]: value } }, { [field]: value, _id: { [beyond]: new ObjectId(i) } }] },
      ],
    };
  }
  const items = await products
    .find(pageFilter)
    .sort({ [field]: direction, _id: direction })
    .limit(limit + 1)
    .toArray();
  let next: string | null = null;
  if (items.length > limit) {
    items.length = limit;
    const last = items[limit - 1]!;
    const value = valueAt(last, field);
    const cursor = { v: value, ...(value instanceof Date && { d: true }), i: last._id.toHexString() };
    next = linkWith(request.url, 'cursor', Buffer.from(JSON.stringify(cursor)).toString('base64url'));
    reply.header('link', `<${next}>; rel="next"`);
  }
  return { items: items.map(toResource), next };
});

app.post<{ Body: Record<string, unknown> }>('/v1/products', async (request, reply) => {
  const now = new Date();
  const document = { _id: new ObjectId(), ...request.body, version: 1, createdAt: now, updatedAt: now };
  try {
    await products.insertOne(document);
  } catch (error) {
    const code = (error as { code?: number }).code;
    if (code === 11000) return fail(reply, 409, 'Conflict');
    if (code === 121) return fail(reply, 400, 'Bad Request');
    throw error;
  }
  reply.header('location', `/v1/products/${document._id.toHexString()}`);
  return sendDocument(reply, document, 201);
});

// Read, merge, write back only if nobody wrote in between: the service's version-conditional write.
app.patch<{ Params: { id: string }; Body: Record<string, Json> }>('/v1/products/:id', async (request, reply) => {
  if (!isObjectId(request.params.id)) return fail(reply, 400, 'Bad Request');
  const _id = new ObjectId(request.params.id);
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    const current = await products.findOne({ _id });
    if (current === null) return fail(reply, 404, 'Not Found');
    const { _id: _ignored, version, createdAt, updatedAt: _updatedAt, ...writable } = current;
    const merged = applyMergePatch(writable as Json, request.body) as Record<string, unknown>;
    const next = { ...merged, version: (version as number) + 1, createdAt, updatedAt: new Date() };
    const written = await products.findOneAndReplace({ _id, version }, next, { returnDocument: 'after' });
    if (written !== null) return sendDocument(reply, written);
  }
  return fail(reply, 409, 'Conflict');
});

// One transaction: reserve every line (never below zero), check the customer, price from the
// catalog, store the order, count it in the customer's stats. The driver retries transient errors.
app.post<{ Body: OrderPlacement }>('/v1/orders', async (request, reply) => {
  const placement = request.body;
  const session = client.startSession();
  try {
    const order = await session.withTransaction(async () => {
      const now = new Date();
      for (const line of placement.lines) {
        const reserved = await stock.findOneAndUpdate(
          { sku: line.sku, warehouse: placement.warehouse, available: { $gte: line.quantity } },
          { $inc: { available: -line.quantity, reserved: line.quantity, version: 1 }, $set: { updatedAt: now } },
          { session, returnDocument: 'after' },
        );
        if (reserved === null) throw new InsufficientStock(line.sku);
      }
      const customer = await customers.findOne(
        { _id: new ObjectId(placement.customerId) },
        { session, projection: { _id: 1 } },
      );
      if (customer === null) throw new RangeError('unknown customer');
      const catalog = await products
        .find({ sku: { $in: placement.lines.map((line) => line.sku) } }, { session, projection: PRODUCT_PROJECTION })
        .toArray();
      const document = orderDocument(placement, catalog as unknown as CatalogProduct[], now);
      await orders.insertOne(document, { session });
      for (const { filter, update } of purchaseUpdates(placement.customerId, document.totals.subtotal, now)) {
        if ((await customers.updateOne(filter, update, { session })).matchedCount === 1) break;
      }
      return document;
    }, TRANSACTION_OPTIONS);
    return await sendDocument(reply, order, 201);
  } catch (error) {
    if (error instanceof InsufficientStock || error instanceof RangeError) return await fail(reply, 409, 'Conflict');
    throw error;
  } finally {
    await session.endSession();
  }
});

// The raw driver's insertMany, per collection, without a transaction.
app.post<{ Body: { operations?: unknown } | undefined }>('/v1/batch', async (request, reply) => {
  let inserts;
  try {
    inserts = insertedDocuments(request.body?.operations);
  } catch {
    return fail(reply, 400, 'Bad Request');
  }
  const byCollection = new Map<string, Record<string, unknown>[]>();
  for (const { collection, document } of inserts)
    byCollection.set(collection, [...(byCollection.get(collection) ?? []), document]);
  for (const [collection, documents] of byCollection) await db.collection(collection).insertMany(documents);
  return {
    results: inserts.map(({ document }, index) => ({
      index,
      op: 'insert',
      status: 201,
      id: (document._id as InstanceType<typeof ObjectId>).toHexString(),
      version: 1,
      document: toResource(document as PlainDocument),
    })),
  };
});

const close = async () => {
  await app.close();
  await client.close();
  process.exit(0);
};
process.once('SIGTERM', () => void close()).once('SIGINT', () => void close());

await app.listen({ host: environment.host, port: environment.port });
