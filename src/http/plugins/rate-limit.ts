// Rate limits: a token bucket per API key (the key's own limit, or RATE_LIMIT_PER_MINUTE) and
// per client IP for the open routes and for requests with a missing or wrong key. Every answer
// says where the caller stands (RateLimit-Limit, -Remaining, -Reset, as the IETF draft names
// them); one over the limit gets 429 with Retry-After. Buckets live in this instance's memory:
// behind a load balancer of N instances a client gets up to N times the limit.

import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
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
}

/** Forgets buckets that have refilled (their owner went quiet), so memory follows active callers. */
const SWEEP_INTERVAL_MS = 60_000;

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Takes one token from the bucket of `identity`, which holds up to `perMinute` tokens and
   * refills at `perMinute` per minute. Returns what is left and when to retry if none was left.
   */
  take(
    identity: string,
    perMinute: number,
  ): { allowed: boolean; remaining: number; resetSeconds: number; retryAfterSeconds: number } {
    const now = this.now();
    const ratePerMs = perMinute / 60_000;
    let bucket = this.buckets.get(identity);
    if (bucket === undefined || bucket.perMinute !== perMinute) {
      bucket = { tokens: perMinute, updatedAt: now, perMinute };
      this.buckets.set(identity, bucket);
    }
    bucket.tokens = Math.min(perMinute, bucket.tokens + (now - bucket.updatedAt) * ratePerMs);
    bucket.updatedAt = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return {
      allowed,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((perMinute - bucket.tokens) / ratePerMs / 1000),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerMs / 1000)),
    };
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

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Charges one request to `identity` at `perMinute` (0: unlimited), sets the RateLimit headers
     * and throws a 429 problem when the limit is used up.
     */
    rateLimit(reply: FastifyReply, identity: string, perMinute: number): void;
    /** The same for a request without a valid key: charged to its client IP. */
    rateLimitAnonymous(request: FastifyRequest, reply: FastifyReply): void;
  }
}

export default fp<RateLimitOptions>(
  async (app, options) => {
    const buckets = new TokenBuckets();
    const sweeper = setInterval(() => buckets.sweep(), SWEEP_INTERVAL_MS).unref();
    app.addHook('onClose', async () => clearInterval(sweeper));

    app.decorate('rateLimit', (reply: FastifyReply, identity: string, perMinute: number) => {
      if (perMinute === 0) return;
      const decision = buckets.take(identity, perMinute);
      reply.header('ratelimit-limit', perMinute);
      reply.header('ratelimit-remaining', decision.remaining);
      reply.header('ratelimit-reset', decision.resetSeconds);
      reply.header('ratelimit-policy', `${perMinute};w=60`);
      if (!decision.allowed) {
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
  { name: 'rate-limit', dependencies: ['client-errors'], fastify: '5.x' },
);
