// The one way to write several documents atomically: a replica-set transaction with majority
// read and write concern, retried as a whole on TransientTransactionError and at the commit on
// UnknownTransactionCommitResult, with bounded attempts and time and jittered backoff. When it
// gives up the caller gets a 503 with Retry-After, and nothing was half-written.

import mongoose, { type ClientSession, type Connection } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../errors.ts';

export interface TransactionOptions {
  /** Attempts of the whole transaction (the first included). */
  maxAttempts: number;
  /** Time budget over all attempts, after which no new attempt starts. */
  maxTimeMs: number;
  retryAfterSeconds: number;
}

export const DEFAULT_TRANSACTION_OPTIONS: TransactionOptions = { maxAttempts: 8, maxTimeMs: 10_000, retryAfterSeconds: 1 };

/** Retries seen since start, by kind: what a metrics endpoint reports. */
export const transactionRetries = { transient: 0, unknownCommit: 0, gaveUp: 0 };

const hasLabel = (error: unknown, label: string): boolean =>
  error instanceof mongoose.mongo.MongoError && error.hasErrorLabel(label);

const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 250;

/** Full jitter: a random wait up to an exponentially growing cap, so retries spread out. */
function backoff(attempt: number): Promise<void> {
  const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}

export async function withTransaction<T>(
  connection: Connection,
  work: (session: ClientSession) => Promise<T>,
  log: FastifyBaseLogger,
  options: TransactionOptions = DEFAULT_TRANSACTION_OPTIONS,
): Promise<T> {
  const started = Date.now();
  const withinBudget = () => Date.now() - started < options.maxTimeMs;
  const giveUp = (cause: unknown) => {
    transactionRetries.gaveUp++;
    log.warn({ err: cause, elapsedMs: Date.now() - started }, 'transaction gave up after retries');
    return AppError.unavailable(options.retryAfterSeconds, 'The write met too much contention to commit; nothing was written. Retry.', cause);
  };

  for (let attempt = 1; ; attempt++) {
    const session = await connection.startSession();
    try {
      session.startTransaction({
        readConcern: { level: 'majority' },
        writeConcern: { w: 'majority' },
        readPreference: 'primary',
      });
      const result = await work(session);
      await commit(session);
      return result;
    } catch (error) {
      if (session.inTransaction()) await session.abortTransaction().catch(() => undefined);
      if (!hasLabel(error, 'TransientTransactionError')) throw error;
      if (attempt >= options.maxAttempts || !withinBudget()) throw giveUp(error);
      transactionRetries.transient++;
      log.info({ attempt, reason: (error as Error).message }, 'transaction retried after a transient error');
      await backoff(attempt);
    } finally {
      await session.endSession();
    }
  }

  async function commit(session: ClientSession): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await session.commitTransaction();
        return;
      } catch (error) {
        // The commit may or may not have happened; committing again is safe and tells which.
        if (!hasLabel(error, 'UnknownTransactionCommitResult')) throw error;
        if (attempt >= options.maxAttempts || !withinBudget()) throw giveUp(error);
        transactionRetries.unknownCommit++;
        log.info({ attempt, reason: (error as Error).message }, 'transaction commit retried after an unknown result');
        await backoff(attempt);
      }
    }
  }
}
