// npm run import against the test replica set: the three formats give the same products and the
// same rejects (pointer and reason, the record as read); a re-run changes nothing; conflicts are
// skipped, updated or refused as asked; a dry run writes nothing; orders keep their status and
// history and are refused, lines named, when they would unbalance the stock ledger; and an
// import stopped midway (killed, or crashed between a commit and its checkpoint) resumes to the
// same database, checksum for checksum, as an uninterrupted one.

import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { checkpointPath, readCheckpoint } from '../../src/import/checkpoint.ts';
import type { CollectionName } from '../../src/import/collections.ts';
import { formatOf } from '../../src/import/formats.ts';
import { loadMapping } from '../../src/import/mapping.ts';
import type { ImportReport } from '../../src/import/report.ts';
import { actorName, DEFAULT_BATCH_SIZE, ImportRefused, runImport, type ImportOptions } from '../../src/import/run.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { ROOT } from '../helpers/process.ts';

const FIXTURES = join(ROOT, 'test/fixtures/import');
const silentLog = pino({ level: 'silent' });

describe('npm run import', () => {
  const client = new mongoose.mongo.MongoClient(inject('mongoUri'));
  const databases: string[] = [];
  let work: string;

  beforeAll(async () => {
    await client.connect();
    work = await mkdtemp(join(tmpdir(), 'storekeeper-import-test-'));
    await cp(FIXTURES, work, { recursive: true });
  });
  afterAll(async () => {
    await client.close();
    for (const name of databases) await dropDatabase(name);
    await rm(work, { recursive: true, force: true });
  });

  const migrated = async (label: string) => {
    const name = testDatabaseName(label);
    databases.push(name);
    await migrateDatabase(name);
    return name;
  };

  /** A copy of a fixture in a directory of its own: checkpoints, rejects and backups go next to it. */
  const fixture = async (name: string) => {
    const dir = await mkdtemp(join(work, 'run-'));
    await cp(join(FIXTURES, name), join(dir, name));
    return join(dir, name);
  };

  const importInto = (
    dbName: string,
    collection: CollectionName,
    file: string,
    options: Partial<ImportOptions> = {},
  ): Promise<ImportReport> =>
    runImport(client, dbName, loadConfig({ MONGODB_URI: inject('mongoUri'), MONGODB_DB: dbName }), silentLog, {
      collection,
      file,
      format: formatOf(file) ?? 'ndjson',
      dryRun: false,
      onConflict: 'skip',
      backup: false,
      batchSize: DEFAULT_BATCH_SIZE,
      rejects: `${file}.rejects.ndjson`,
      checkpoint: 'new',
      progress: () => {},
      ...options,
    });

  const rejectsOf = async (file: string) =>
    (await readFile(`${file}.rejects.ndjson`, 'utf8'))
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as {
            record: number;
            line: number;
            errors: { pointer: string; reason: string }[];
            raw: unknown;
          },
      );

  const documents = (dbName: string, collection: string) =>
    client
      .db(dbName)
      .collection(collection)
      .find({}, { sort: { _id: 1 } })
      .toArray();

  describe('formats', () => {
    const reports: Record<string, ImportReport> = {};
    const files: Record<string, string> = {};

    /**
     * The NDJSON fixture's records as one JSON array, an element a line (made here: a malformed
     * element is no fixture Prettier could check), the malformed one still bracketed.
     */
    const asJsonArray = async () => {
      const records = (await readFile(join(FIXTURES, 'products.ndjson'), 'utf8'))
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => (line.startsWith('{"sku":"BOWL-1"') ? '{"sku":"BOWL-1","name":"Bowl" "price":{}}' : line))
        .map((line) =>
          line.startsWith('{"sku":"KETTLE-1"') ? line.replace('"Kettle"', '"Kettle, \\"steel\\" [1.7 l]"') : line,
        );
      const file = join(await mkdtemp(join(work, 'run-')), 'products.json');
      await writeFile(file, `[\n  ${records.join(',\n  ')}\n]\n`);
      return file;
    };

    beforeAll(async () => {
      for (const name of ['products.ndjson', 'products.json', 'products.csv']) {
        files[name] = name.endsWith('.json') ? await asJsonArray() : await fixture(name);
        const mapping = name.endsWith('.csv') ? await loadMapping(join(FIXTURES, 'products.mapping.json')) : undefined;
        reports[name] = await importInto(await migrated(`import_${name}`), 'products', files[name], { mapping });
      }
    });

    it('inserts the valid records and rejects the others, in NDJSON, a JSON array and CSV alike', () => {
      expect(reports['products.ndjson']!.records).toEqual({
        read: 8,
        inserted: 3,
        updated: 0,
        unchanged: 0,
        skipped: 0,
        rejected: 5,
      });
      expect(reports['products.json']!.records).toEqual(reports['products.ndjson']!.records);
      expect(reports['products.csv']!.records).toEqual({
        ...reports['products.ndjson']!.records,
        read: 7,
        rejected: 4,
      });
      // The same documents whatever the format: the same checksum.
      const sums = Object.values(reports).map((report) => report.collections.products);
      expect(sums[0]!.count).toBe(3);
      expect(new Set(sums.map((sum) => sum!.sha256)).size).toBe(1);
    });

    it('rejects with the pointer and reason the API gives, and the record as read', async () => {
      const ndjson = await rejectsOf(files['products.ndjson']!);
      expect(ndjson.map((r) => [r.record, r.line])).toEqual([
        [3, 4],
        [4, 5],
        [5, 6],
        [6, 7],
        [7, 8],
      ]);
      expect(ndjson[0]!.errors).toEqual([{ pointer: '/price/amount', reason: 'must be integer' }]);
      expect(ndjson[1]!.errors[0]!.pointer).toBe('/price/amount');
      expect(ndjson[1]!.errors[0]!.reason).toMatch(/too large to be a number/);
      expect(ndjson[2]!.errors).toEqual([{ pointer: '/sku', reason: 'repeats the sku of record 1 (line 1)' }]);
      expect(ndjson[3]!.errors).toEqual([{ pointer: '/colour', reason: 'is not an allowed property' }]);
      expect(ndjson[4]!.errors[0]!.reason).toMatch(/not valid JSON/);
      expect(ndjson[0]!.raw).toBe(
        '{"sku":"TEAPOT-1","name":"Teapot","price":{"amount":"3499","currency":"EUR"},"category":"kitchen"}',
      );

      const json = await rejectsOf(files['products.json']!);
      expect(json.map((r) => [r.record, r.line])).toEqual([
        [3, 4],
        [4, 5],
        [5, 6],
        [6, 7],
        [7, 8],
      ]);
      expect(json[2]!.errors).toEqual([{ pointer: '/sku', reason: 'repeats the sku of record 1 (line 2)' }]);
      expect(json.map((r) => r.errors).filter((_, i) => i !== 2 && i !== 4)).toEqual(
        ndjson.map((r) => r.errors).filter((_, i) => i !== 2 && i !== 4),
      );
      expect(json[4]!.errors[0]!.reason).toMatch(/not valid JSON/);

      const csv = await rejectsOf(files['products.csv']!);
      expect(csv.map((r) => r.record)).toEqual([3, 4, 5, 6]);
      expect(csv[0]!.errors).toEqual([
        { pointer: '/price/amount', reason: '(column Price (cents)) must be a whole number, got 34.99' },
      ]);
      expect(csv[1]!.errors[0]!.reason).toMatch(/column Price \(cents\)\) is too large to be a number/);
      expect(csv[3]!.errors.map((e) => e.pointer).sort()).toEqual(['/category', '/status']);
      expect(csv[0]!.raw).toMatchObject({ SKU: 'TEAPOT-1', 'Internal note': 'price in euros by mistake' });
    });

    it('writes through the unit of work: an audit entry per document, the import as the actor', async () => {
      const dbName = await migrated('import_audit');
      const file = await fixture('products.ndjson');
      await importInto(dbName, 'products', file);
      const entries = await client.db(dbName).collection('audit_events').find().toArray();
      expect(entries).toHaveLength(3);
      for (const entry of entries) expect(entry).toMatchObject({ keyName: 'import:products.ndjson', action: 'create' });
    });

    it('rejects an NDJSON line that is not UTF-8, as the API refuses such a body, and imports the others', async () => {
      const dbName = await migrated('import_utf8');
      const dir = await mkdtemp(join(work, 'run-'));
      const file = join(dir, 'latin1.ndjson');
      const product = (sku: string, name: string) =>
        `{"sku":"${sku}","name":"${name}","price":{"amount":100,"currency":"EUR"},"category":"kitchen","status":"active"}`;
      // Line 2 holds the byte 0xE0 alone, a latin1 "à": not UTF-8.
      const [before, after] = product('MUG-2', 'Tasse @').split('@') as [string, string];
      await writeFile(
        file,
        Buffer.concat([
          Buffer.from(`${product('MUG-1', 'Tasse à café')}\n${before}`),
          Buffer.from([0xe0]),
          Buffer.from(`${after}\n`),
        ]),
      );
      const report = await importInto(dbName, 'products', file);
      expect(report.records).toMatchObject({ inserted: 1, rejected: 1 });
      const [reject] = await rejectsOf(file);
      expect(reject).toMatchObject({ record: 2, line: 2 });
      expect(reject!.errors[0]!.reason).toMatch(/UTF-8/);
      const stored = await documents(dbName, 'products');
      expect(stored.map((document) => document.name)).toEqual(['Tasse à café']);
    });

    it('reads a CSV after its byte order mark, and rejects a row with a cell that is not UTF-8', async () => {
      const dbName = await migrated('import_csv_utf8');
      const dir = await mkdtemp(join(work, 'run-'));
      const file = join(dir, 'customers.csv');
      // A byte order mark, then a row whose name holds the byte 0xE0 alone (latin1's "à").
      await writeFile(
        file,
        Buffer.concat([
          Buffer.from([0xef, 0xbb, 0xbf]),
          Buffer.from('email,name\nada@example.com,Ada Lovélace\ngrace@example.com,Grace '),
          Buffer.from([0xe0]),
          Buffer.from('\n'),
        ]),
      );
      const report = await importInto(dbName, 'customers', file);
      expect(report.records).toMatchObject({ inserted: 1, rejected: 1 });
      const [reject] = await rejectsOf(file);
      expect(reject).toMatchObject({ record: 2, line: 3 });
      expect(reject!.errors).toEqual([{ pointer: '/name', reason: '(column name) is not UTF-8' }]);
      const stored = await documents(dbName, 'customers');
      expect(stored.map((document) => [document.email, document.name])).toEqual([['ada@example.com', 'Ada Lovélace']]);
    });

    it('refuses a CSV column the mapping neither maps nor ignores, before reading a row', async () => {
      const dbName = await migrated('import_unmapped');
      const file = await fixture('products.csv');
      const mapping = await loadMapping(join(FIXTURES, 'products.mapping.json'));
      mapping.ignore.clear();
      await expect(importInto(dbName, 'products', file, { mapping })).rejects.toThrow(/"Internal note"/);
      expect(await documents(dbName, 'products')).toHaveLength(0);
    });
  });

  describe('re-runs and conflicts', () => {
    it('re-running the same file changes nothing, not even a version', async () => {
      const dbName = await migrated('import_rerun');
      const file = await fixture('products.ndjson');
      const first = await importInto(dbName, 'products', file);
      const before = await documents(dbName, 'products');
      const second = await importInto(dbName, 'products', file, { checkpoint: 'restart' });
      expect(second.records).toMatchObject({ inserted: 0, updated: 0, unchanged: 3, rejected: 5 });
      expect(await documents(dbName, 'products')).toEqual(before);
      expect(second.collections).toEqual(first.collections);
    });

    it('skips a changed record by default, updates it with update, and writes nothing with fail', async () => {
      const dbName = await migrated('import_conflicts');
      await importInto(dbName, 'products', await fixture('products.ndjson'));
      const before = await documents(dbName, 'products');
      const changed = await fixture('products.ndjson');
      await writeFile(
        changed,
        [
          '{"sku":"MUG-BLUE","name":"Blue mug","price":{"amount":1399,"currency":"EUR"},"category":"kitchen","tags":["ceramic"],"status":"active"}',
          '{"sku":"CUP-1","name":"Cup","price":{"amount":499,"currency":"EUR"},"category":"kitchen"}',
        ].join('\n'),
      );

      await expect(importInto(dbName, 'products', changed, { onConflict: 'fail' })).rejects.toThrow(ImportRefused);
      expect(await documents(dbName, 'products')).toEqual(before);

      const skipped = await importInto(dbName, 'products', changed, { checkpoint: 'restart' });
      expect(skipped.records).toMatchObject({ inserted: 1, skipped: 1, updated: 0 });
      const blue = () => client.db(dbName).collection('products').findOne({ sku: 'MUG-BLUE' });
      expect((await blue())?.price).toEqual({ amount: 1299, currency: 'EUR' });

      const updated = await importInto(dbName, 'products', changed, { onConflict: 'update', checkpoint: 'restart' });
      expect(updated.records).toMatchObject({ inserted: 0, updated: 1, unchanged: 1 });
      expect(await blue()).toMatchObject({ price: { amount: 1399, currency: 'EUR' }, version: 2 });
    });

    it('applies a key that recurs in later batches as one batch after another would, though batches are written several at once', async () => {
      const dbName = await migrated('import_recurring');
      const price = (amount: number) =>
        JSON.stringify({ sku: 'MUG-BLUE', name: 'Blue mug', price: { amount, currency: 'EUR' }, category: 'kitchen' });
      const other = (i: number) =>
        JSON.stringify({
          sku: `PLATE-${i}`,
          name: `Plate ${i}`,
          price: { amount: 500 + i, currency: 'EUR' },
          category: 'kitchen',
        });
      const file = join(await mkdtemp(join(work, 'recurring-')), 'recurring.ndjson');
      // Batches of two: MUG-BLUE at 1299, then 1399 in the next batch, back to 1299 in the one
      // after (decided, were it looked up early, as "unchanged"), then 1499 two batches on.
      await writeFile(
        file,
        [price(1299), other(1), price(1399), other(2), price(1299), other(3), other(4), other(5), price(1499), other(6)]
          .map((line) => `${line}\n`)
          .join(''),
      );
      const report = await importInto(dbName, 'products', file, { onConflict: 'update', batchSize: 2 });
      expect(report.records).toMatchObject({ read: 10, inserted: 7, updated: 3, unchanged: 0, rejected: 0 });
      const mug = await client.db(dbName).collection('products').findOne({ sku: 'MUG-BLUE' });
      expect(mug).toMatchObject({ price: { amount: 1499, currency: 'EUR' }, version: 4 });
      expect(
        await client.db(dbName).collection('audit_events').countDocuments({ documentId: mug!._id.toHexString() }),
      ).toBe(4);
    });

    it('finds customers by e-mail without regard to case', async () => {
      const dbName = await migrated('import_customers');
      const file = await fixture('customers.ndjson');
      const report = await importInto(dbName, 'customers', file);
      expect(report.records).toMatchObject({ read: 4, inserted: 2, rejected: 2 });
      const rejects = await rejectsOf(file);
      expect(rejects[0]!.errors).toEqual([{ pointer: '/email', reason: 'repeats the email of record 1 (line 1)' }]);
      expect(rejects[1]!.errors).toEqual([{ pointer: '/email', reason: 'must match format "email"' }]);
      const again = await fixture('customers.ndjson');
      await writeFile(
        again,
        '{"email":"GRACE@example.com","name":"Grace Hopper","phone":"+12025550100","marketingOptIn":true}\n',
      );
      expect((await importInto(dbName, 'customers', again, { onConflict: 'update' })).records).toMatchObject({
        updated: 1,
        inserted: 0,
      });
    });
  });

  it('a dry run says what would happen and writes nothing', async () => {
    const dbName = await migrated('import_dry');
    const file = await fixture('products.ndjson');
    const report = await importInto(dbName, 'products', file, { dryRun: true, backup: true });
    expect(report.records).toMatchObject({ read: 8, inserted: 3, rejected: 5 });
    expect(report.backup).toBeNull();
    expect(report.collections.products).toMatchObject({ count: 0 });
    expect(await client.db(dbName).collection('audit_events').countDocuments()).toBe(0);
    await expect(stat(checkpointPath(file))).rejects.toThrow(/ENOENT/);
  });

  it('backs up the database before writing, and says where', async () => {
    const dbName = await migrated('import_backup');
    const file = await fixture('products.ndjson');
    const report = await importInto(dbName, 'products', file, { backup: true });
    expect(report.backup).toMatch(/storekeeper-backup-before-import-/);
    expect(await readdir(report.backup!)).toContain('manifest.json');
  });

  describe('orders', () => {
    it('keep their status and history, count in their customers, and balance the stock ledger', async () => {
      const dbName = await migrated('import_orders');
      for (const [collection, name] of [
        ['products', 'products.ndjson'],
        ['customers', 'customers.ndjson'],
        ['stock', 'stock.ndjson'],
      ] as const)
        await importInto(dbName, collection, await fixture(name));
      const file = await fixture('orders.ndjson');
      const report = await importInto(dbName, 'orders', file);
      expect(report.records).toMatchObject({ read: 5, inserted: 3, rejected: 2 });
      expect(report.ledger).toMatchObject({ consistent: true, mismatchCount: 0 });
      const rejects = await rejectsOf(file);
      expect(rejects[0]!.errors).toEqual([
        { pointer: '/customerEmail', reason: 'names no customer of this database (import the customers first)' },
      ]);
      expect(rejects[1]!.errors.map((e) => e.pointer)).toEqual(['/lines/0/lineTotal/amount', '/history/0/status']);

      const delivered = await client.db(dbName).collection('orders').findOne({ externalNumber: 'WEB-0990' });
      expect(delivered).toMatchObject({ status: 'delivered', createdAt: new Date('2026-09-01T08:00:00Z') });
      expect((delivered?.history as unknown[]).length).toBe(4);
      const ada = await client.db(dbName).collection('customers').findOne({ email: 'ada@example.com' });
      expect(ada?.stats).toMatchObject({ orderCount: 2, spent: [{ currency: 'EUR', amount: 2598 + 11990 }] });

      const again = await importInto(dbName, 'orders', file, { checkpoint: 'restart' });
      expect(again.records).toMatchObject({ inserted: 0, unchanged: 3 });
      expect(again.collections).toEqual(report.collections);
    });

    it('are refused, lines named, when they would unbalance the ledger; nothing is written', async () => {
      const dbName = await migrated('import_ledger');
      for (const [collection, name] of [
        ['products', 'products.ndjson'],
        ['customers', 'customers.ndjson'],
        ['stock', 'stock.ndjson'],
        ['orders', 'orders.ndjson'],
      ] as const)
        await importInto(dbName, collection, await fixture(name));
      const before = await documents(dbName, 'orders');
      const refusal = importInto(dbName, 'orders', await fixture('orders-unbalanced.ndjson'));
      await expect(refusal).rejects.toThrow(ImportRefused);
      const message = await refusal.catch((error: unknown) => (error as Error).message);
      expect(message).toMatch(
        /BOWL-2@AMS-1: 0 reserved on the stock item, the open orders would hold 1 \(orders at line 1\)/,
      );
      expect(message).toMatch(/LAMP-9@AMS-1: no stock item, the open orders would hold 1 \(orders at line 3\)/);
      expect(message).not.toMatch(/MUG-BLUE/);
      expect(await documents(dbName, 'orders')).toEqual(before);
    });
  });

  describe('stopped midway', () => {
    let big: string;
    let uninterrupted: ImportReport;
    const COUNT = 300;
    const BATCH = 20;

    beforeAll(async () => {
      const dir = await mkdtemp(join(work, 'big-'));
      big = join(dir, 'catalog.ndjson');
      const lines = Array.from({ length: COUNT }, (_, i) =>
        JSON.stringify({
          sku: `ITEM-${String(i).padStart(5, '0')}`,
          name: `Item ${i}`,
          price: { amount: 100 + i, currency: 'EUR' },
          category: 'kitchen',
          ...(i % 50 === 7 ? { tags: ['Not A Slug'] } : {}),
        }),
      );
      await writeFile(big, `${lines.join('\n')}\n`);
      uninterrupted = await importInto(await migrated('import_whole'), 'products', big, { batchSize: BATCH });
    });

    /** The big file in a directory of its own: each test has its own checkpoint and rejects. */
    const copyOfBig = async () => {
      const copy = join(await mkdtemp(join(work, 'big-')), 'catalog.ndjson');
      await cp(big, copy);
      return copy;
    };

    it('killed (SIGKILL) after a few batches, then resumed, gives the same database as an uninterrupted import', async () => {
      const dbName = await migrated('import_killed');
      const big = await copyOfBig();
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/import.ts',
          '--collection',
          'products',
          '--file',
          big,
          '--batch-size',
          String(BATCH),
          '--no-backup',
        ],
        {
          cwd: ROOT,
          env: {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? '',
            MONGODB_URI: inject('mongoUri'),
            MONGODB_DB: dbName,
          },
          stdio: 'ignore',
        },
      );
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      for (;;) {
        const checkpoint = await readCheckpoint(big).catch(() => undefined);
        if ((checkpoint?.done.batches ?? 0) >= 3) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      child.kill('SIGKILL');
      await exited;
      const stopped = await readCheckpoint(big);
      expect(stopped?.done.records).toBeLessThan(COUNT);

      await expect(importInto(dbName, 'products', big, { batchSize: BATCH })).rejects.toThrow(/--resume/);
      const resumed = await importInto(dbName, 'products', big, { batchSize: BATCH, checkpoint: 'resume' });
      expect(resumed.resumed).toBe(true);
      expect(resumed.records).toEqual(uninterrupted.records);
      expect(resumed.collections).toEqual(uninterrupted.collections);
      expect((await rejectsOf(big)).map((r) => r.record)).toEqual([8, 58, 108, 158, 208, 258]);
      await expect(stat(checkpointPath(big))).rejects.toThrow(/ENOENT/);
    });

    it('crashed between a commit and its checkpoint, then resumed, counts that batch once and writes it once', async () => {
      const dbName = await migrated('import_crashed');
      const big = await copyOfBig();
      const crash = importInto(dbName, 'products', big, {
        batchSize: BATCH,
        afterCommit: (batch) => {
          if (batch === 4) throw new Error('crash after the commit of batch 4');
        },
      });
      await expect(crash).rejects.toThrow(/crash after the commit/);
      expect((await readCheckpoint(big))?.pending.map((pending) => pending.batch)).toContain(4);
      const resumed = await importInto(dbName, 'products', big, { batchSize: BATCH, checkpoint: 'resume' });
      expect(resumed.records).toEqual(uninterrupted.records);
      expect(resumed.collections).toEqual(uninterrupted.collections);
      expect(await client.db(dbName).collection('audit_events').countDocuments()).toBe(uninterrupted.records.inserted);
      expect((await rejectsOf(big)).map((r) => r.record)).toEqual([8, 58, 108, 158, 208, 258]);
    });

    /** Every product has exactly one audit entry, naming the import; no entry names anything else. */
    const expectAuditedOnce = async (dbName: string, file: string) => {
      const db = client.db(dbName);
      const products = await db
        .collection('products')
        .find({}, { projection: { _id: 1 } })
        .toArray();
      const entries = await db.collection('audit_events').find().toArray();
      expect(entries.map((entry) => entry.documentId).sort()).toEqual(
        products.map((product) => product._id.toHexString()).sort(),
      );
      for (const entry of entries) expect(entry).toMatchObject({ keyName: actorName(file), action: 'create' });
    };

    it('stopped after writing documents but before storing their audit entries, then resumed, audits each once', async () => {
      const dbName = await migrated('import_unaudited');
      const big = await copyOfBig();
      // This database's audit trail refuses every entry for a while (its validator, not a fail
      // point: those are one for the whole replica set, which other test files use meanwhile).
      const db = client.db(dbName);
      const [audit] = await db.listCollections({ name: 'audit_events' }, { nameOnly: false }).toArray();
      const validator = audit?.options?.validator as object;
      await db.command({ collMod: 'audit_events', validator: { $expr: false } });
      try {
        const stopped = importInto(dbName, 'products', big, { batchSize: BATCH });
        await expect(stopped).rejects.toThrow(/Document failed validation/);
      } finally {
        await db.command({ collMod: 'audit_events', validator });
      }
      const written = await client.db(dbName).collection('products').countDocuments();
      expect(written).toBeGreaterThan(0);
      expect(await client.db(dbName).collection('audit_events').countDocuments()).toBe(0);

      const resumed = await importInto(dbName, 'products', big, { batchSize: BATCH, checkpoint: 'resume' });
      expect(resumed.records).toEqual(uninterrupted.records);
      expect(resumed.collections).toEqual(uninterrupted.collections);
      await expectAuditedOnce(dbName, big);
    });

    it('a batch refused partway (a key taken meanwhile) audits what it wrote, counts it once, and skips the key', async () => {
      const dbName = await migrated('import_partway');
      const big = await copyOfBig();
      // Record 45 is the 5th of batch 3; another writer creates its SKU after the batch was decided.
      const taken = {
        sku: 'ITEM-00044',
        name: 'Created meanwhile',
        price: { amount: 1, currency: 'EUR' },
        category: 'kitchen',
      };
      const report = await importInto(dbName, 'products', big, {
        batchSize: BATCH,
        beforeWrite: async (batch) => {
          if (batch !== 3) return;
          const now = new Date();
          await client
            .db(dbName)
            .collection('products')
            .insertOne({
              ...taken,
              status: 'active',
              tags: [],
              attributes: {},
              version: 1,
              createdAt: now,
              updatedAt: now,
            });
        },
      });
      expect(report.records).toEqual({
        ...uninterrupted.records,
        inserted: uninterrupted.records.inserted - 1,
        skipped: 1,
      });
      const db = client.db(dbName);
      const other = await db.collection('products').findOne({ sku: taken.sku });
      expect(other?.name).toBe(taken.name);
      expect(await db.collection('audit_events').countDocuments({ documentId: other?._id.toHexString() })).toBe(0);
      const entries = await db.collection('audit_events').find().toArray();
      expect(entries).toHaveLength(uninterrupted.records.inserted - 1);
      expect(new Set(entries.map((entry) => entry.documentId)).size).toBe(entries.length);
    });
  });
});
