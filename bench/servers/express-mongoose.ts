// The benchmark's usual alternative: Express 5 with Mongoose models and hydrated documents (no
// .lean()), written the way such an app usually is: res.json of the documents, doc.save() for
// a patch, skip/limit pages (?page=N), Mongoose's connection.transaction for order placement,
// Model.insertMany for a batch. The models are the service's own (the same Mongoose schemas, so
// the same casting and validation); documents answer with `id` instead of `_id` through the
// usual toJSON transform. No logging, no authentication (the Authorization header is ignored).

import express, { type NextFunction, type Request, type Response } from 'express';
import mongoose, { type Model } from 'mongoose';
import { Customer, Order, Product, Stock } from '../../src/domain/entities/index.ts';
import type { Entity } from '../../src/domain/entity.ts';
import { applyMergePatch, type Json } from '../../src/domain/merge-patch.ts';
import type { OrderPlacement } from '../../src/domain/orders.ts';
import { toMongooseSchema } from '../../src/data/mongoose-schema.ts';
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
} from './shared.ts';

const environment = serverEnvironment();
const connection = await mongoose
  .createConnection(environment.uri, {
    ...clientOptions(environment, 'bench-express'),
    dbName: environment.dbName,
    autoIndex: false,
    autoCreate: false,
  })
  .asPromise();

function modelOf(entity: Entity): Model<any> {
  const schema = toMongooseSchema(entity.stored, { collection: entity.collection, collation: entity.collation });
  schema.set('toJSON', {
    transform: (_document: unknown, result: Record<string, unknown>) => {
      const { _id, ...rest } = result;
      return { id: String(_id), ...rest };
    },
  });
  return connection.model(entity.schemaName, schema, entity.collection);
}

const models: Record<string, Model<any>> = {
  products: modelOf(Product),
  stock: modelOf(Stock),
  customers: modelOf(Customer),
  orders: modelOf(Order),
};
const { products, stock, customers, orders } = models as Record<
  'products' | 'stock' | 'customers' | 'orders',
  Model<any>
>;

const app = express();
app.use(express.json({ limit: '1mb', type: ['application/json', 'application/merge-patch+json'] }));

const fail = (response: Response, status: number, title: string) => response.status(status).json({ status, title });

app.get('/health', (_request, response) => {
  response.json({ status: 'ready' });
});

app.get('/v1/products/:id', async (request, response) => {
  if (!isObjectId(request.params.id)) return fail(response, 400, 'Bad Request');
  const product = await products.findById(request.params.id);
  if (product === null) return fail(response, 404, 'Not Found');
  response.set('etag', `"${product.version}"`).json(product);
});

// Pages by skip and limit, as such an app usually pages: ?page=N.
app.get('/v1/products', async (request, response) => {
  const { filter, field, direction, limit } = listParameters(request.query);
  const page = Math.max(1, Number(request.query.page ?? 1) || 1);
  const items = await products
    .find(filter)
    .sort({ [field]: direction, _id: direction })
    .skip((page - 1) * limit)
    .limit(limit + 1);
  let next: string | null = null;
  if (items.length > limit) {
    items.length = limit;
    next = linkWith(request.originalUrl, 'page', String(page + 1));
    response.set('link', `<${next}>; rel="next"`);
  }
  response.json({ items, next });
});

app.post('/v1/products', async (request, response) => {
  const now = new Date();
  try {
    const product = await products.create({ ...request.body, version: 1, createdAt: now, updatedAt: now });
    response
      .status(201)
      .set('location', `/v1/products/${product._id}`)
      .set('etag', `"${product.version}"`)
      .json(product);
  } catch (error) {
    if ((error as { code?: number }).code === 11000) return fail(response, 409, 'Conflict');
    if (error instanceof mongoose.Error.ValidationError || error instanceof mongoose.Error.StrictModeError)
      return fail(response, 400, 'Bad Request');
    throw error;
  }
});

app.patch('/v1/products/:id', async (request, response) => {
  if (!isObjectId(request.params.id)) return fail(response, 400, 'Bad Request');
  const product = await products.findById(request.params.id);
  if (product === null) return fail(response, 404, 'Not Found');
  const { _id, version, createdAt, updatedAt, ...writable } = product.toObject();
  product.set(applyMergePatch(writable as Json, request.body));
  product.version = (version as number) + 1;
  product.updatedAt = new Date();
  await product.save();
  response.set('etag', `"${product.version}"`).json(product);
});

app.post('/v1/orders', async (request: Request<Record<string, string>, unknown, OrderPlacement>, response) => {
  const placement = request.body;
  try {
    const order = await connection.transaction(async (session) => {
      const now = new Date();
      for (const line of placement.lines) {
        const reserved = await stock.findOneAndUpdate(
          { sku: line.sku, warehouse: placement.warehouse, available: { $gte: line.quantity } },
          { $inc: { available: -line.quantity, reserved: line.quantity, version: 1 }, $set: { updatedAt: now } },
          { session, returnDocument: 'after' },
        );
        if (reserved === null) throw new InsufficientStock(line.sku);
      }
      if ((await customers.exists({ _id: placement.customerId }).session(session)) === null)
        throw new RangeError('unknown customer');
      const catalog = await products
        .find({ sku: { $in: placement.lines.map((line) => line.sku) } }, PRODUCT_PROJECTION)
        .session(session);
      const [created] = await orders.create([orderDocument(placement, catalog, now)], {
        session,
      });
      for (const { filter, update } of purchaseUpdates(placement.customerId, created.totals.subtotal, now)) {
        if ((await customers.updateOne(filter, update, { session })).matchedCount === 1) break;
      }
      return created;
    }, TRANSACTION_OPTIONS);
    response.status(201).set('etag', `"${order.version}"`).json(order);
  } catch (error) {
    if (error instanceof InsufficientStock || error instanceof RangeError) return fail(response, 409, 'Conflict');
    throw error;
  }
});

app.post('/v1/batch', async (request, response) => {
  let inserts;
  try {
    inserts = insertedDocuments(request.body?.operations);
  } catch {
    return fail(response, 400, 'Bad Request');
  }
  const byCollection = new Map<string, Record<string, unknown>[]>();
  for (const { collection, document } of inserts)
    byCollection.set(collection, [...(byCollection.get(collection) ?? []), document]);
  const written = new Map<string, mongoose.Document[]>();
  for (const [collection, documents] of byCollection)
    written.set(collection, await models[collection]!.insertMany(documents));
  const cursors = new Map<string, number>();
  response.json({
    results: inserts.map(({ collection }, index) => {
      const at = cursors.get(collection) ?? 0;
      cursors.set(collection, at + 1);
      const document = written.get(collection)![at]!;
      return { index, op: 'insert', status: 201, id: String(document._id), version: 1, document };
    }),
  });
});

app.use((error: Error, _request: Request, response: Response, _next: NextFunction) => {
  response.status(500).json({ status: 500, title: 'Internal Server Error', detail: error.message });
});

const server = app.listen(environment.port, environment.host);
const close = async () => {
  server.close();
  await connection.close();
  process.exit(0);
};
process.once('SIGTERM', () => void close()).once('SIGINT', () => void close());
