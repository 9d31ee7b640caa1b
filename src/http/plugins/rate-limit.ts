// Rate limits: a token bucket per API key (the key's own limit, or RATE_LIMIT_PER_MINUTE) and
// per client IP for the open routes and for requests with a missing or wrong key. Every answer
// says where the caller stands (RateLimit-Limit, -Remaining, -Reset, as the IETF draft names
// them); one over the limit gets 429 with Retry-After.
// Each request is decided in this instance's memory (no MongoDB round trip); every
// SYNC_INTERVAL_MS the instances on one database exchange what they admitted (rate-usage.ts), and
// each bucket is charged with what the others took. Between exchanges an identity that several
// instances serve gets a share of its bucket per instance, and a bucket new to an instance gets
// one instance's share of it until its first exchange, so the limit holds across instances:
// overshoot is at most one request per instance per exchange (shares round up), plus once at most
// the limit again in all, for a key whose burst reaches instances that had not served it in the
// last minute. While MongoDB does not answer, each instance limits alone (N x the limit).
// @fastify/rate-limit was not used: its store is asked on every request (a round trip when the
// store is shared), and its headers and answers are not the problem documents this API sends.

import { randomBytes } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateUsage } from '../../data/rate-usage.ts';
import { failureKind } from '../../data/failures.ts';
import { AppError } from '../../errors.ts';

export interface RateLimitOptions {
  /** Default per key; 0: unlimited. */
  perKeyPerMinute: number;
  /** Per client IP on the open routes and on failed authentication; 0: unlimited. */
  anonymousPerMinute: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
  perMinute: number;
  /** What this instance may still take before the next exchange; undefined: the whole bucket. */
  share: number | undefined;
  /** Taken here since the last exchange. */
  unshared: number;
}

/** Forgets buckets that have refilled (their owner went quiet), so memory follows active callers. */
const SWEEP_INTERVAL_MS = 60_000;
/** How often the instances exchange what they admitted. */
export const SYNC_INTERVAL_MS = 250;

export interface Decision {
  allowed: boolean;
  remaining: number;
  resetSeconds: number;
  retryAfterSeconds: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  /** Instances on the database, this one included, as the last exchange counted them. */
  private instances = 1;

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Takes one token from the bucket of `identity`, which holds up to `perMinute` tokens and
   * refills at `perMinute` per minute. Returns what is left and when to retry if none was left.
   */
  take(identity: string, perMinute: number): Decision {
    const now = this.now();
    const ratePerMs = perMinute / 60_000;
    let bucket = this.buckets.get(identity);
    if (bucket === undefined || bucket.perMinute !== perMinute) {
      // New here: the others may be using it; one instance's share until the next exchange says.
      const share = this.instances > 1 ? Math.ceil(perMinute / this.instances) : undefined;
      bucket = { tokens: perMinute, updatedAt: now, perMinute, share, unshared: 0 };
      this.buckets.set(identity, bucket);
    }
    bucket.tokens = Math.min(perMinute, bucket.tokens + (now - bucket.updatedAt) * ratePerMs);
    bucket.updatedAt = now;
    const allowed = bucket.tokens >= 1 && (bucket.share === undefined || bucket.share >= 1);
    if (allowed) {
      bucket.tokens -= 1;
      bucket.unshared += 1;
      if (bucket.share !== undefined) bucket.share -= 1;
    }
    const tokens = Math.max(0, bucket.tokens);
    return {
      allowed,
      remaining: Math.floor(tokens),
      resetSeconds: Math.ceil((perMinute - bucket.tokens) / ratePerMs / 1000),
      // Out of its share only: the next exchange gives another.
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerMs / 1000)),
    };
  }

  /** What was taken here since the last call, per identity: this instance's part of an exchange. */
  unshared(): Map<string, number> {
    const taken = new Map<string, number>();
    for (const [identity, bucket] of this.buckets) {
      if (bucket.unshared > 0) taken.set(identity, bucket.unshared);
      bucket.unshared = 0;
    }
    return taken;
  }

  identities(): string[] {
    return [...this.buckets.keys()];
  }

  /**
   * What an exchange learned: each bucket is charged with what the other instances took (down to
   * one minute's debt at most), and an identity that others use too gets its share of what is left.
   */
  shared(usage: ReadonlyMap<string, { others: number; peers: number }>, instances: number): void {
    this.instances = instances;
    const now = this.now();
    for (const [identity, bucket] of this.buckets) {
      const learned = usage.get(identity);
      // Not read in this exchange (new since it began): as it was.
      if (learned === undefined) continue;
      bucket.tokens = Math.min(
        bucket.perMinute,
        bucket.tokens + (now - bucket.updatedAt) * (bucket.perMinute / 60_000),
      );
      bucket.updatedAt = now;
      bucket.tokens = Math.max(-bucket.perMinute, bucket.tokens - learned.others);
      bucket.share = learned.peers > 0 ? Math.max(0, Math.ceil(bucket.tokens / (learned.peers + 1))) : undefined;
    }
  }

  /** No exchange: every bucket is this instance's alone again, so no share runs out waiting for one. */
  alone(): void {
    this.instances = 1;
    for (const bucket of this.buckets.values()) bucket.share = undefined;
  }

  sweep(): void {
    const now = this.now();
    for (const [identity, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * (bucket.perMinute / 60_000) >= bucket.perMinute)
        this.buckets.delete(identity);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** Requests refused with 429, by whose limit: an API key's, or a client IP's (no valid key). */
export type RateLimited = {
  key: number;
  anonymous: number;
};

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Charges one request to `identity` at `perMinute` (0: unlimited), sets the RateLimit headers
     * and throws a 429 problem when the limit is used up.
     */
    rateLimit(reply: FastifyReply, identity: string, perMinute: number): void;
    /** The same for a request without a valid key: charged to its client IP. */
    rateLimitAnonymous(request: FastifyRequest, reply: FastifyReply): void;
    /** Requests refused with 429 since start, by scope. */
    rateLimited: RateLimited;
  }
}

export default fp<RateLimitOptions>(
  async (app, options) => {
    const buckets = new TokenBuckets();
    const rateLimited: RateLimited = { key: 0, anonymous: 0 };
    app.decorate('rateLimited', rateLimited);
    const sweeper = setInterval(() => buckets.sweep(), SWEEP_INTERVAL_MS).unref();

    // The usage exchange, on the app's connection once the migration made its collection.
    const usage = RateUsage.of(app.db.connection, randomBytes(8).toString('hex'));
    let collectionReady = false;
    let checkedAt = 0;
    let failing = false;
    let exchanging: Promise<void> | undefined;
    const exchange = async (): Promise<void> => {
      if (!collectionReady) {
        if (Date.now() - checkedAt < SYNC_INTERVAL_MS * 8) return;
        checkedAt = Date.now();
        collectionReady = await usage.migrated();
        if (!collectionReady) return;
      }
      const admitted = buckets.unshared();
      const learned = await usage.exchange(admitted, buckets.identities(), SYNC_INTERVAL_MS * 8);
      buckets.shared(learned.usage, learned.instances);
    };
    const syncer = setInterval(() => {
      if (exchanging !== undefined || app.db.state !== 'connected') return;
      exchanging = exchange()
        .then(
          () => {
            if (failing) app.log.info('rate limits shared between instances again');
            failing = false;
          },
          (error: unknown) => {
            // What this instance admitted meanwhile is not counted by the others: in their favour.
            buckets.alone();
            if (!failing)
              app.log.warn(
                { reason: (error as Error).message, kind: failureKind(error) },
                'rate limits not shared between instances: each limits alone until MongoDB answers',
              );
            failing = true;
          },
        )
        .finally(() => {
          exchanging = undefined;
        });
    }, SYNC_INTERVAL_MS).unref();
    app.addHook('onClose', async () => {
      clearInterval(sweeper);
      clearInterval(syncer);
      await exchanging;
    });

    app.decorate('rateLimit', (reply: FastifyReply, identity: string, perMinute: number) => {
      if (perMinute === 0) return;
      const decision = buckets.take(identity, perMinute);
      reply.header('ratelimit-limit', perMinute);
      reply.header('ratelimit-remaining', decision.remaining);
      reply.header('ratelimit-reset', decision.resetSeconds);
      reply.header('ratelimit-policy', `${perMinute};w=60`);
      if (!decision.allowed) {
        if (identity.startsWith('key:')) rateLimited.key++;
        else rateLimited.anonymous++;
        throw new AppError(429, 'rate-limited', 'Too Many Requests', {
          detail: `Rate limit of ${perMinute} requests per minute exceeded; retry in ${decision.retryAfterSeconds} s.`,
          headers: { 'retry-after': String(decision.retryAfterSeconds) },
        });
      }
    });
    app.decorate('rateLimitAnonymous', (request: FastifyRequest, reply: FastifyReply) => {
      app.rateLimit(reply, `ip:${request.ip}`, options.anonymousPerMinute);
    });
  },
  { name: 'rate-limit', dependencies: ['client-errors', 'database'], fastify: '5.x' },
);
