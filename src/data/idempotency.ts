// Storage of Idempotency-Key records. A record is, in turn:
//   running   a request holds the key under a lease (owner, leaseUntil) that ends shortly after
//             that request's deadline; once the lease has ended, a retry takes the key over;
//   committed the write committed, and its result was stored in the write's own transaction
//             (commitIn), so a retry rebuilds the same answer from it and never writes again;
//   done      the answer is stored as sent, and a retry gets it back as it was.
// A request that fails without committing gives the key up (release, best-effort); if that does
// not reach MongoDB, its lease ends anyway. The collection, its validator and its TTL index are a
// migration's.

import { AppError } from '../errors.ts';
import type { ClientSession, Connection, mongo } from 'mongoose';
import type { Deadline } from './deadline.ts';

export const IDEMPOTENCY_COLLECTION = 'idempotency_records';

const DUPLICATE_KEY = 11000;
/** Records written before leases existed hold their key this long after they were created. */
const LEGACY_LEASE_MS = 60_000;
/** A claim's lease outlives its request's deadline by this much: time for a commit sent at the deadline to land. */
export const LEASE_GRACE_MS = 2_000;
/** Rounds of claim-or-read before giving up on a key that keeps changing hands. */
const MAX_CLAIM_ROUNDS = 8;

export interface StoredAnswer {
  status: number;
  headers: Record<string, string>;
  body?: string;
}

export interface IdempotencyRecord extends Partial<StoredAnswer> {
  _id: string;
  state: 'running' | 'committed' | 'done';
  fingerprint: string;
  /** The request holding a running record (absent on records older than leases). */
  owner?: string;
  /** Until when that request holds it. */
  leaseUntil?: Date;
  createdAt: Date;
  expiresAt: Date;
  committedAt?: Date;
  /** committed: the write's result, from which its answer is rebuilt. */
  result?: unknown;
  completedAt?: Date;
}

export type Claim = { claimed: true; tookOver: boolean } | { claimed: false; record: IdempotencyRecord };

/** Since start: what the metrics endpoint reports. */
export const idempotencyEvents = {
  claimed: 0,
  replayed: 0,
  rebuilt: 0,
  takenOver: 0,
  expired: 0,
  inProgress: 0,
  reused: 0,
};

/** The end of a running record's lease. */
export function leaseEnd(record: IdempotencyRecord): Date {
  return record.leaseUntil ?? new Date(record.createdAt.getTime() + LEGACY_LEASE_MS);
}

/** This request's claim was taken over by a retry (its lease had ended): this request writes nothing. */
export const claimLost = () =>
  new AppError(409, 'idempotency-in-progress', 'Idempotency Key In Progress', {
    detail:
      'A newer request with this Idempotency-Key took it over; nothing was written by this one. Retry to get ' +
      'the answer.',
    headers: { 'retry-after': '1' },
  });

export class IdempotencyStore {
  constructor(
    private readonly connection: Connection,
    private readonly ttlMs: number,
  ) {}

  private get records(): mongo.Collection<IdempotencyRecord> {
    return this.connection.collection<IdempotencyRecord>(IDEMPOTENCY_COLLECTION);
  }

  /**
   * Claims a scope for `owner` until LEASE_GRACE_MS after its deadline, taking over a running
   * record whose lease has ended; otherwise returns the record that holds the scope. A record past
   * its expiry that the TTL monitor (once a minute) has not removed yet counts as absent. Every
   * operation is answered by the deadline or abandoned (DeadlineExceeded).
   */
  async claim(scope: string, fingerprint: string, owner: string, deadline: Deadline): Promise<Claim> {
    for (let round = 1; ; round++) {
      const now = new Date();
      const leaseUntil = new Date(now.getTime() + deadline.remaining() + LEASE_GRACE_MS);
      try {
        await deadline.race(
          this.records.insertOne({
            _id: scope,
            state: 'running',
            fingerprint,
            owner,
            leaseUntil,
            createdAt: now,
            expiresAt: new Date(now.getTime() + this.ttlMs),
          }),
        );
        idempotencyEvents.claimed++;
        return { claimed: true, tookOver: false };
      } catch (error) {
        if ((error as { code?: unknown }).code !== DUPLICATE_KEY) throw error;
      }
      const record = await deadline.race(this.records.findOne({ _id: scope }));
      const last = round >= MAX_CLAIM_ROUNDS;
      // Released or expired in between: claim it again.
      if (record === null && !last) continue;
      if (record === null) throw new Error('the idempotency record kept changing hands');
      if (record.expiresAt <= now && !last) {
        await deadline.race(this.records.deleteOne({ _id: scope, expiresAt: record.expiresAt }));
        idempotencyEvents.expired++;
        continue;
      }
      if (record.state === 'running' && record.fingerprint === fingerprint && leaseEnd(record) <= now) {
        // The holder's lease ended (its request crashed, timed out or lost MongoDB): take it over.
        // The filter names the holder, so of several retries exactly one takes it.
        const taken = await deadline.race(
          this.records.updateOne(
            {
              _id: scope,
              state: 'running',
              owner: record.owner ?? { $exists: false },
              leaseUntil: record.leaseUntil ?? { $exists: false },
            },
            { $set: { owner, leaseUntil } },
          ),
        );
        if (taken.modifiedCount === 1) {
          idempotencyEvents.takenOver++;
          return { claimed: true, tookOver: true };
        }
        if (!last) continue;
      }
      return { claimed: false, record };
    }
  }

  async find(scope: string, deadline: Deadline): Promise<IdempotencyRecord | null> {
    return deadline.race(this.records.findOne({ _id: scope }));
  }

  /**
   * Inside the write's transaction: the write committed with `result`. Only the current holder may
   * record it, so of two requests that both believed they held the key at most one writes; the
   * other's transaction aborts with claimLost.
   */
  async commitIn(session: ClientSession, scope: string, owner: string, result: unknown): Promise<void> {
    const { matchedCount } = await this.records.updateOne(
      { _id: scope, owner, state: 'running' },
      { $set: { state: 'committed', committedAt: new Date(), result } },
      { session, ignoreUndefined: true },
    );
    if (matchedCount === 0) throw claimLost();
  }

  /** Stores the answer as sent: of the holder of a running record, or of any request replaying a committed one. */
  async complete(
    scope: string,
    fingerprint: string,
    owner: string,
    answer: StoredAnswer,
    deadline: Deadline,
  ): Promise<void> {
    const set: Partial<IdempotencyRecord> = {
      state: 'done',
      completedAt: new Date(),
      status: answer.status,
      headers: answer.headers,
    };
    if (answer.body !== undefined) set.body = answer.body;
    await deadline.race(
      this.records.updateOne(
        { _id: scope, fingerprint, $or: [{ state: 'running', owner }, { state: 'committed' }] },
        { $set: set, $unset: { result: '', owner: '', leaseUntil: '' } },
      ),
    );
  }

  /** Gives a running claim up, so that a retry runs the work at once. Never touches a committed record. */
  async release(scope: string, owner: string, deadline: Deadline): Promise<void> {
    await deadline.race(this.records.deleteOne({ _id: scope, owner, state: 'running' }));
  }
}
