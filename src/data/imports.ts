// What an import (src/import/, npm run import) reads of MongoDB: the stored documents a batch's
// natural keys name, customers by e-mail, the stock counters and open orders' quantities the
// ledger check compares, whether a batch's transaction committed (its audit entries carry the
// batch's request id), and each collection's checksum, streamed in natural-key order so that two
// databases holding the same data give the same digest whatever their ids. The writes go through
// the shop (src/shop/imports.ts) and the unit of work like any other.

import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import mongoose from 'mongoose';
import type { Config } from '../config.ts';
import type { DocumentRepository, StoredDocument } from './documents.ts';
import { AUDIT_COLLECTION } from './audit.ts';
import { createStores, type Stores } from './stores.ts';

const { ObjectId } = mongoose.Types;

/**
 * The service's stores on a command's client (no change streams, no cache: nothing else runs in
 * the process), so that the import writes through the unit of work as the service does.
 */
export function storesOn(
  client: mongoose.mongo.MongoClient,
  dbName: string,
  config: Config,
  log: FastifyBaseLogger,
): Stores {
  const connection = mongoose.createConnection().setClient(client).useDb(dbName, { useCache: true });
  return createStores(
    connection,
    {
      countTimeoutMs: config.mongo.countTimeoutMs,
      queryTimeoutMs: config.security.queryTimeoutMs,
      retentionDays: config.audit.retentionDays,
      cursorSecret: config.security.cursorSecret,
      idempotencyTtlHours: config.idempotency.ttlHours,
      cacheMaxMb: 0,
    },
    log,
  );
}

/** Documents read per round trip when streaming a collection. */
const READ_BATCH = 1000;

export type NaturalKey = Record<string, unknown>;

/** The stored documents that have these natural keys (fields of a unique index), by `keyOf`. */
export async function findByNaturalKeys(
  repository: DocumentRepository,
  keys: readonly NaturalKey[],
  keyOf: (document: Record<string, unknown>) => string,
): Promise<Map<string, StoredDocument>> {
  const found = new Map<string, StoredDocument>();
  if (keys.length === 0) return found;
  const fields = Object.keys(keys[0] as NaturalKey);
  const [only] = fields;
  // One field: $in walks its unique index once; several: one index point per key.
  const filter =
    fields.length === 1 && only !== undefined
      ? { [only]: { $in: keys.map((key) => key[only]) } }
      : { $or: keys.map((key) => ({ ...key })) };
  // The collection's collation applies (customers' e-mails without case), as for the unique index.
  for (const document of await repository.find(filter)) found.set(keyOf(document), document);
  return found;
}

/** Customer ids by e-mail (lower-cased), for the e-mails that name a customer. */
export async function customerIdsByEmail(
  customers: DocumentRepository,
  emails: readonly string[],
): Promise<Map<string, string>> {
  const found = await customers.find({ email: { $in: [...new Set(emails)] } }, { projection: { email: 1 } });
  return new Map(found.map((customer) => [String(customer.email).toLowerCase(), customer._id.toHexString()]));
}

/** A stock item's place: "<sku>@<warehouse>". */
export const placeOf = (sku: unknown, warehouse: unknown) => `${String(sku)}@${String(warehouse)}`;

/** Units the open orders hold, by place, for orders in `statuses` (only those places when given). */
export async function openQuantities(
  orders: DocumentRepository,
  statuses: readonly string[],
  places?: ReadonlySet<string>,
): Promise<Map<string, number>> {
  const match: Record<string, unknown> = { status: { $in: [...statuses] } };
  if (places !== undefined) {
    const [skus, warehouses] = splitPlaces(places);
    Object.assign(match, { warehouse: { $in: warehouses }, 'lines.sku': { $in: skus } });
  }
  const grouped = orders
    .collection()
    .aggregate<{ _id: { sku: string; warehouse: string }; quantity: number }>([
      { $match: match },
      { $unwind: '$lines' },
      { $group: { _id: { sku: '$lines.sku', warehouse: '$warehouse' }, quantity: { $sum: '$lines.quantity' } } },
    ]);
  const quantities = new Map<string, number>();
  for await (const { _id, quantity } of grouped) {
    const place = placeOf(_id.sku, _id.warehouse);
    if (places === undefined || places.has(place)) quantities.set(place, quantity);
  }
  return quantities;
}

/** The reserved units of the stock items at these places (absent: no such item). */
export async function reservedAt(stock: DocumentRepository, places: ReadonlySet<string>): Promise<Map<string, number>> {
  const [skus, warehouses] = splitPlaces(places);
  const reserved = new Map<string, number>();
  const items = stock
    .collection()
    .find(
      { sku: { $in: skus }, warehouse: { $in: warehouses } },
      { projection: { sku: 1, warehouse: 1, reserved: 1 } },
    );
  for await (const item of items) {
    const place = placeOf(item.sku, item.warehouse);
    if (places.has(place)) reserved.set(place, Number(item.reserved));
  }
  return reserved;
}

export interface LedgerMismatch {
  sku: string;
  warehouse: string;
  /** On the stock item (absent: there is none). */
  reserved?: number;
  /** What the open orders hold. */
  openOrders: number;
}

/** Every stock item's reserved units against what the open orders hold there; the first `limit` that differ. */
export async function ledgerMismatches(
  stock: DocumentRepository,
  orders: DocumentRepository,
  openStatuses: readonly string[],
  limit: number,
): Promise<{ items: number; mismatches: LedgerMismatch[]; mismatchCount: number }> {
  const held = await openQuantities(orders, openStatuses);
  const mismatches: LedgerMismatch[] = [];
  let mismatchCount = 0;
  let items = 0;
  const note = (mismatch: LedgerMismatch) => {
    mismatchCount++;
    if (mismatches.length < limit) mismatches.push(mismatch);
  };
  const cursor = stock
    .collection()
    .find(
      {},
      { projection: { sku: 1, warehouse: 1, reserved: 1 }, sort: { sku: 1, warehouse: 1 }, batchSize: READ_BATCH },
    )
    .allowDiskUse(true);
  for await (const item of cursor) {
    items++;
    const place = placeOf(item.sku, item.warehouse);
    const openOrders = held.get(place) ?? 0;
    held.delete(place);
    if (Number(item.reserved) !== openOrders)
      note({ sku: String(item.sku), warehouse: String(item.warehouse), reserved: Number(item.reserved), openOrders });
  }
  for (const [place, openOrders] of held) {
    const at = place.lastIndexOf('@');
    note({ sku: place.slice(0, at), warehouse: place.slice(at + 1), openOrders });
  }
  return { items, mismatches, mismatchCount };
}

/** Whether a write made under this request id committed: its audit entries are in its transaction. */
export async function committed(repository: DocumentRepository, requestId: string): Promise<boolean> {
  const audit = repository.collection().db.collection(AUDIT_COLLECTION);
  return (await audit.findOne({ requestId }, { projection: { _id: 1 } })) !== null;
}

/** The id of a transaction's session, as text (to keep in a checkpoint); none for writes outside one. */
export const sessionIdOf = (session: mongoose.mongo.ClientSession | undefined): string | undefined =>
  session?.id?.id.toString('hex');

/**
 * Ends a session a stopped process left open on the server, aborting its transaction: MongoDB
 * keeps a transaction whose client died until transactionLifetimeLimitSeconds (60 s by default)
 * and refuses every write of the same documents until then. A user may end their own sessions.
 */
export async function endSession(repository: DocumentRepository, sessionId: string): Promise<void> {
  const id = new mongoose.mongo.Binary(Buffer.from(sessionId, 'hex'), mongoose.mongo.Binary.SUBTYPE_UUID);
  await repository
    .collection()
    .db.admin()
    .command({ killSessions: [{ id }] });
}

export interface Checksum {
  count: number;
  sha256: string;
}

/**
 * A digest of a collection's business content: each document's natural key and business fields
 * (`line`), in natural-key order. Orders name their customer by e-mail, so that the digest does
 * not depend on the ids one database gave its customers.
 */
export async function checksumOf(
  repository: DocumentRepository,
  sort: Record<string, 1>,
  line: (document: Record<string, unknown>) => string,
  customers?: DocumentRepository,
): Promise<Checksum> {
  const hash = createHash('sha256');
  let count = 0;
  const cursor = repository
    .collection()
    .find({}, { sort: { ...sort, _id: 1 }, batchSize: READ_BATCH })
    .allowDiskUse(true);
  let pending: StoredDocument[] = [];
  const flush = async () => {
    const emails =
      customers === undefined
        ? undefined
        : new Map(
            (
              await customers.find(
                { _id: { $in: pending.map((order) => new ObjectId(String(order.customerId))) } },
                { projection: { email: 1 } },
              )
            ).map((customer) => [customer._id.toHexString(), String(customer.email).toLowerCase()]),
          );
    for (const document of pending) {
      const named =
        emails === undefined
          ? document
          : { ...document, customerId: emails.get(String(document.customerId)) ?? String(document.customerId) };
      hash.update(`${line(named)}\n`);
      count++;
    }
    pending = [];
  };
  for await (const document of cursor) {
    pending.push(document);
    if (pending.length >= READ_BATCH) await flush();
  }
  await flush();
  return { count, sha256: hash.digest('hex') };
}

function splitPlaces(places: ReadonlySet<string>): [string[], string[]] {
  const skus = new Set<string>();
  const warehouses = new Set<string>();
  for (const place of places) {
    const at = place.lastIndexOf('@');
    skus.add(place.slice(0, at));
    warehouses.add(place.slice(at + 1));
  }
  return [[...skus], [...warehouses]];
}
