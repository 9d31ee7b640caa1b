import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.ts';
import { transactionRetries, withTransaction } from '../../src/data/transactions.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

describe('withTransaction', () => {
  let t: TestApp;
  const probe = () => t.app.db.connection.db!.collection<{ _id: string; n?: number }>('tx_probe');

  beforeAll(async () => {
    t = await buildTestApp('transactions');
    await waitForDatabase(t.app);
    // Created once, up front: collections are never created inside concurrent transactions.
    await t.app.db.connection.db!.createCollection('tx_probe');
  });
  afterAll(() => t.app.close());

  it('when a transaction fails part-way, none of its writes remain', async () => {
    await expect(
      withTransaction(
        t.app.db.connection,
        async (session) => {
          await probe().insertOne({ _id: 'partial-1' }, { session });
          await probe().insertOne({ _id: 'partial-2' }, { session });
          throw new Error('failed after two writes');
        },
        t.app.log,
      ),
    ).rejects.toThrow('failed after two writes');
    expect(await probe().countDocuments({ _id: { $in: ['partial-1', 'partial-2'] } })).toBe(0);
  });

  it('a real write conflict is retried and then succeeds, with both changes applied', async () => {
    await probe().insertOne({ _id: 'contended', n: 0 });
    const before = transactionRetries.transient;
    let releaseA!: () => void;
    const aMayCommit = new Promise<void>((resolve) => (releaseA = resolve));
    let aWrote!: () => void;
    const aHasWritten = new Promise<void>((resolve) => (aWrote = resolve));
    let attemptsOfB = 0;

    const a = withTransaction(
      t.app.db.connection,
      async (session) => {
        await probe().updateOne({ _id: 'contended' }, { $inc: { n: 1 } }, { session });
        aWrote();
        await aMayCommit;
      },
      t.app.log,
    );
    await aHasWritten;
    const b = withTransaction(
      t.app.db.connection,
      async (session) => {
        attemptsOfB++;
        try {
          await probe().updateOne({ _id: 'contended' }, { $inc: { n: 10 } }, { session });
        } finally {
          // B's first attempt has met A's uncommitted write: let A finish.
          releaseA();
        }
      },
      t.app.log,
    );
    await Promise.all([a, b]);
    expect(attemptsOfB).toBeGreaterThanOrEqual(2);
    expect(transactionRetries.transient).toBeGreaterThan(before);
    expect((await probe().findOne({ _id: 'contended' }))!.n).toBe(11);
    expect(t.logs.lines.some((line) => line.msg === 'transaction retried after a transient error')).toBe(true);
  });

  it('when transient errors persist, it gives up with a 503 and Retry-After, having tried a bounded number of times', async () => {
    let attempts = 0;
    const error = await withTransaction(
      t.app.db.connection,
      async (session) => {
        attempts++;
        await probe().insertOne({ _id: `doomed-${attempts}` }, { session });
        const transient = new mongoose.mongo.MongoServerError({ errmsg: 'simulated write conflict', code: 112 });
        transient.addErrorLabel('TransientTransactionError');
        throw transient;
      },
      t.app.log,
      { maxAttempts: 3, maxTimeMs: 30_000, retryAfterSeconds: 2 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).status).toBe(503);
    expect((error as AppError).headers['retry-after']).toBe('2');
    expect(attempts).toBe(3);
    expect(await probe().countDocuments({ _id: { $regex: '^doomed-' } })).toBe(0);
  });
});
