// Reads kept as bytes by the driver and decoded by raw-reads.ts give what the driver itself would
// have returned, for every BSON type a stored document can hold; and with command monitoring on,
// the event of such a read still shows the documents the reply returned.

import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { RAW, decode, decodeAll } from '../../src/data/raw-reads.ts';
import { dropDatabase, testDatabaseName } from '../helpers/app.ts';

const { ObjectId, Decimal128, Long, Binary, Timestamp, Int32, Double } = mongoose.mongo;

const database = testDatabaseName('raw-reads');

const stored = (i: number) => ({
  _id: new ObjectId(),
  i,
  name: `Ünïcode ✓ ${i}`,
  price: { amount: Decimal128.fromString(`${i}.99`), currency: 'EUR' },
  at: new Date(Date.UTC(2026, 11, 6, 12, 0, i)),
  tags: ['a', 'b', { nested: [1, 2.5, null] }],
  small: new Int32(7),
  wide: Long.fromString('9007199254740993'),
  whole: new Double(3),
  bytes: new Binary(Buffer.from([0, 1, 2, 255])),
  stamp: new Timestamp({ t: 1_700_000_000, i: 3 }),
  pattern: /^sku-\d+$/i,
  nothing: null,
  flag: true,
});

describe('raw reads', () => {
  let client: mongoose.mongo.MongoClient;
  const replies: mongoose.mongo.Document[] = [];

  beforeAll(async () => {
    client = await new mongoose.mongo.MongoClient(inject('mongoUri'), { monitorCommands: true }).connect();
    client.on('commandSucceeded', (event) => {
      if (event.commandName === 'find') replies.push(event.reply as mongoose.mongo.Document);
    });
    await client
      .db(database)
      .collection('things')
      .insertMany(Array.from({ length: 5 }, (_, i) => stored(i)));
  });
  afterAll(async () => {
    await client.close();
    await dropDatabase(database);
  });

  it('decode a batch into what the driver returns without RAW, type for type', async () => {
    const things = client.db(database).collection('things');
    const plain = await things.find({}, { sort: { i: 1 } }).toArray();
    const raw = decodeAll(await things.find({}, { sort: { i: 1 }, ...RAW }).toArray());
    expect(raw).toHaveLength(5);
    expect(raw).toStrictEqual(plain);
    expect(raw[0]!.price.amount).toBeInstanceOf(Decimal128);
    expect(raw[0]!.at).toBeInstanceOf(Date);
    expect(raw[0]!._id).toBeInstanceOf(ObjectId);
  });

  it('decode one document of findOne, and findOne of nothing stays null', async () => {
    const things = client.db(database).collection('things');
    const plain = await things.findOne({ i: 3 });
    const bytes = await things.findOne({ i: 3 }, RAW);
    expect(decode(bytes)).toStrictEqual(plain);
    expect(await things.findOne({ i: 99 }, RAW)).toBeNull();
  });

  it("leave the batch as one buffer per document in the monitoring event's reply", async () => {
    replies.length = 0;
    await client
      .db(database)
      .collection('things')
      .find({ i: { $lt: 4 } }, RAW)
      .toArray();
    const batch = (replies.at(-1)?.cursor as { firstBatch: unknown[] }).firstBatch;
    expect(batch).toHaveLength(4);
    expect(batch.every((item) => item instanceof Uint8Array)).toBe(true);
  });
});
