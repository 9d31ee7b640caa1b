// Storage of Idempotency-Key records: the atomic claim (an insert the _id makes exclusive), the
// stored answer, and the release that lets a retry run the work again. The collection and its TTL
// index are created by a migration.

import type { Connection, mongo } from 'mongoose';

export const IDEMPOTENCY_COLLECTION = 'idempotency_records';

const DUPLICATE_KEY = 11000;

export interface StoredAnswer {
  status: number;
  headers: Record<string, string>;
  body?: string;
}

export interface IdempotencyRecord extends Partial<StoredAnswer> {
  _id: string;
  state: 'running' | 'done';
  fingerprint: string;
  createdAt: Date;
  expiresAt: Date;
  completedAt?: Date;
}

export type Claim = { claimed: true } | { claimed: false; record: IdempotencyRecord };

export class IdempotencyStore {
  constructor(
    private readonly connection: Connection,
    private readonly ttlMs: number,
  ) {}

  private get records(): mongo.Collection<IdempotencyRecord> {
    return this.connection.collection<IdempotencyRecord>(IDEMPOTENCY_COLLECTION) as unknown as mongo.Collection<IdempotencyRecord>;
  }

  /**
   * Claims a scope for this request, or returns the record that holds it. A record that expired
   * but that the TTL monitor (which runs once a minute) has not removed yet counts as absent.
   */
  async claim(scope: string, fingerprint: string): Promise<Claim> {
    for (;;) {
      const now = new Date();
      try {
        await this.records.insertOne({ _id: scope, state: 'running', fingerprint, createdAt: now, expiresAt: new Date(now.getTime() + this.ttlMs) });
        return { claimed: true };
      } catch (error) {
        if ((error as { code?: unknown }).code !== DUPLICATE_KEY) throw error;
      }
      const record = await this.records.findOne({ _id: scope });
      // Released or expired in between: try to claim it again.
      if (record === null) continue;
      if (record.expiresAt <= now) {
        await this.records.deleteOne({ _id: scope, expiresAt: record.expiresAt });
        continue;
      }
      return { claimed: false, record };
    }
  }

  async find(scope: string): Promise<IdempotencyRecord | null> {
    return this.records.findOne({ _id: scope });
  }

  /** Stores the answer of the request that holds the claim. */
  async complete(scope: string, fingerprint: string, answer: StoredAnswer): Promise<void> {
    const set: Partial<IdempotencyRecord> = { state: 'done', completedAt: new Date(), status: answer.status, headers: answer.headers };
    if (answer.body !== undefined) set.body = answer.body;
    await this.records.updateOne({ _id: scope, fingerprint, state: 'running' }, { $set: set });
  }

  /** Gives the scope up, so that a retry runs the work again. */
  async release(scope: string, fingerprint: string): Promise<void> {
    await this.records.deleteOne({ _id: scope, fingerprint, state: 'running' });
  }
}
