// The audit stream against a real change stream: a stamped write gets exactly one entry, a write
// made while no stream runs gets its entry when the next one starts (as after a crash between a
// write and its entry), replaying from an older position stores nothing twice, unstamped writes
// (a migration's, an operator's) get none, and a stop leaves no cursor open on MongoDB, whatever
// command the stream had in flight. An insert of its entries MongoDB refuses as a whole leaves
// its position where it was.

import { afterEach, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import pino from 'pino';
import { Product } from '../../src/domain/entities/index.ts';
import { AuditStream, POSITIONS_COLLECTION, auditStreamEvents } from '../../src/data/audit-stream.ts';
import { useMigratedDatabase } from '../helpers/app.ts';

const { ObjectId } = mongoose.mongo;
const COLLECTIONS = ['products', 'customers', 'stock', 'orders'];
const actor = (requestId: string) => ({ keyId: new ObjectId().toHexString(), keyName: 'stream-test', requestId });

describe('the audit stream', () => {
  const database = useMigratedDatabase('audit_stream');
  const streams: AuditStream[] = [];
  const clients: mongoose.mongo.MongoClient[] = [];
  const client = () => (database.db as unknown as { client: mongoose.mongo.MongoClient }).client;
  /** A client as the service gives the stream: its own, two connections, named so its cursors can be told. */
  const newClient = (appName: string, monitorCommands = false) => {
    const created = new mongoose.mongo.MongoClient(inject('mongoUri'), { appName, maxPoolSize: 2, monitorCommands });
    clients.push(created);
    return created;
  };
  const open = async (on = client()) => {
    const stream = new AuditStream(
      on,
      database.name,
      { collections: COLLECTIONS, retentionDays: 30 },
      pino({ level: 'silent' }),
    );
    await stream.start();
    streams.push(stream);
    return stream;
  };
  afterEach(async () => {
    for (const stream of streams.splice(0)) await stream.stop();
    for (const created of clients.splice(0)) await created.close();
  });

  let sequence = 0;
  /** Inserts a product as the document API does, carrying `stamp`. */
  const insertProduct = async (stamp?: ReturnType<typeof AuditStream.stamp>) => {
    const now = new Date();
    const document = {
      _id: new ObjectId(),
      ...Product.example,
      sku: `STREAM-${++sequence}`,
      ...structuredClone(Product.serverDefaults),
      version: 1,
      createdAt: now,
      updatedAt: now,
      ...(stamp && { _audit: stamp }),
    };
    await database.db.collection('products').insertOne(document);
    return document;
  };
  const entries = (filter: Record<string, unknown>) => database.db.collection('audit_events').find(filter).toArray();

  it('stores one entry per stamped write, named after the stamp, once the stream has passed it', async () => {
    const stream = await open();
    const created = AuditStream.stamp('create', actor('req-create'));
    const product = await insertProduct(created);
    const patched = AuditStream.stamp('patch', actor('req-patch'));
    await database.db
      .collection('products')
      .updateOne({ _id: product._id }, { $set: { name: 'Renamed', _audit: patched }, $inc: { version: 1 } });

    await stream.settled();

    const stored = await entries({ documentId: product._id.toHexString() });
    expect(
      stored.map((entry) => [entry._id.toHexString(), entry.action, entry.documentVersion, entry.requestId]),
    ).toEqual([
      [created.id.toHexString(), 'create', 1, 'req-create'],
      [patched.id.toHexString(), 'patch', 2, 'req-patch'],
    ]);
    expect(stored[0]).toMatchObject({ collection: 'products', keyName: 'stream-test', keyId: created.keyId });
    expect(stored[0]!.expiresAt.getTime() - stored[0]!.at.getTime()).toBe(30 * 86_400_000);
  });

  it('gives a write made while no stream ran its entry when the next one starts, and never twice', async () => {
    const first = await open();
    await first.settled();
    await first.stop();
    streams.length = 0;

    const stamp = AuditStream.stamp('create', actor('req-while-down'));
    const product = await insertProduct(stamp);
    expect(await entries({ _id: stamp.id })).toEqual([]);

    const second = await open();
    await second.settled();
    expect(await entries({ documentId: product._id.toHexString() })).toHaveLength(1);

    // Replaying from before that write (a position lost with a crash) stores nothing again.
    await second.stop();
    streams.length = 0;
    const duplicatesBefore = auditStreamEvents.duplicates;
    await database.db.collection(POSITIONS_COLLECTION).updateOne({ _id: 'audit' as never }, { $unset: { token: '' } });
    const third = await open();
    await third.settled();
    expect(await entries({ documentId: product._id.toHexString() })).toHaveLength(1);
    expect(auditStreamEvents.duplicates).toBeGreaterThan(duplicatesBefore);
  });

  it('keeps its position when MongoDB refuses the insert of its entries as a whole, and stores them on its next try', async () => {
    const appName = `audit-stream-refused-${process.pid}`;
    const stream = await open(newClient(appName));
    await stream.settled();
    const restartsBefore = auditStreamEvents.restarts;
    // One refusal, of this stream's client on this database only, spent when it fires (no 'off'
    // afterwards: the fail point is one for the replica set, and other test files use it).
    await client()
      .db('admin')
      .command({
        configureFailPoint: 'failCommand',
        mode: { times: 1 },
        data: { failCommands: ['insert'], namespace: `${database.name}.audit_events`, appName, errorCode: 2 },
      });
    const stamp = AuditStream.stamp('create', actor('req-refused'));
    const product = await insertProduct(stamp);
    await stream.settled();
    expect(await entries({ documentId: product._id.toHexString() })).toHaveLength(1);
    expect(auditStreamEvents.restarts).toBeGreaterThan(restartsBefore);
  });

  it('leaves writes without a stamp unaudited', async () => {
    const stream = await open();
    const product = await insertProduct();
    await database.db.collection('products').updateOne({ _id: product._id }, { $set: { name: 'By an operator' } });
    await stream.settled();
    expect(await entries({ documentId: product._id.toHexString() })).toEqual([]);
  });

  it('leaves no cursor open on MongoDB when it stops, whatever command its stream has in flight', async () => {
    const observer = newClient('audit-stop-observer').db('admin');
    // An idle cursor does not name its client's appName: the database its stream watches does.
    const cursorsOfStreams = () =>
      observer
        .aggregate([
          { $currentOp: { idleCursors: true, allUsers: true } },
          { $match: { $or: [{ appName: 'audit-stop-test' }, { 'cursor.originatingCommand.$db': database.name }] } },
          { $match: { cursor: { $exists: true } } },
        ])
        .toArray();
    const on = newClient('audit-stop-test', true);
    /** Resolves once the stream's client sends `command`. */
    const sent = (command: string) =>
      new Promise<void>((resolve) => {
        const listener = (event: { commandName: string }) => {
          if (event.commandName !== command) return;
          on.off('commandStarted', listener);
          resolve();
        };
        on.on('commandStarted', listener);
      });
    for (let round = 0; round < 15; round++) {
      // Stopped while the aggregate that opens its cursor is on its way, while a getMore waits for
      // events, and once it stored an entry.
      const inFlight = round % 3 === 0 ? sent('aggregate') : round % 3 === 1 ? sent('getMore') : undefined;
      const stream = await open(on);
      await inFlight;
      if (inFlight === undefined) {
        await insertProduct(AuditStream.stamp('create', actor(`req-round-${round}`)));
        await stream.settled();
        if (round === 2) expect(await cursorsOfStreams()).not.toEqual([]);
      }
      await stream.stop();
      streams.length = 0;
    }
    expect(await cursorsOfStreams()).toEqual([]);
  });
});
