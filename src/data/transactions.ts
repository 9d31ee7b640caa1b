// The one way to write several documents atomically: a replica-set transaction with majority
// read and write concern, and the one definition of what a write's outcome was.
//
// An attempt that fails before its commit is sent never committed: it is aborted and, when the
// failure was transient or MongoDB was unavailable, run again while the deadline allows. A commit
// whose answer is not a definite one is committed again (commitTransaction is retryable, and the
// server answers a repeated commit with the first one's outcome): the driver labels only some of
// those failures UnknownTransactionCommitResult (a commit in flight on a pool that was just cleared
// comes back as a bare network error), so every failure of a commit that does not say the
// transaction was aborted is treated as unknown. The caller then hears one of three things:
//   - the work's result: committed;
//   - 503 service-unavailable: certainly nothing was written (no commit was sent, or the server
//     said the transaction was aborted);
//   - 503 outcome-unknown: a commit was sent and its outcome could not be learnt in time.
// Every wait is bounded by the request's deadline; an attempt still running when it passes is
// never committed (the answer says "not written" only then).

import mongoose, { type ClientSession, type Connection } from 'mongoose';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../errors.ts';
import { serveInSession } from './served-requests.ts';
import { Deadline, DeadlineExceeded } from './deadline.ts';
import { failureKind } from './failures.ts';

export interface TransactionOptions {
  /** Attempts of the whole transaction (the first included). */
  maxAttempts: number;
  /** Time budget when the caller brings no deadline of its own (the command-line tools). */
  maxTimeMs: number;
  retryAfterSeconds: number;
}

export const DEFAULT_TRANSACTION_OPTIONS: TransactionOptions = {
  maxAttempts: 8,
  maxTimeMs: 10_000,
  retryAfterSeconds: 1,
};

/** Retries since start, by cause: what the metrics endpoint reports. */
export const transactionRetries = { transient: 0, unavailable: 0, unknownCommit: 0 };

/** Transactions since start, by outcome. */
export const transactionOutcomes = { committed: 0, refused: 0, notWritten: 0, unknown: 0 };

/** The answer when certainly nothing was written. */
export function notWritten(
  retryAfterSeconds: number,
  cause?: unknown,
  detail = 'MongoDB could not complete the write in time; nothing was written. Retry.',
): AppError {
  return AppError.unavailable(retryAfterSeconds, detail, cause);
}

/** The answer when a commit was sent and whether it happened could not be learnt in time. */
export function outcomeUnknown(retryAfterSeconds: number, cause?: unknown): AppError {
  return new AppError(503, 'outcome-unknown', 'Outcome Unknown', {
    detail:
      'The write reached MongoDB but whether it was applied could not be confirmed in time. Retry with the same ' +
      'Idempotency-Key to get its one answer; without a key, read the data before writing again.',
    headers: { 'retry-after': String(retryAfterSeconds) },
    cause,
  });
}

const hasLabel = (error: unknown, label: string): boolean =>
  error instanceof mongoose.mongo.MongoError && error.hasErrorLabel(label);

const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 250;
/** Less time than this left: another attempt could not finish, so none is started. */
const LEAST_USEFUL_MS = 50;

/** Full jitter: a random wait up to an exponentially growing cap, so retries spread out. */
const backoffMs = (attempt: number): number => Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);

const ignore = (): void => undefined;

export async function withTransaction<T>(
  connection: Connection,
  work: (session: ClientSession) => Promise<T>,
  log: FastifyBaseLogger,
  options: TransactionOptions = DEFAULT_TRANSACTION_OPTIONS,
  deadline: Deadline = Deadline.after(options.maxTimeMs),
): Promise<T> {
  const started = performance.now();
  const elapsedMs = () => Math.round(performance.now() - started);
  const giveUp = (cause: unknown, detail?: string) => {
    transactionOutcomes.notWritten++;
    log.warn({ err: cause, elapsedMs: elapsedMs() }, 'transaction gave up; nothing was written');
    return notWritten(options.retryAfterSeconds, cause, detail);
  };
  const unknown = (cause: unknown) => {
    transactionOutcomes.unknown++;
    log.warn({ err: cause, elapsedMs: elapsedMs() }, 'transaction outcome unknown: its commit did not answer in time');
    return outcomeUnknown(options.retryAfterSeconds, cause);
  };

  for (let attempt = 1; ; attempt++) {
    let session: ClientSession;
    try {
      session = await deadline.race(connection.startSession());
    } catch (error) {
      throw giveUp(error);
    }
    let phase: 'work' | 'commit' = 'work';
    let abandoned = false;
    const served = serveInSession(session, deadline.requestId);
    session.startTransaction({
      readConcern: { level: 'majority' },
      writeConcern: { w: 'majority' },
      readPreference: 'primary',
    });
    const attemptDone = (async () => {
      const result = await work(session);
      // The caller was already told "not written": this attempt must not commit.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the caller while work ran
      if (abandoned) throw new DeadlineExceeded();
      phase = 'commit';
      await commitUntilKnown(session, deadline, log);
      return result;
    })();
    // However the attempt ends, and even after the caller stopped waiting for it, its transaction
    // is aborted if it did not commit, and its session is ended.
    const cleanedUp = attemptDone
      .then(ignore, ignore)
      .then(() => (session.inTransaction() ? session.abortTransaction() : undefined))
      .catch(ignore)
      .finally(() => {
        served();
        return session.endSession().catch(ignore);
      });

    try {
      const result = await deadline.race(attemptDone);
      transactionOutcomes.committed++;
      return result;
    } catch (error) {
      if (error instanceof DeadlineExceeded) {
        abandoned = true;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the attempt sets it when it commits
        throw phase === 'work' ? giveUp(error) : unknown(error);
      }
      if (error instanceof CommitUnknown) throw unknown(error.cause);
      // The attempt is over; let its abort finish so the next attempt does not meet its writes.
      await deadline.race(cleanedUp).catch(ignore);
      const kind = failureKind(error);
      if (kind !== 'transient' && kind !== 'unavailable') {
        transactionOutcomes.refused++;
        throw error;
      }
      // Not committed: the attempt failed before its commit, or the commit said it was aborted.
      if (attempt >= options.maxAttempts)
        throw giveUp(error, 'The write met too much contention to commit; nothing was written. Retry.');
      const wait = backoffMs(attempt);
      if (deadline.remaining() < wait + LEAST_USEFUL_MS) throw giveUp(error);
      transactionRetries[kind]++;
      log.info(
        { attempt, reason: (error as Error).message },
        `transaction retried after ${kind === 'transient' ? 'a transient error' : 'MongoDB was unavailable'}`,
      );
      await deadline.sleep(wait);
    }
  }
}

/** A commit whose outcome was still unknown when the deadline left no time to ask again. */
class CommitUnknown extends Error {
  constructor(cause: unknown) {
    super("the commit's outcome is unknown", { cause });
    this.name = 'CommitUnknown';
  }
}

/**
 * Commits, and commits again while the outcome is unknown. Throws the server's error when it says
 * the transaction was aborted (TransientTransactionError: nothing was written), and CommitUnknown
 * when the deadline leaves no time to ask again.
 */
async function commitUntilKnown(session: ClientSession, deadline: Deadline, log: FastifyBaseLogger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      // Raced by the caller (withTransaction): the driver takes no timeout of its own here.
      await session.commitTransaction();
      return;
    } catch (error) {
      if (hasLabel(error, 'TransientTransactionError')) throw error;
      const wait = backoffMs(attempt);
      if (deadline.remaining() < wait + LEAST_USEFUL_MS) throw new CommitUnknown(error);
      transactionRetries.unknownCommit++;
      log.info({ attempt, reason: (error as Error).message }, 'transaction commit retried: its outcome was unknown');
      await deadline.sleep(wait);
    }
  }
}
