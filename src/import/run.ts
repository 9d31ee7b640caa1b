// An import, from a file to the database: records read one at a time (formats.ts), checked by
// the entity declarations (collections.ts), decided by natural key in batches (insert, update,
// unchanged, skipped for a conflict, rejected), and written several batches at a time through the
// shop's import operation (src/shop/imports.ts: one unit of work each, audited as `import:<file>`),
// finished in the file's order.
//
// Before anything is written: a planning pass over the whole file when the import must be refused
// rather than half done (orders: the stock ledger; --on-conflict fail: any conflict) or when it is
// a dry run (then it is all there is); a backup of the database through the backup code; a
// checkpoint next to the input (checkpoint.ts), advanced after every batch, from which --resume
// goes on. Afterwards, the reconciliation report (report.ts). Invalid records are never written:
// they go to the rejects file (NDJSON) with their position, field errors and the record as read.

import { createWriteStream, type WriteStream } from 'node:fs';
import { stat, truncate } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import mongoose from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import { backupDatabase } from '../backup/dump.ts';
import { throttled, type Progress } from '../backup/progress.ts';
import type { Config } from '../config.ts';
import { compileCaster } from '../data/casting.ts';
import { STAMP_FIELD, type AuditStamp } from '../data/audit-stream.ts';
import type { StoredDocument } from '../data/documents.ts';
import {
  checksumOf,
  committed,
  customerIdsByEmail,
  endSession,
  findByNaturalKeys,
  ledgerMismatches,
  openQuantities,
  placeOf,
  reservedAt,
  sessionIdOf,
  storesOn,
  type Checksum,
} from '../data/imports.ts';
import type { Stores } from '../data/stores.ts';
import type { FieldError } from '../errors.ts';
import { createShop } from '../shop/index.ts';
import { BatchChanged, batchIsOneTransaction, type ImportBatch, type ImportOperations } from '../shop/imports.ts';
import {
  addCounts,
  noCounts,
  readCheckpoint,
  removeCheckpoint,
  sha256Of,
  writeCheckpoint,
  checkpointPath,
  type Checkpoint,
  type Counts,
} from './checkpoint.ts';
import { canonical, COLLECTIONS, OPEN_STATUSES, SPECS, type CollectionName, type ImportSpec } from './collections.ts';
import { readRecords, type Format, type SourceRecord } from './formats.ts';
import type { Mapping } from './mapping.ts';
import type { ImportReport } from './report.ts';

export const ON_CONFLICT = ['skip', 'update', 'fail'] as const;
export type OnConflict = (typeof ON_CONFLICT)[number];

/** Records per batch by default: one write of each kind per batch (a transaction for orders, well within its limits). */
export const DEFAULT_BATCH_SIZE = 500;
export const MAX_BATCH_SIZE = 1000;

/** How often a batch whose documents changed under it is read and decided again before the import stops. */
const REDECISIONS = 3;
/** Ledger places and conflicts named in a refusal. */
const NAMED = 20;
const NAMED_LINES = 10;

export interface ImportOptions {
  collection: CollectionName;
  /** The input, as an absolute path. */
  file: string;
  format: Format;
  mapping?: Mapping;
  dryRun: boolean;
  onConflict: OnConflict;
  backup: boolean;
  batchSize: number;
  /** Where invalid records go; null: nowhere (they are still counted). */
  rejects: string | null;
  /** resume: go on from the checkpoint; restart: drop it; new: refuse when one is there. */
  checkpoint: 'new' | 'resume' | 'restart';
  progress: Progress;
  /** For tests: runs after a batch committed, before the checkpoint says so (a throw is a crash there). */
  afterCommit?: (batch: number) => void | Promise<void>;
  /** For tests: runs after a batch was decided, right before it is written (another writer's turn). */
  beforeWrite?: (batch: number) => void | Promise<void>;
}

/** The import was refused, or cannot go on: the message says why and what to do (exit code 1). */
export class ImportRefused extends Error {
  override name = 'ImportRefused';
}

interface Reject {
  record: number;
  line: number;
  errors: FieldError[];
  raw: unknown;
}

interface Decided {
  counts: Counts;
  batch: ImportBatch;
  rejects: Reject[];
  /** Records found with other content under --on-conflict fail. */
  conflicts: { record: number; line: number; key: string }[];
  /** Orders only: the records, written or not, with their documents and what they replace. */
  orders: { source: SourceRecord; document: Record<string, unknown>; replaces?: StoredDocument }[];
  /** The natural keys of the batch's valid records, whatever was decided for them. */
  keys: string[];
}

/** A batch being written: where it ends in the file, its natural keys, and its write. */
interface Writing {
  batch: number;
  records: number;
  keys: ReadonlySet<string>;
  written: Promise<Decided>;
}

/** Batches written at once: MongoDB works on one while another's entries are stored, and this process decides the next. */
export const BATCHES_AT_ONCE = 3;

const meets = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => {
  for (const key of a) if (b.has(key)) return true;
  return false;
};

/** The natural keys of the batches committed, in the order they committed, for the decisions made before. */
class CommitLog {
  private readonly committed: { at: number; keys: ReadonlySet<string> }[] = [];
  count = 0;

  add(keys: ReadonlySet<string>): void {
    this.committed.push({ at: ++this.count, keys });
  }

  /** Whether a batch committed after the `after`-th shares a key with `keys`; forgets those up to it. */
  since(after: number, keys: ReadonlySet<string>): boolean {
    // Decisions are made in the file's order: none to come was made before this one.
    while ((this.committed[0]?.at ?? Infinity) <= after) this.committed.shift();
    return this.committed.some((commit) => meets(commit.keys, keys));
  }
}

/** The checkpoint written whole, one write after another, whichever batch asks. */
class CheckpointSaves {
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly checkpoint: Checkpoint) {}

  /** Writes the checkpoint as it is when this write's turn comes. */
  save(): Promise<void> {
    const next = this.last.then(() => writeCheckpoint(this.checkpoint));
    this.last = next.catch(() => {});
    return next;
  }

  settled(): Promise<void> {
    return this.last;
  }
}

/** Runs an import on `db` of `client`; the report, or ImportRefused. */
export async function runImport(
  client: mongoose.mongo.MongoClient,
  dbName: string,
  config: Config,
  log: FastifyBaseLogger,
  options: ImportOptions,
): Promise<ImportReport> {
  const startedAt = new Date();
  const spec = SPECS[options.collection];
  const db = client.db(dbName);
  await assertMigrated(db);
  const stores = storesOn(client, dbName, config, log);
  const importer = new Importer(spec, stores, options, log);
  const { counts, resumed, backup, rejects } = await importer.run(db);
  const finishedAt = new Date();
  return {
    collection: options.collection,
    file: options.file,
    format: options.format,
    dryRun: options.dryRun,
    onConflict: importer.onConflict,
    batchSize: importer.batchSize,
    resumed,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
    backup,
    rejects,
    records: counts,
    collections: await checksums(stores),
    ledger: await ledger(stores),
  };
}

async function assertMigrated(db: mongoose.mongo.Db): Promise<void> {
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((info) => info.name));
  const missing = COLLECTIONS.filter((name) => !existing.has(name));
  if (missing.length > 0)
    throw new ImportRefused(
      `the database has no ${missing.join(', ')} collection yet: run \`npm run migrate:up\` first`,
    );
}

/** Every collection's count and checksum, in natural-key order. */
async function checksums(stores: Stores): Promise<Record<string, Checksum>> {
  const result: Record<string, Checksum> = {};
  for (const name of COLLECTIONS) {
    const spec = SPECS[name];
    const sort = Object.fromEntries(spec.keyFields.map((field) => [field, 1 as const]));
    result[name] = await checksumOf(
      stores.repositoryOf(name),
      sort,
      (document) => canonical([spec.keyOf(document), spec.business(document)]),
      name === 'orders' ? stores.repositoryOf('customers') : undefined,
    );
  }
  return result;
}

async function ledger(stores: Stores): Promise<ImportReport['ledger']> {
  const found = await ledgerMismatches(
    stores.repositoryOf('stock'),
    stores.repositoryOf('orders'),
    OPEN_STATUSES,
    NAMED,
  );
  return { consistent: found.mismatchCount === 0, ...found };
}

class Importer {
  readonly onConflict: OnConflict;
  readonly batchSize: number;
  private readonly operations: ImportOperations;
  private readonly toStored: (value: unknown) => unknown;
  private readonly tick = throttled(1000);
  private totalBytes = 0;

  constructor(
    private readonly spec: ImportSpec,
    private readonly stores: Stores,
    private readonly options: ImportOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.onConflict = options.onConflict;
    this.batchSize = options.batchSize;
    this.operations = createShop(stores).imports;
    this.toStored = compileCaster(spec.entity.stored);
  }

  async run(
    db: mongoose.mongo.Db,
  ): Promise<{ counts: Counts; resumed: boolean; backup: string | null; rejects: string | null }> {
    const { options } = this;
    this.totalBytes = (await stat(options.file)).size;
    if (options.dryRun) {
      const counts = await this.plan(options.rejects);
      return { counts, resumed: false, backup: null, rejects: options.rejects };
    }

    let checkpoint = await this.checkpointToUse();
    const resumed = checkpoint !== undefined;
    if (checkpoint === undefined) {
      // Refusals come before the first write: the ledger for orders, a conflict under "fail".
      if (this.spec.collection === 'orders' || this.onConflict === 'fail') await this.plan(null);
      const backup = options.backup ? await this.backup(db) : null;
      checkpoint = {
        version: 1,
        collection: this.spec.collection,
        file: options.file,
        sha256: await sha256Of(options.file),
        batchSize: this.batchSize,
        onConflict: this.onConflict,
        runId: new mongoose.Types.ObjectId().toHexString(),
        backup,
        rejects: options.rejects,
        startedAt: new Date().toISOString(),
        done: { records: 0, batches: 0, rejectsBytes: 0, counts: noCounts() },
        pending: [],
      };
      await writeCheckpoint(checkpoint);
    } else if (this.spec.collection === 'orders') {
      // What is written already reads as unchanged; the rest must still balance the ledger.
      await this.plan(null);
    }
    const counts = await this.write(checkpoint);
    await removeCheckpoint(options.file);
    return { counts, resumed, backup: checkpoint.backup, rejects: checkpoint.rejects };
  }

  /** The checkpoint to go on from, if any; throws when one is there and neither --resume nor --restart says what to do. */
  private async checkpointToUse(): Promise<Checkpoint | undefined> {
    const { options } = this;
    const found = await readCheckpoint(options.file);
    if (options.checkpoint === 'restart') {
      // A transaction the stopped run left open would hold its documents for a minute yet.
      for (const { session } of found?.pending ?? [])
        if (session !== undefined) await endSession(this.stores.repositoryOf(this.spec.collection), session);
      if (found !== undefined) await removeCheckpoint(options.file);
      return undefined;
    }
    if (found === undefined) {
      if (options.checkpoint === 'resume')
        throw new ImportRefused(`there is nothing to resume: no checkpoint ${checkpointPath(options.file)}`);
      return undefined;
    }
    const where = `an import of this file into ${found.collection} stopped after ${found.done.records} records (${checkpointPath(options.file)})`;
    if (options.checkpoint === 'new')
      throw new ImportRefused(`${where}: --resume goes on from there, --restart starts again from the first record`);
    if (found.collection !== this.spec.collection)
      throw new ImportRefused(
        `${where}, not into ${this.spec.collection}: resume it with --collection ${found.collection}`,
      );
    if ((await sha256Of(options.file)) !== found.sha256)
      throw new ImportRefused(`${where}, and the file changed since: --restart to import it as it is now`);
    // The batches and the decisions are the first run's, so the resumed import ends as it would have.
    Object.assign(this, { batchSize: found.batchSize, onConflict: found.onConflict });
    return found;
  }

  private async backup(db: mongoose.mongo.Db): Promise<string> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = join(dirname(this.options.file), `storekeeper-backup-before-import-${stamp}`);
    await backupDatabase(db, { out, progress: this.options.progress });
    this.options.progress({ event: 'import-backup', message: `backed up the database to ${out}`, backup: out });
    return out;
  }

  // --- the passes --------------------------------------------------------------------------

  /** Reads and decides everything, writing nothing but the rejects (to `rejectsFile`); refuses what must be. */
  private async plan(rejectsFile: string | null): Promise<Counts> {
    const counts = noCounts();
    const rejects = rejectsFile === null ? undefined : createWriteStream(rejectsFile);
    const conflicts: Decided['conflicts'] = [];
    const ledger = new LedgerPlan();
    const reading = readRecords(this.options.file, this.options.format, this.options.mapping);
    try {
      for await (const batch of batches(reading.records, this.batchSize)) {
        const decided = await this.decide(batch);
        addCounts(counts, decided.counts);
        conflicts.push(...decided.conflicts.slice(0, NAMED - conflicts.length));
        for (const order of decided.orders) ledger.add(order.source, order.document, order.replaces);
        if (rejects !== undefined) await writeRejects(rejects, decided.rejects);
        this.report('import-plan-progress', 'checked', counts, reading.bytesRead());
      }
    } finally {
      if (rejects !== undefined) await closed(rejects);
    }
    this.report('import-plan-progress', 'checked', counts, this.totalBytes, true);
    if (this.onConflict === 'fail' && counts.skipped > 0 && !this.options.dryRun) {
      throw new ImportRefused(
        `${counts.skipped} records exist with other content and --on-conflict is fail, so nothing was written: ` +
          conflicts.map((c) => `${c.key} (line ${c.line})`).join(', '),
      );
    }
    if (this.spec.collection === 'orders') {
      const problems = await ledger.problems(this.stores);
      if (problems.length > 0 && !this.options.dryRun) {
        throw new ImportRefused(
          'the import would leave the stock ledger inconsistent (the reserved units of a stock item must be what ' +
            'its open orders hold), so nothing was written:\n' +
            problems.join('\n'),
        );
      }
      if (problems.length > 0)
        this.options.progress({
          event: 'import-ledger',
          message: `the import would be refused: it would leave the stock ledger inconsistent:\n${problems.join('\n')}`,
          problems,
        });
    }
    return counts;
  }

  /** Reads from the checkpoint on and writes batch by batch, advancing the checkpoint. */
  private async write(checkpoint: Checkpoint): Promise<Counts> {
    const counts = { ...checkpoint.done.counts };
    const rejectsFile = checkpoint.rejects;
    if (rejectsFile !== null) {
      // What a stopped run wrote past its last finished batch is written again with that batch.
      if (checkpoint.done.records > 0)
        await truncate(rejectsFile, checkpoint.done.rejectsBytes).catch((error: unknown) => {
          // Deleted meanwhile: the rejects from here on go to a new one.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        });
    }
    const rejectsBytesBefore = checkpoint.done.rejectsBytes;
    const rejects =
      rejectsFile === null
        ? undefined
        : createWriteStream(rejectsFile, { flags: checkpoint.done.records > 0 ? 'a' : 'w' });
    const reading = readRecords(this.options.file, this.options.format, this.options.mapping);
    const repository = this.stores.repositoryOf(this.spec.collection);
    // What the stopped run left: its open transactions are ended before anything is written
    // (they would hold their documents), and its batches are asked about as they come round.
    const stopped = new Map(checkpoint.pending.map((pending) => [pending.batch, pending]));
    for (const { session } of checkpoint.pending) if (session !== undefined) await endSession(repository, session);
    const saves = new CheckpointSaves(checkpoint);
    const source = batches(skipping(reading.records, checkpoint.done.records), this.batchSize)[Symbol.asyncIterator]();
    // The next batch is read, checked and looked up while the last ones are written, and
    // BATCHES_AT_ONCE batches are written at once, so that this process's work and MongoDB's
    // overlap and MongoDB works on one batch while another's entries are stored. A decision is only as fresh as its
    // lookups: a batch sharing a natural key with one committed since it was decided, or being
    // written, waits for every batch in flight and is decided again, so that batches whose
    // records meet end as they would one after another.
    const commits = new CommitLog();
    let prepared = checkpoint.done.batches;
    const requestIdOf = (number: number) => `import-${checkpoint.runId}-${number}`;
    const prepare = async () => {
      const next = await source.next();
      if (next.done === true) return undefined;
      const after = commits.count;
      const number = ++prepared;
      return { batch: next.value, number, decided: await this.decide(next.value, requestIdOf(number)), after };
    };
    const inFlight: Writing[] = [];
    // Batches are done in the file's order, whichever commits first: their counts, rejects and
    // progress, and the checkpoint's `done`.
    const finishOldest = async () => {
      const writing = inFlight.shift();
      if (writing === undefined) return;
      const decided = await writing.written;
      addCounts(counts, decided.counts);
      if (rejects !== undefined) await writeRejects(rejects, decided.rejects);
      checkpoint.done = {
        records: writing.records,
        batches: writing.batch,
        rejectsBytes: rejectsBytesBefore + (rejects?.bytesWritten ?? 0),
        counts: { ...counts },
      };
      checkpoint.pending = checkpoint.pending.filter((pending) => pending.batch !== writing.batch);
      await saves.save();
      this.report('import-progress', 'imported', counts, reading.bytesRead());
    };
    let upcoming = prepare();
    let records = checkpoint.done.records;
    try {
      for (let current = await upcoming; current !== undefined; current = await upcoming) {
        upcoming = prepare();
        // Its failure is met where it is awaited, not as an unhandled rejection meanwhile.
        upcoming.catch(() => {});
        const { batch, number } = current;
        let { decided } = current;
        const requestId = requestIdOf(number);
        records += batch.length;
        const keys = new Set(decided.keys);
        if (inFlight.some((writing) => meets(writing.keys, keys)) || commits.since(current.after, keys)) {
          while (inFlight.length > 0) await finishOldest();
          decided = await this.decide(batch, requestId);
        }
        if (inFlight.length >= BATCHES_AT_ONCE) await finishOldest();
        const ending = records;
        const earlier = stopped.get(number);
        const written = (async (): Promise<Decided> => {
          // The stopped run committed this batch's transaction: it counts what it counted then, and
          // is not written again. (A batch written document by document is decided again instead:
          // the documents it wrote carry its stamps, and count as written; see decide.)
          if (
            earlier !== undefined &&
            batchIsOneTransaction(this.spec.collection) &&
            (await committed(repository, requestId))
          )
            return { ...decided, counts: earlier.counts };
          await this.options.beforeWrite?.(number);
          const applied = await this.apply(decided, batch, { checkpoint, saves, number, requestId, records: ending });
          commits.add(keys);
          await this.options.afterCommit?.(number);
          return applied;
        })();
        // Met by finishOldest, in order; a failure meanwhile is not an unhandled rejection.
        written.catch(() => {});
        inFlight.push({ batch: number, records: ending, keys, written });
      }
      while (inFlight.length > 0) await finishOldest();
    } finally {
      // However the loop ended, nothing goes on writing behind its back (a resume could meet it).
      await Promise.allSettled(inFlight.map((writing) => writing.written));
      await saves.settled();
      if (rejects !== undefined) await closed(rejects);
    }
    this.report('import-progress', 'imported', counts, this.totalBytes, true);
    return counts;
  }

  /** Writes a decided batch, deciding again while its documents change under it. */
  private async apply(
    decided: Decided,
    batch: SourceRecord[],
    at: { checkpoint: Checkpoint; saves: CheckpointSaves; number: number; requestId: string; records: number },
  ): Promise<Decided> {
    const { checkpoint, saves, number, requestId, records } = at;
    for (let attempt = 1; ; attempt++) {
      const { inserts, updates, landed } = decided.batch;
      if (inserts.length === 0 && updates.length === 0 && landed.length === 0) return decided;
      const counts = decided.counts;
      const actor = { keyId: checkpoint.runId, keyName: actorName(this.options.file), requestId };
      try {
        await this.operations.apply(decided.batch, { actor, log: this.log }, async ({ session }) => {
          const pending = { batch: number, records, counts, session: sessionIdOf(session) };
          checkpoint.pending = [...checkpoint.pending.filter((other) => other.batch !== number), pending];
          await saves.save();
        });
        return decided;
      } catch (error) {
        if (!(error instanceof BatchChanged) || attempt >= REDECISIONS) throw error;
        decided = await this.decide(batch, requestId);
      }
    }
  }

  // --- deciding a batch ----------------------------------------------------------------------

  /**
   * What to do with each record of a batch, against what is stored. A document stored with the
   * stamp of this batch's own request (`requestId`) was written by an earlier try of it, stopped
   * partway: it counts as that write did, is not written again, and its audit entry is owed.
   */
  private async decide(records: readonly SourceRecord[], requestId?: string): Promise<Decided> {
    const { spec } = this;
    const counts = noCounts();
    const rejects: Reject[] = [];
    const reject = (source: SourceRecord, errors: FieldError[]) => {
      counts.rejected++;
      rejects.push({ record: source.record, line: source.line, errors, raw: source.raw });
    };
    const valid: { source: SourceRecord; document: Record<string, unknown>; key: string }[] = [];
    const seen = new Map<string, SourceRecord>();
    for (const source of records) {
      counts.read++;
      if (source.errors !== undefined) {
        reject(source, source.errors);
        continue;
      }
      const checked = spec.check(source.value);
      if ('errors' in checked) {
        reject(source, checked.errors);
        continue;
      }
      const key = spec.keyOf(checked.document);
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        reject(source, [
          {
            in: 'record',
            pointer: `/${spec.keyFields[0] ?? ''}`,
            message: `repeats the ${spec.keyFields.join(' and ')} of record ${earlier.record} (line ${earlier.line})`,
          },
        ]);
        continue;
      }
      seen.set(key, source);
      valid.push({ source, document: checked.document, key });
    }

    const documents = spec.collection === 'orders' ? await this.withCustomers(valid, reject) : valid;
    const existing = await findByNaturalKeys(
      this.stores.repositoryOf(spec.collection),
      documents.map(({ document }) => Object.fromEntries(spec.keyFields.map((field) => [field, document[field]]))),
      spec.keyOf,
    );
    const decided: Decided = {
      counts,
      batch: { collection: spec.collection, inserts: [], updates: [], landed: [] },
      rejects,
      conflicts: [],
      orders: [],
      keys: valid.map(({ key }) => key),
    };
    for (const { source, document, key } of documents) {
      const current = existing.get(key);
      if (current === undefined) {
        counts.inserted++;
        decided.batch.inserts.push(document);
        decided.orders.push({ source, document });
        continue;
      }
      const stamp = current[STAMP_FIELD] as AuditStamp | undefined;
      if (requestId !== undefined && stamp?.requestId === requestId) {
        if (stamp.action === 'create') counts.inserted++;
        else counts.updated++;
        decided.batch.landed.push(current);
        continue;
      }
      const same =
        canonical(spec.business(this.toStored(document) as Record<string, unknown>)) ===
        canonical(spec.business(current));
      if (same) counts.unchanged++;
      else if (this.onConflict === 'update') {
        counts.updated++;
        decided.batch.updates.push({ current, document });
        decided.orders.push({ source, document, replaces: current });
      } else {
        counts.skipped++;
        decided.conflicts.push({ record: source.record, line: source.line, key });
      }
    }
    if (spec.collection !== 'orders') decided.orders = [];
    // In the file's order, whichever check refused them.
    rejects.sort((a, b) => a.record - b.record);
    return decided;
  }

  /** Orders name their customer by e-mail; stored, they hold the customer's id. */
  private async withCustomers(
    valid: { source: SourceRecord; document: Record<string, unknown>; key: string }[],
    reject: (source: SourceRecord, errors: FieldError[]) => void,
  ): Promise<typeof valid> {
    const ids = await customerIdsByEmail(
      this.stores.repositoryOf('customers'),
      valid.map(({ document }) => String(document.customerEmail)),
    );
    const resolved: typeof valid = [];
    for (const { source, document, key } of valid) {
      const { customerEmail, ...order } = document;
      const customerId = ids.get(String(customerEmail).toLowerCase());
      if (customerId === undefined) {
        reject(source, [
          {
            in: 'record',
            pointer: '/customerEmail',
            message: 'names no customer of this database (import the customers first)',
          },
        ]);
        continue;
      }
      resolved.push({ source, document: { ...order, customerId }, key });
    }
    return resolved;
  }

  private report(event: string, verb: string, counts: Counts, bytes: number, force = false): void {
    if (!force && !this.tick()) return;
    const share = this.totalBytes === 0 ? 1 : Math.min(1, bytes / this.totalBytes);
    const width = 24;
    const filled = Math.round(share * width);
    this.options.progress({
      event,
      message:
        `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ` +
        `${verb} ${counts.read.toLocaleString('en-US')} records: ${counts.inserted} new, ${counts.updated} updated, ` +
        `${counts.unchanged} unchanged, ${counts.skipped} skipped, ${counts.rejected} rejected`,
      bytes,
      totalBytes: this.totalBytes,
      ...counts,
    });
  }
}

/** The audit trail's name of the import: the file it read. */
export const actorName = (file: string) => `import:${basename(file)}`.slice(0, 100);

/** What the open orders of an import will hold per stock place, against what the stock items reserve. */
class LedgerPlan {
  /** By place: units the imported open orders add, units the orders they replace held, and the lines. */
  private readonly places = new Map<string, { adds: number; removes: number; lines: number[] }>();

  add(source: SourceRecord, document: Record<string, unknown>, replaces?: StoredDocument): void {
    if (OPEN_STATUSES.includes(String(document.status))) {
      for (const line of document.lines as { sku: string; quantity: number }[]) {
        const place = this.at(placeOf(line.sku, document.warehouse));
        place.adds += line.quantity;
        if (place.lines.length < NAMED_LINES) place.lines.push(source.line);
      }
    }
    if (replaces !== undefined && OPEN_STATUSES.includes(String(replaces.status))) {
      for (const line of replaces.lines as { sku: string; quantity: number }[]) {
        const place = this.at(placeOf(line.sku, replaces.warehouse));
        place.removes += line.quantity;
        if (place.lines.length < NAMED_LINES) place.lines.push(source.line);
      }
    }
  }

  /** One sentence per place whose stock would not reserve what its open orders hold (at most NAMED). */
  async problems(stores: Stores): Promise<string[]> {
    if (this.places.size === 0) return [];
    const places = new Set(this.places.keys());
    const held = await openQuantities(stores.repositoryOf('orders'), OPEN_STATUSES, places);
    const reserved = await reservedAt(stores.repositoryOf('stock'), places);
    const problems: string[] = [];
    for (const [place, { adds, removes, lines }] of [...this.places].sort(([a], [b]) => a.localeCompare(b))) {
      const expected = (held.get(place) ?? 0) - removes + adds;
      const onStock = reserved.get(place);
      if ((onStock ?? 0) === expected) continue;
      if (problems.length >= NAMED) break;
      problems.push(
        `  ${place}: ${onStock === undefined ? 'no stock item' : `${onStock} reserved on the stock item`}, ` +
          `the open orders would hold ${expected} (orders at line${lines.length === 1 ? '' : 's'} ${lines.join(', ')})`,
      );
    }
    return problems;
  }

  private at(place: string) {
    let entry = this.places.get(place);
    if (entry === undefined) {
      entry = { adds: 0, removes: 0, lines: [] };
      this.places.set(place, entry);
    }
    return entry;
  }
}

// --- streams of records --------------------------------------------------------------------

async function* batches<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

async function* skipping<T>(items: AsyncIterable<T>, count: number): AsyncGenerator<T> {
  let skipped = 0;
  for await (const item of items) {
    if (skipped < count) skipped++;
    else yield item;
  }
}

// --- the rejects file ----------------------------------------------------------------------

async function writeRejects(stream: WriteStream, rejects: readonly Reject[]): Promise<void> {
  for (const { record, line, errors, raw } of rejects) {
    const entry = { record, line, errors: errors.map(({ pointer, message }) => ({ pointer, reason: message })), raw };
    if (!stream.write(`${JSON.stringify(entry)}\n`))
      await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
  }
  // Written through before the checkpoint counts them.
  await new Promise<void>((resolve, reject) => stream.write('', (error) => (error ? reject(error) : resolve())));
}

function closed(stream: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
}
