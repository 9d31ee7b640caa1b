// The shard keys the entities declare (src/domain/entity.ts, ShardKeyDeclaration), held to what
// the code does. (a) Every unique index starts with its collection's shard key, or the
// declaration says how it stays unique once sharded; no more and no fewer than those; and each key
// is one MongoDB takes (fields every document has and none rewrites, at most one hashed). (b) Every
// query the code issues on a declared collection is classified: targeted (an equality on the
// key's first field) or a scatter-gather the declaration lists with its cost, and every listed
// shape is still issued. The queries are not written down here: the list API's come from each
// declaration's filters, sorts and search through the repository's own query builder, the others
// from running the methods of src/data (and the one lookup src/shop makes) against a database
// stand-in that records every command instead of sending it. A new filter, sort or query method
// fails here until its declaration classifies it. No mongod is needed.

import mongoose, { type ClientSession, type Connection, type Model } from 'mongoose';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent } from '../../src/domain/audit.ts';
import { documentWrites, schemaAt, type Entity } from '../../src/domain/entity.ts';
import { ENTITIES, Order } from '../../src/domain/entities/index.ts';
import { RESERVE } from '../../src/domain/stock-movements.ts';
import { DocumentRepository, type StoredDocument } from '../../src/data/documents.ts';
import type { CursorKeys } from '../../src/data/cursor-keys.ts';
import * as imports from '../../src/data/imports.ts';
import { OrderRepository } from '../../src/data/orders.ts';
import type { FilterClause, ListRequest } from '../../src/data/query.ts';
import { StockRepository } from '../../src/data/stock-movements.ts';
import { UnitOfWork, type Tx, type WriteContext } from '../../src/data/unit-of-work.ts';
import type { AuditStream } from '../../src/data/audit-stream.ts';
import { SPECS } from '../../src/import/collections.ts';
import { StockOperations } from '../../src/shop/stock.ts';
import { sampleValue } from '../helpers/filter-values.ts';

const { ObjectId } = mongoose.Types;

type Filter = Record<string, unknown>;

/** The declared collections: the entities, and the audit trail, which the list API serves alike. */
const DECLARED: readonly Entity[] = [...(ENTITIES as readonly Entity[]), AuditEvent];
const entityOf = (collection: string) => DECLARED.find((entity) => entity.collection === collection);

// --- (a) unique indexes ----------------------------------------------------------------------

const keyFields = (entity: Entity) => Object.keys(entity.shardKey.key);

function prefixedByKey(entity: Entity, indexKey: Record<string, unknown>): boolean {
  const fields = Object.keys(indexKey);
  return keyFields(entity).every((field, position) => fields[position] === field);
}

describe('every unique index keeps its uniqueness once sharded', () => {
  for (const entity of DECLARED) {
    it(`${entity.collection}: the unique indexes the shard key does not prefix are exactly those declared, each with how it stays unique`, () => {
      const notPrefixed = entity.indexes
        .filter((index) => index.unique === true && !prefixedByKey(entity, index.key))
        .map((index) => index.name)
        .sort();
      expect(notPrefixed).toEqual(Object.keys(entity.shardKey.uniqueElsewhere).sort());
      for (const how of Object.values(entity.shardKey.uniqueElsewhere)) expect(how.length).toBeGreaterThan(40);
    });
  }
});

describe('every shard key is one MongoDB accepts and the documents keep', () => {
  for (const entity of DECLARED) {
    it(`${entity.collection}: fields every document has, that never change, at most one of them hashed`, () => {
      const required = (entity.stored as { required?: string[] }).required ?? [];
      const rewritable = documentWrites(entity).replace || documentWrites(entity).patch;
      for (const field of keyFields(entity)) {
        // A missing key field is filed as null: every document of the collection would share it.
        expect(required, field).toContain(field);
        // A key value that changes moves its document between shards, and needs the old value in the filter.
        if (field !== '_id' && rewritable) expect(entity.immutable, field).toContain(field);
        expect(schemaAt(entity, field).type, `${field}: a hashed or multikey shard key cannot be an array`).not.toBe(
          'array',
        );
      }
      expect(Object.values(entity.shardKey.key).filter((kind) => kind === 'hashed').length).toBeLessThanOrEqual(1);
      expect(entity.shardKey.why.length).toBeGreaterThan(80);
    });

    // shardCollection needs an index that starts with the key; a hashed key's is built when sharding.
    if (!Object.values(entity.shardKey.key).includes('hashed')) {
      it(`${entity.collection}: a ranged key is already the prefix of a declared index`, () => {
        expect(entity.indexes.some((index) => prefixedByKey(entity, index.key))).toBe(true);
      });
    }
  }
});

// --- (b) query shapes ------------------------------------------------------------------------

interface Issued {
  collection: string;
  command: string;
  filter: Filter;
  sort?: Record<string, unknown>;
  /** What issued it: a list request, or the method that was run. */
  by: string;
}

/**
 * A stand-in for the driver's Db: each collection records its commands and answers as an empty
 * database would (nothing found, nothing matched). Every path a method takes on "nothing found"
 * is a path the code really takes.
 */
class RecordingDb {
  readonly issued: Issued[] = [];
  by = '';
  /** Makes the next findOneAndReplace fail as a lost connection does. */
  failNextReplace = false;

  collection(name: string) {
    const record = (command: string, filter: unknown, sort?: unknown) => {
      this.issued.push({
        collection: name,
        command,
        filter: (filter ?? {}) as Filter,
        ...(sort !== undefined && { sort: sort as Record<string, unknown> }),
        by: this.by,
      });
    };
    const cursor = () => ({
      toArray: async () => [],
      explain: async () => ({}),
      allowDiskUse() {
        return this;
      },
      async *[Symbol.asyncIterator]() {},
    });
    return {
      db: this,
      find: (filter: unknown, options?: { sort?: unknown }) => {
        record('find', filter, options?.sort);
        return cursor();
      },
      findOne: async (filter: unknown) => {
        record('findOne', filter);
        return null;
      },
      countDocuments: async (filter: unknown) => {
        record('countDocuments', filter);
        return 0;
      },
      aggregate: (pipeline: { $match?: unknown }[]) => {
        record('aggregate', pipeline[0]?.$match ?? {});
        return cursor();
      },
      findOneAndUpdate: async (filter: unknown, _update: unknown, options?: { includeResultMetadata?: boolean }) => {
        record('findOneAndUpdate', filter);
        return options?.includeResultMetadata ? { value: null, lastErrorObject: { updatedExisting: false } } : null;
      },
      findOneAndReplace: async (filter: unknown) => {
        record('findOneAndReplace', filter);
        if (this.failNextReplace) {
          this.failNextReplace = false;
          throw new mongoose.mongo.MongoNetworkError('connection lost (recorded, never sent)');
        }
        return null;
      },
      deleteOne: async (filter: unknown) => {
        record('deleteOne', filter);
        return { deletedCount: 0 };
      },
      insertMany: async () => ({}),
    };
  }
}

const db = new RecordingDb();

function repositoryOf(entity: Entity): DocumentRepository {
  const model = { db: { db }, collection: { collectionName: entity.collection } } as unknown as Model<unknown>;
  return new DocumentRepository(entity, model, {
    countTimeoutMs: 1000,
    queryTimeoutMs: 1000,
    cursors: {} as CursorKeys,
  });
}

const repositories = new Map(DECLARED.map((entity) => [entity.collection, repositoryOf(entity)]));
const repository = (collection: string) => repositories.get(collection)!;

/** Every list request the API accepts, one filter clause at a time, then unfiltered under each sort, then q. */
function listRequests(entity: Entity): { label: string; request: ListRequest }[] {
  const request = (filters: FilterClause[], sort = entity.defaultSort, q?: string): ListRequest => ({
    filters,
    ...(q !== undefined && { q }),
    sort: { field: sort, direction: 1 },
    limit: 50,
    count: false,
  });
  const requests: { label: string; request: ListRequest }[] = [];
  for (const [field, ops] of Object.entries(entity.filters))
    for (const op of ops)
      requests.push({
        label: `list ${field}[${op}]`,
        request: request([{ field, op, value: sampleValue(entity, field, op) }]),
      });
  for (const sort of entity.sorts) requests.push({ label: `list sorted by ${sort}`, request: request([], sort) });
  if (entity.textSearch) requests.push({ label: 'list q', request: request([], entity.defaultSort, 'sample') });
  return requests;
}

const ids = { customer: new ObjectId(), order: new ObjectId() };
const tx: Tx = { session: {} as ClientSession, record: () => undefined };
const now = new Date('2026-11-25T09:30:00.000Z');
const stored = (entity: Entity, _id: InstanceType<typeof ObjectId>): StoredDocument => ({
  _id,
  ...entity.example,
  ...entity.serverExample,
  ...entity.serverDefaults,
  version: 3,
  createdAt: now,
});

const orders = new OrderRepository(
  repository('orders'),
  repository('customers'),
  repository('products'),
  repository('stock'),
);
const stock = new StockRepository(repository('stock'));
const log = pino({ level: 'silent' });
const context: WriteContext = { actor: { keyId: ids.customer.toHexString(), keyName: 'k', requestId: 'r' }, log };
/** The unit of work over the recording database, for its atomic writes (a transaction would need a real session). */
const work = new UnitOfWork({ db } as unknown as Connection, {
  insertIn: async () => undefined,
  insertStamped: async () => undefined,
  stream: {} as AuditStream,
});
const places = new Set([imports.placeOf('TSHIRT-RED-M', 'AMS-1')]);

/** The methods of src/data and src/shop that build queries, each run once; the names are what the guard below checks. */
const RUNS: Record<string, () => Promise<unknown>> = {
  'DocumentRepository.findById': async () => {
    for (const entity of DECLARED) await repository(entity.collection).findById(new ObjectId().toHexString());
  },
  'DocumentRepository.replaceIf': async () => {
    for (const entity of DECLARED.filter((e) => documentWrites(e).replace || documentWrites(e).patch)) {
      const current = stored(entity, new ObjectId());
      await repository(entity.collection).replaceIf(tx, current, { ...entity.example }, { action: 'replace' });
    }
  },
  'DocumentRepository.deleteIf': async () => {
    for (const entity of DECLARED.filter((e) => documentWrites(e).delete))
      await repository(entity.collection).deleteIf(tx, stored(entity, new ObjectId()), { action: 'delete' });
  },
  // An atomic write whose connection is lost mid-way: the unit of work then looks for its stamp.
  'UnitOfWork.runAtomic': async () => {
    for (const entity of DECLARED.filter((e) => documentWrites(e).replace)) {
      db.failNextReplace = true;
      const current = stored(entity, new ObjectId());
      await work.runAtomic(context, async (atomic) => {
        const replacing = repository(entity.collection);
        const written = await replacing.replaceIf(atomic, current, { ...entity.example }, { action: 'replace' });
        return (written ?? current) as never;
      });
    }
  },
  'OrderRepository.find': () => orders.find(ids.order.toHexString()),
  'OrderRepository.customerExists': () => orders.customerExists(ids.customer.toHexString()),
  'OrderRepository.catalog': () => orders.catalog(['TSHIRT-RED-M', 'MUG-BLUE']),
  'OrderRepository.changeStatus': () =>
    orders.changeStatus(tx, stored(Order, ids.order) as never, { action: 'pay', to: 'paid', now }),
  'OrderRepository.countPurchase': () =>
    orders.countPurchase(tx, ids.customer.toHexString(), { amount: 4998, currency: 'EUR' }, now),
  'OrderRepository.referencesIn': async () => {
    const references = orders.referencesIn({} as ClientSession);
    await references.ordersWithSku('TSHIRT-RED-M');
    await references.stockWithSku('TSHIRT-RED-M');
    await references.ordersOfCustomer(ids.customer);
  },
  'StockRepository.apply': () =>
    stock.apply(tx, { sku: 'TSHIRT-RED-M', warehouse: 'AMS-1' }, RESERVE, 2, { action: 'place', now }),
  'StockRepository.receive': () =>
    stock.receive(tx, { sku: 'TSHIRT-RED-M', warehouse: 'AMS-1' }, 5, { action: 'restock', now }),
  'StockRepository.available': () => stock.available(undefined, 'AMS-1', ['TSHIRT-RED-M', 'MUG-BLUE']),
  'StockOperations.restock': () =>
    new StockOperations(
      { run: (_context: unknown, run: (t: Tx) => unknown) => run(tx) } as never,
      stock,
      repository('products'),
    ).restock({ sku: 'TSHIRT-RED-M', warehouse: 'AMS-1', quantity: 5 }, context),
  'imports.findByNaturalKeys': async () => {
    for (const spec of Object.values(SPECS)) {
      const example = stored(spec.entity, new ObjectId()) as Record<string, unknown>;
      const key = Object.fromEntries(spec.keyFields.map((field) => [field, example[field] ?? 'WEB-100231']));
      await imports.findByNaturalKeys(repository(spec.collection), [key, key], spec.keyOf);
    }
  },
  'imports.customerIdsByEmail': () => imports.customerIdsByEmail(repository('customers'), ['ada@example.com']),
  'imports.openQuantities': async () => {
    await imports.openQuantities(repository('orders'), ['placed', 'paid']);
    await imports.openQuantities(repository('orders'), ['placed', 'paid'], places);
  },
  'imports.reservedAt': () => imports.reservedAt(repository('stock'), places),
  'imports.ledgerMismatches': () => imports.ledgerMismatches(repository('stock'), repository('orders'), ['placed'], 10),
  'imports.committed': () => imports.committed(repository('orders'), 'r'),
  'imports.checksumOf': async () => {
    for (const spec of Object.values(SPECS)) {
      const sort = Object.fromEntries(spec.keyFields.map((field) => [field, 1 as const]));
      const customers = spec.collection === 'orders' ? repository('customers') : undefined;
      await imports.checksumOf(repository(spec.collection), sort, () => '', customers);
    }
  },
};

/** Exports of src/data/imports.ts that issue no query on a declared collection. */
const NOT_QUERIES: Record<string, string> = {
  storesOn: 'builds the stores',
  placeOf: 'formats a place',
  sessionIdOf: 'reads a session id',
  endSession: 'an admin command (killSessions), on no collection',
};

/** The fields a filter names, through $and and $or. */
function fieldsOf(filter: Filter): string[] {
  return Object.entries(filter).flatMap(([field, condition]) =>
    field === '$and' || field === '$or' || field === '$nor'
      ? (condition as Filter[]).flatMap(fieldsOf)
      : [field === '$text' ? '$text' : field],
  );
}

function shapeOf({ filter, sort }: Pick<Issued, 'filter' | 'sort'>): string {
  const fields = [...new Set(fieldsOf(filter))].sort();
  if (fields.length > 0) return fields.join(' + ');
  return `sort ${Object.keys(sort ?? {})
    .filter((field) => field !== '_id')
    .join(' + ')}`.trimEnd();
}

const isOperators = (value: unknown): value is Filter =>
  value !== null &&
  typeof value === 'object' &&
  Object.getPrototypeOf(value) === Object.prototype &&
  Object.keys(value).some((key) => key.startsWith('$'));

/** Whether the filter holds `field` to one value or a list of values, which mongos routes to the shards owning them. */
function pins(filter: Filter, field: string): boolean {
  if (Object.hasOwn(filter, field)) {
    const condition = filter[field];
    if (!isOperators(condition) || '$eq' in condition || '$in' in condition) return true;
  }
  const and = filter.$and as Filter[] | undefined;
  const or = filter.$or as Filter[] | undefined;
  return (
    (and?.some((part) => pins(part, field)) ?? false) || (or !== undefined && or.every((part) => pins(part, field)))
  );
}

describe('every query the code issues on a declared collection is targeted or a declared scatter-gather', () => {
  /** Methods that issued nothing: they could not be classified. */
  const silent: string[] = [];
  beforeAll(async () => {
    for (const entity of DECLARED) {
      for (const { label, request } of listRequests(entity)) {
        db.by = `${label} (${entity.collection})`;
        await repository(entity.collection).explainList(request);
      }
    }
    for (const [name, run] of Object.entries(RUNS)) {
      db.by = name;
      const before = db.issued.length;
      // An empty database makes several of them refuse (no such customer, product...): after their queries.
      await run().catch(() => undefined);
      if (db.issued.length === before) silent.push(name);
    }
  });

  it('runs every list request and every query-building method, each issuing its queries', () => {
    expect(silent).toEqual([]);
    expect(db.issued.length).toBeGreaterThan(DECLARED.length * 10);
  });

  it('classifies each one: an equality on the key, or a shape its declaration lists with its cost', () => {
    const unclassified = new Set<string>();
    const seen = new Map<string, Set<string>>();
    for (const issued of db.issued) {
      const entity = entityOf(issued.collection);
      if (entity === undefined) continue;
      if (pins(issued.filter, keyFields(entity)[0]!)) continue;
      const shape = shapeOf(issued);
      if (!seen.has(entity.collection)) seen.set(entity.collection, new Set());
      seen.get(entity.collection)!.add(shape);
      const declared = entity.shardKey.scatterGather.some((group) => group.shapes.includes(shape));
      if (!declared) unclassified.add(`${entity.collection}: "${shape}" by ${issued.by} (${issued.command})`);
    }
    expect([...unclassified]).toEqual([]);

    // No shape is listed that nothing issues any more (nor one issued only with the key).
    const stale = DECLARED.flatMap((entity) =>
      entity.shardKey.scatterGather
        .flatMap((group) => group.shapes)
        .filter((shape) => !seen.get(entity.collection)?.has(shape))
        .map((shape) => `${entity.collection}: "${shape}"`),
    );
    expect(stale).toEqual([]);
    for (const entity of DECLARED)
      for (const group of entity.shardKey.scatterGather)
        expect(group.cost.length, group.shapes.join()).toBeGreaterThan(40);
  });

  it('runs every query-building method there is (a new one fails here until it is run and classified)', () => {
    const methods = (prototype: object, owner: string) =>
      Object.getOwnPropertyNames(prototype)
        .filter((name) => name !== 'constructor')
        .map((name) => `${owner}.${name}`);
    const exported = Object.entries(imports)
      .filter(([name, value]) => typeof value === 'function' && !(name in NOT_QUERIES))
      .map(([name]) => `imports.${name}`);
    const required = [
      ...methods(OrderRepository.prototype, 'OrderRepository'),
      ...methods(StockRepository.prototype, 'StockRepository'),
      ...exported,
    ];
    expect(required.filter((name) => !(name in RUNS))).toEqual([]);
  });

  it('recognises what it classifies: an equality or a list of values on the key pins it, anything else does not', () => {
    expect(pins({ sku: 'A', version: 2 }, 'sku')).toBe(true);
    expect(pins({ sku: { $in: ['A', 'B'] } }, 'sku')).toBe(true);
    expect(pins({ _id: new ObjectId() }, '_id')).toBe(true);
    expect(pins({ $or: [{ sku: 'A' }, { sku: 'B', warehouse: 'X' }] }, 'sku')).toBe(true);
    expect(pins({ $or: [{ sku: 'A' }, { name: 'B' }] }, 'sku')).toBe(false);
    expect(pins({ $and: [{ sku: { $regex: '^A' } }] }, 'sku')).toBe(false);
    expect(pins({ sku: { $gte: 'A', $lt: 'B' } }, 'sku')).toBe(false);
    expect(shapeOf({ filter: { version: 1, _id: 1 } })).toBe('_id + version');
    expect(shapeOf({ filter: {}, sort: { createdAt: -1, _id: -1 } })).toBe('sort createdAt');
  });
});
