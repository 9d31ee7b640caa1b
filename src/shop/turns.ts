// Writes that collide on the same documents take turns in this process (src/data/key-locks.ts
// says why): a write of one document waits for the others of the same document, a stock movement
// for those of its items. Across instances the transactions and their retries keep writes
// correct. Waiting longer than the request's deadline for a turn is a 503: nothing was written.

import { AppError } from '../errors.ts';
import type { Deadline } from '../data/deadline.ts';
import { KeyLocks, TurnTimeout } from '../data/key-locks.ts';
import type { TransactionOptions } from '../data/transactions.ts';

export class Turns {
  private readonly locks = new KeyLocks();

  /** `noun` names what a key stands for in the 503 (a product, a stock item). */
  constructor(
    private readonly noun: string,
    private readonly transaction: TransactionOptions,
  ) {}

  /** Runs `work` holding the turn of every key; without a deadline, waits up to the transaction's own budget. */
  async take<T>(keys: readonly string[], deadline: Deadline | undefined, work: () => Promise<T>): Promise<T> {
    const { maxTimeMs, retryAfterSeconds } = this.transaction;
    try {
      return await this.locks.run(keys, deadline?.remaining() ?? maxTimeMs, work);
    } catch (error) {
      if (!(error instanceof TurnTimeout)) throw error;
      throw AppError.unavailable(
        retryAfterSeconds,
        `Too many writes of the ${this.noun} ${error.key} at once; nothing was written. Retry.`,
        error,
      );
    }
  }
}
