// A backup taken while orders are placed, paid, shipped and cancelled through the app, restored
// into another mongod: the restored shop is consistent (one point in time for every collection),
// matches the manifest, and the service runs on it.

import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.ts';
import { backupDatabase } from '../../src/backup/dump.ts';
import type { Manifest } from '../../src/backup/manifest.ts';
import type { ProgressEvent } from '../../src/backup/progress.ts';
import { restoreDatabase } from '../../src/backup/restore.ts';
import { seed } from '../../src/cli/seed.ts';
import { loadConfig } from '../../src/config.ts';
import { pendingMigrations } from '../../src/data/migrations.ts';
import { createLogger } from '../../src/logger.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../src/mongod/embedded.ts';
import {
  LogCapture,
  MIGRATION_FILES,
  buildTestApp,
  dropDatabase,
  waitForDatabase,
  type TestApp,
} from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';
import type { StoredStock } from '../helpers/documents.ts';
import { backupDir, collectionDigest, connect, schemaOf, type Db, type MongoClient } from './helpers.ts';

const WAREHOUSES = ['AMS-1', 'BER-1'];
const SKUS = ['LOAD-A', 'LOAD-B', 'LOAD-C', 'LOAD-D'];
const STOCKED = 400;
const WORKERS = 6;
const RESTORED_DB = 'storekeeper_restored';

/** One worker of the load: places orders and moves some on, until told to stop. */
async function orderLoop(
  s: Shop,
  customers: string[],
  worker: number,
  running: () => boolean,
  done: () => void,
): Promise<void> {
  for (let i = 0; running(); i++) {
    const pick = (list: readonly string[], salt: number) => list[(worker * 7 + i * 3 + salt) % list.length]!;
    const lines = [{ sku: pick(SKUS, 0), quantity: 1 + ((worker + i) % 3) }];
    const other = pick(SKUS, 1 + (i % 3));
    if (i % 2 === 0 && other !== lines[0]!.sku) lines.push({ sku: other, quantity: 1 });
    const placed = await s.place(pick(customers, 5), pick(WAREHOUSES, worker), lines);
    // 409: out of stock, which a long enough run reaches; anything else is a broken test.
    if (placed.statusCode === 409) continue;
    if (placed.statusCode !== 201) throw new Error(`placing an order answered ${placed.statusCode}: ${placed.body}`);
    done();
    const id = placed.json().id as string;
    // A mix of fates: cancelled from placed or after payment, shipped, delivered, left paid or placed.
    const steps = [['cancel'], ['pay', 'cancel'], ['pay', 'ship'], ['pay', 'ship', 'deliver'], ['pay'], []][
      (worker + i) % 6
    ]!;
    for (const action of steps) {
      const res = await s.act(id, action);
      if (res.statusCode !== 200) throw new Error(`${action} answered ${res.statusCode}: ${res.body}`);
      done();
    }
  }
}

/** Runs the workers until stopped; waits for a number of writes, failing early if a worker failed. */
function startLoad(s: Shop, customers: string[]) {
  let running = true;
  let writes = 0;
  let failure: Error | undefined;
  const workers = Array.from({ length: WORKERS }, (_, worker) =>
    orderLoop(
      s,
      customers,
      worker,
      () => running && failure === undefined,
      () => (writes += 1),
    ).catch((error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(String(error));
    }),
  );
  return {
    get writes() {
      return writes;
    },
    async waitFor(count: number): Promise<void> {
      while (writes < count) {
        if (failure !== undefined) throw failure;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop(): Promise<void> {
      running = false;
      await Promise.all(workers);
      if (failure !== undefined) throw failure;
    },
  };
}

describe('a backup taken while orders are placed and cancelled, restored into a fresh mongod', () => {
  // Set one by one as the setup gets that far: afterAll releases what was made.
  let t: TestApp | undefined;
  let second: EmbeddedMongo | undefined;
  let secondClient: MongoClient | undefined;
  let sourceClient: MongoClient | undefined;
  let restored: Db;
  let manifest: Manifest;
  let readerKey: string;
  let writesDuringBackup = 0;
  let ordersAtEnd = 0;
  let dir: string | undefined;

  beforeAll(async () => {
    // The second mongod starts while the shop is set up: two cores, but mostly waiting on Wine.
    const starting = startEmbeddedMongo({});
    dir = await backupDir('load');
    try {
      t = await buildTestApp('backup_load');
      await waitForDatabase(t.app);
      const s = shop(t.app);
      sourceClient = await connect();
      const source = sourceClient.db(t.dbName);
      // Bulk, so that the backup takes a while; the load works on products of its own.
      await seed(source, { products: 600, customers: 100, seed: 3 });
      for (const sku of SKUS) {
        await s.product(sku, { amount: 250 });
        for (const warehouse of WAREHOUSES) await s.stock(sku, warehouse, STOCKED);
      }
      const customers: string[] = [];
      for (let i = 0; i < 8; i++) customers.push((await s.customer()).id);
      readerKey = (await t.createKey(['*:read'])).key;

      const load = startLoad(s, customers);
      try {
        // Some history before the backup, and writes all through it.
        await load.waitFor(60);
        let writesAtSnapshot = 0;
        const progress = (event: ProgressEvent) => {
          if (event.event === 'backup-started') writesAtSnapshot = load.writes;
          if (event.event === 'backup-done') writesDuringBackup = load.writes - writesAtSnapshot;
        };
        manifest = await backupDatabase(source, { out: dir, progress });
        // And some after it, which the backup must not hold.
        await load.waitFor(load.writes + 20);
      } finally {
        await load.stop();
      }
      ordersAtEnd = await source.collection('orders').countDocuments();
    } finally {
      second = await starting;
    }
    secondClient = await connect(second.uri);
    await restoreDatabase(secondClient, RESTORED_DB, { from: dir });
    restored = secondClient.db(RESTORED_DB);
    // The run's figures, for whoever reads the test output.
    const inBackup = manifest.collections.find((c) => c.name === 'orders')!.documents;
    console.log(
      `backup under load: ${writesDuringBackup} writes while it ran; it holds ${inBackup} of the ${ordersAtEnd} orders placed in all`,
    );
  });

  afterAll(async () => {
    await t?.app.close();
    await sourceClient?.close();
    await secondClient?.close();
    await second?.stop();
    if (t !== undefined) await dropDatabase(t.dbName);
    if (dir !== undefined) await rm(dirname(dir), { recursive: true, force: true });
  });

  it('was taken while writes went on: some landed during the backup, and later ones are not in it', async () => {
    expect(writesDuringBackup).toBeGreaterThan(0);
    const restoredOrders = await restored.collection('orders').countDocuments();
    expect(restoredOrders).toBeGreaterThan(0);
    expect(restoredOrders).toBeLessThan(ordersAtEnd);
    expect(manifest.collections.find((c) => c.name === 'orders')!.documents).toBe(restoredOrders);
  });

  it('records one cluster time, the service and migration versions, and every collection but the lock', () => {
    expect(manifest.clusterTime.t).toBeGreaterThan(0);
    expect(new Date(manifest.snapshotAt).getTime()).toBe(manifest.clusterTime.t * 1000);
    expect(manifest.service).toEqual({ name: 'storekeeper', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(manifest.migrations).toMatchObject({ applied: MIGRATION_FILES.length, last: MIGRATION_FILES.at(-1) });
    const names = manifest.collections.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'products',
        'customers',
        'stock',
        'orders',
        'migrations_changelog',
        'idempotency_records',
        'api_keys',
      ]),
    );
    expect(names).not.toContain('migrations_lock');
  });

  it('restores every collection with the count and checksum of the manifest, and nothing else', async () => {
    const collections = (await restored.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    expect(collections).toEqual(manifest.collections.map((c) => c.name).sort());
    for (const entry of manifest.collections) {
      expect({ name: entry.name, ...(await collectionDigest(restored, entry.name)) }).toEqual({
        name: entry.name,
        documents: entry.documents,
        sha256: entry.bsonSha256,
      });
    }
    expect(await secondClient!.db('admin').admin().listDatabases({ nameOnly: true })).toSatisfy(
      ({ databases }: { databases: { name: string }[] }) =>
        databases.every((database) => !database.name.includes('_restoring_')),
    );
  });

  it('restores the validators, collations and indexes', async () => {
    expect(await schemaOf(restored)).toEqual(await schemaOf(sourceClient!.db(t!.dbName), ['migrations_lock']));
  });

  it('for every SKU and warehouse, available + reserved + shipped is what was stocked, and reserved and shipped are what the orders say', async () => {
    const orders = await restored.collection('orders').find().toArray();
    const expected = new Map<string, { reserved: number; shipped: number }>();
    for (const order of orders) {
      for (const line of order.lines as { sku: string; quantity: number }[]) {
        const key = `${line.sku}/${order.warehouse}`;
        const counts = expected.get(key) ?? { reserved: 0, shipped: 0 };
        // Placed and paid orders hold their units reserved; shipped and delivered ones shipped them.
        if (order.status === 'placed' || order.status === 'paid') counts.reserved += line.quantity;
        if (order.status === 'shipped' || order.status === 'delivered') counts.shipped += line.quantity;
        expected.set(key, counts);
      }
    }
    const statuses = new Set(orders.map((o) => o.status));
    // Orders holding reservations, orders that shipped theirs and orders that released theirs.
    expect(statuses.has('placed') || statuses.has('paid')).toBe(true);
    expect(statuses.has('shipped') || statuses.has('delivered')).toBe(true);
    expect(statuses.has('cancelled')).toBe(true);
    for (const sku of SKUS) {
      for (const warehouse of WAREHOUSES) {
        const item = await restored.collection<StoredStock>('stock').findOne({ sku, warehouse });
        const { reserved, shipped } = expected.get(`${sku}/${warehouse}`) ?? { reserved: 0, shipped: 0 };
        expect({
          sku,
          warehouse,
          total: item!.available + item!.reserved + item!.shipped,
          reserved: item!.reserved,
          shipped: item!.shipped,
        }).toEqual({
          sku,
          warehouse,
          total: STOCKED,
          reserved,
          shipped,
        });
      }
    }
  });

  it("every customer's stats count exactly their orders in the backup", async () => {
    const orders = await restored.collection('orders').find().toArray();
    const customers = await restored
      .collection('customers')
      .find({ 'stats.orderCount': { $gt: 0 } })
      .toArray();
    expect(customers.length).toBeGreaterThan(0);
    for (const customer of customers) {
      const theirs = orders.filter((o) => o.customerId.equals(customer._id));
      expect(customer.stats.orderCount).toBe(theirs.length);
      const spent = theirs.reduce((sum: number, o) => sum + (o.totals.subtotal.amount as number), 0);
      expect(customer.stats.spent).toEqual([{ currency: 'EUR', amount: spent }]);
    }
    expect(customers.reduce((sum: number, c) => sum + (c.stats.orderCount as number), 0)).toBe(orders.length);
  });

  describe('the service on the restored database', () => {
    let app: App | undefined;
    beforeAll(async () => {
      const config = loadConfig({
        MONGODB_URI: second!.uri,
        MONGODB_DB: RESTORED_DB,
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
      });
      app = await buildApp({
        config: { ...config, mongo: { ...config.mongo, uri: config.mongo.uri! } },
        logger: createLogger(config.log, new LogCapture()),
      });
      await waitForDatabase(app);
    });
    afterAll(() => app?.close());

    it('finds its migrations up to date, is ready, and serves the restored orders to a key that was backed up', async () => {
      expect(await pendingMigrations(restored)).toEqual([]);
      expect((await app!.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
      const order = await restored.collection('orders').findOne({ status: 'shipped' });
      const res = await app!.inject({
        method: 'GET',
        url: `/v1/orders/${order!._id.toHexString()}`,
        headers: { authorization: `Bearer ${readerKey}` },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ id: order!._id.toHexString(), status: 'shipped' });
    });
  });
});
