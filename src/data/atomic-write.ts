// A write of one document without a transaction: one atomic MongoDB operation that carries its
// audit stamp (src/data/audit-stream.ts), with the same honest outcomes as a transaction's
// (src/data/transactions.ts): written, refused, "nothing was written" only when certainly
// nothing was, and "outcome unknown" otherwise.
//
// An attempt that fails because MongoDB was unavailable or the operation was interrupted may or
// may not have been applied. The stamp says which: the write is looked for by its stamp, and
// found, it is the answer; not found, it is attempted again. Attempting again is safe by
// construction, because every attempt writes the same thing: an insert the same _id (a second
// landing is a duplicate of it, and nothing more), a rewrite the same stamp on the condition of
// the version it read (of two landings, the second matches nothing). When the deadline comes
// before the outcome is known, the answer says so.

import type { Deadline } from './deadline.ts';
import { DeadlineExceeded } from './deadline.ts';
import { failureKind } from './failures.ts';
import { notWritten, outcomeUnknown, transactionOutcomes, transactionRetries } from './transactions.ts';
import type { FastifyBaseLogger } from 'fastify';

export interface AtomicWrite<T> {
  /** Makes the write once; its stamp and (for an insert) its _id are the same on every call. */
  attempt(): Promise<T>;
  /** The document as the write left it, when the stamp is on it; null when it is not (yet). */
  landed(): Promise<T | null>;
  deadline: Deadline;
  log: FastifyBaseLogger;
  retryAfterSeconds: number;
}

/** Errors raised before a command was sent: the write cannot have been applied. */
const NEVER_SENT = new Set(['MongoServerSelectionError', 'MongoNotConnectedError', 'MongoWaitQueueTimeoutError']);

const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 250;
const LEAST_USEFUL_MS = 50;

const backoffMs = (attempt: number): number => Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);

const isDuplicateId = (error: unknown): boolean => {
  const duplicate = error as { code?: number; keyPattern?: Record<string, unknown> };
  return (
    duplicate.code === 11000 && duplicate.keyPattern !== undefined && Object.keys(duplicate.keyPattern).join() === '_id'
  );
};

export async function writeAtomically<T>(write: AtomicWrite<T>): Promise<T> {
  const { deadline, log } = write;
  let maybeApplied = false;
  let lastError: unknown;
  const giveUp = () => {
    if (maybeApplied) {
      transactionOutcomes.unknown++;
      log.warn({ err: lastError }, 'write outcome unknown: MongoDB did not say in time whether it was applied');
      return outcomeUnknown(write.retryAfterSeconds, lastError);
    }
    transactionOutcomes.notWritten++;
    log.warn({ err: lastError }, 'write gave up; nothing was written');
    return notWritten(write.retryAfterSeconds, lastError);
  };

  for (let attempt = 1; ; attempt++) {
    try {
      const written = await deadline.race(maybeApplied ? write.landed() : Promise.resolve(null));
      if (written !== null) {
        transactionOutcomes.committed++;
        return written;
      }
      const result = await deadline.race(write.attempt());
      transactionOutcomes.committed++;
      return result;
    } catch (error) {
      if (error instanceof DeadlineExceeded) {
        // The attempt still running may be applied later: only a write never sent is "not written".
        if (lastError === undefined) lastError = error;
        maybeApplied ||= attempt > 1 || !NEVER_SENT.has((lastError as Error).name);
        throw giveUp();
      }
      if (isDuplicateId(error)) {
        // An earlier attempt of this insert landed after all.
        maybeApplied = true;
        lastError = error;
      } else {
        const kind = failureKind(error);
        if (kind !== 'transient' && kind !== 'unavailable') {
          transactionOutcomes.refused++;
          throw error;
        }
        lastError = error;
        if (!NEVER_SENT.has((error as Error).name)) maybeApplied = true;
        transactionRetries[kind]++;
      }
      const wait = backoffMs(attempt);
      if (deadline.remaining() < wait + LEAST_USEFUL_MS) throw giveUp();
      log.info({ attempt, reason: (error as Error).message }, 'write attempted again: MongoDB was unavailable');
      await deadline.sleep(wait);
    }
  }
}
