// API keys on every /v1 route (and any other route that declares scopes): the key is read from
// `Authorization: Bearer <key>` (or X-API-Key), found by its public prefix, its secret compared
// with the stored hash in constant time, and the route's scopes checked. Fails closed: a /v1
// route that declares no scopes and whose scopes cannot be derived stops the app from starting.
// Lookups are cached for AUTH_CACHE_TTL_MS so that a request does not cost a query; expiry is
// still checked on every request. A key created, revoked or changed on any instance is forgotten
// as the key change stream reports it (within a second), so the cache's time bounds revocation
// only while that stream is down. Long-lived answers (change-feed streams) check their key again
// through the same lookup (app.authenticate).

import { timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import type { FastifyRequest, RouteOptions } from 'fastify';
import {
  DATA_RESOURCES,
  missingScopes,
  parseApiKey,
  readScope,
  secretMatches,
  writeScope,
  type Principal,
  type Scope,
} from '../../domain/access.ts';
import type { ApiKeyDocument, ApiKeyStore, KeyChange } from '../../data/api-keys.ts';
import type { Deadline } from '../../data/deadline.ts';
import { AppError } from '../../errors.ts';
import { problemResponses } from '../schemas/problem.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The scopes a key needs for this route. Routes under /v1/<collection> get the collection's
     * read scope (GET) or write scope (others) unless they declare their own; [] means any valid
     * key (the handler checks more itself, as the batch route does per operation).
     */
    scopes?: readonly Scope[];
  }
  interface FastifyRequest {
    /** The key the request authenticated with; null on the open routes (health, docs). */
    principal: Principal | null;
  }
  interface FastifyInstance {
    /**
     * The request's key checked again, through the same cached lookup, by `deadline`: what a
     * long-lived answer (a change-feed stream) calls to notice that its key was revoked.
     */
    authenticate(request: FastifyRequest, deadline: Deadline): Promise<Principal>;
  }
}

export interface AuthenticationOptions {
  cacheTtlMs: number;
  /** The default rate limit of a key that carries none of its own. */
  rateLimitPerMinute: number;
}

export const API_KEY_HEADER = 'x-api-key';
const REALM = 'Bearer realm="storekeeper"';
/** Unknown prefixes are cached too (as misses), so the cache is bounded against random keys. */
const CACHE_MAX_ENTRIES = 10_000;

export const SECURITY_SCHEMES = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'sk_<prefix>_<secret>',
    description: 'An API key from `npm run keys -- create`, as `Authorization: Bearer sk_...`.',
  },
  apiKeyHeader: {
    type: 'apiKey',
    in: 'header',
    name: 'X-API-Key',
    description: 'The same API key in an X-API-Key header, for clients that cannot set Authorization.',
  },
} as const;
const SECURITY_REQUIREMENT = [{ bearerAuth: [] }, { apiKeyHeader: [] }];

const unauthenticated = (code: string, detail: string, error?: string) =>
  new AppError(401, code, 'Unauthorized', {
    detail,
    headers: { 'www-authenticate': error === undefined ? REALM : `${REALM}, error="${error}"` },
  });

const noKey = () =>
  unauthenticated(
    'unauthenticated',
    `This route needs an API key: send Authorization: Bearer <key> (or ${API_KEY_HEADER}: <key>).`,
  );
const invalidKey = () =>
  unauthenticated('invalid-api-key', 'The API key is not valid: check that it was copied whole.', 'invalid_token');

/** The scopes a route needs, or undefined for an open route. Throws for a /v1 route it cannot decide. */
export function routeScopes(route: Pick<RouteOptions, 'url' | 'method' | 'config'>): readonly Scope[] | undefined {
  const declared = route.config?.scopes;
  if (declared !== undefined) return declared;
  if (route.url !== '/v1' && !route.url.startsWith('/v1/')) return undefined;
  const methods = [route.method].flat().map((method) => method.toUpperCase());
  const collection = route.url.split('/')[2] ?? '';
  const reads = methods.every((method) => method === 'GET' || method === 'HEAD');
  const writes = methods.every((method) => method !== 'GET' && method !== 'HEAD');
  if (DATA_RESOURCES.includes(collection) && (reads || writes))
    return [reads ? readScope(collection) : writeScope(collection)];
  throw new Error(
    `${methods.join(',')} ${route.url} is under /v1 but its scopes cannot be derived: declare config.scopes`,
  );
}

interface CachedKey {
  document: ApiKeyDocument | null;
  until: number;
}

/**
 * Finds keys by prefix through a small time-bounded cache, with one query per prefix in flight,
 * and forgets a key as soon as it is reported changed.
 */
class KeyCache {
  private readonly entries = new Map<string, CachedKey>();
  private readonly pending = new Map<string, Promise<ApiKeyDocument | null>>();
  /** Moves with every change reported: a lookup that started before one may have read the old key. */
  private generation = 0;

  constructor(
    private readonly store: ApiKeyStore,
    private readonly ttlMs: number,
  ) {}

  /**
   * Forgets what a change may have made stale: the changed key (found by its id, since an update
   * carries no prefix), a cached miss for a created key's prefix, or everything.
   */
  forget(change: KeyChange): void {
    this.generation++;
    this.pending.clear();
    if (change === 'all') {
      this.entries.clear();
      return;
    }
    if (change.prefix !== undefined) this.entries.delete(change.prefix);
    // Keys change rarely; a scan of at most CACHE_MAX_ENTRIES then is cheaper than a second index.
    for (const [prefix, entry] of this.entries)
      if (entry.document?._id.toHexString() === change.id) this.entries.delete(prefix);
  }

  async get(prefix: string): Promise<ApiKeyDocument | null> {
    const cached = this.entries.get(prefix);
    if (cached !== undefined && cached.until > Date.now()) return cached.document;
    const inFlight = this.pending.get(prefix);
    if (inFlight !== undefined) return inFlight;
    const generation = this.generation;
    const lookup = this.store
      .findByPrefix(prefix)
      .then((document) => {
        if (this.ttlMs > 0 && generation === this.generation) {
          if (this.entries.size >= CACHE_MAX_ENTRIES) {
            const [oldest] = this.entries.keys();
            if (oldest !== undefined) this.entries.delete(oldest);
          }
          this.entries.delete(prefix);
          this.entries.set(prefix, { document, until: Date.now() + this.ttlMs });
        }
        return document;
      })
      .finally(() => {
        if (this.pending.get(prefix) === lookup) this.pending.delete(prefix);
      });
    this.pending.set(prefix, lookup);
    return lookup;
  }
}

/** The key a request presents, or undefined when it presents none. */
function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (match === null)
      throw unauthenticated('unauthenticated', 'Authorization must be "Bearer <API key>".', 'invalid_request');
    return match[1];
  }
  const header = request.headers[API_KEY_HEADER];
  if (header === undefined) return undefined;
  if (typeof header !== 'string') throw invalidKey();
  return header.trim();
}

export default fp<AuthenticationOptions>(
  async (app, options) => {
    const keys = new KeyCache(app.stores.apiKeys, options.cacheTtlMs);
    const unfollow = app.stores.apiKeys.onChange((change) => keys.forget(change));
    app.addHook('onClose', async () => unfollow());
    const principals = new WeakMap<ApiKeyDocument, Principal>();
    app.decorateRequest('principal', null);
    // A secret once checked against its key's hash is kept (with the cached key document, so no
    // longer than the cache keeps that): the next requests compare with it in constant time
    // instead of hashing, which was the larger part of authentication's CPU per request.
    const verified = new WeakMap<ApiKeyDocument, Buffer>();
    const secretVerified = (document: ApiKeyDocument, secret: string): boolean => {
      const known = verified.get(document);
      if (known !== undefined) {
        const presented = Buffer.from(secret);
        return presented.length === known.length && timingSafeEqual(presented, known);
      }
      if (!secretMatches(secret, document.hash)) return false;
      verified.set(document, Buffer.from(secret));
      return true;
    };

    async function authenticate(request: FastifyRequest, deadline = request.deadline): Promise<Principal> {
      const presented = presentedKey(request);
      if (presented === undefined) throw noKey();
      const parsed = parseApiKey(presented);
      if (parsed === null) throw invalidKey();
      // Raced with the deadline: a lookup that MongoDB does not answer is shared by every request
      // that waits for it, and each of them answers in time (503) instead of waiting with it.
      const document = await deadline.race(keys.get(parsed.prefix));
      // An unknown prefix and a wrong secret answer alike: neither says which part was wrong.
      if (document === null || !secretVerified(document, parsed.secret)) throw invalidKey();
      if (document.revokedAt !== undefined) {
        throw unauthenticated(
          'api-key-revoked',
          `The API key ${document.prefix} was revoked on ${document.revokedAt.toISOString()}.`,
          'invalid_token',
        );
      }
      if (document.expiresAt !== undefined && document.expiresAt.getTime() <= Date.now()) {
        throw unauthenticated(
          'api-key-expired',
          `The API key ${document.prefix} expired on ${document.expiresAt.toISOString()}.`,
          'invalid_token',
        );
      }
      let principal = principals.get(document);
      if (principal === undefined) {
        principal = {
          keyId: document._id.toHexString(),
          prefix: document.prefix,
          name: document.name,
          scopes: new Set(document.scopes),
          ...(document.rateLimitPerMinute !== undefined && { rateLimitPerMinute: document.rateLimitPerMinute }),
        };
        principals.set(document, principal);
      }
      return principal;
    }

    app.decorate('authenticate', authenticate);

    app.addHook('onRoute', (route) => {
      const scopes = routeScopes(route);
      if (scopes === undefined) return;
      route.config = { ...route.config, scopes };
      const schema = (route.schema ??= {}) as {
        hide?: boolean;
        security?: unknown;
        response?: object;
        description?: string;
      };
      // Fastify's HEAD twin of a GET route shares its schema: document it once.
      if (schema.hide === true || schema.security !== undefined) return;
      // The contract shows what every protected route needs and how it can be refused.
      schema.security = SECURITY_REQUIREMENT;
      schema.response = { ...problemResponses(401, 403, 429), ...schema.response };
      const needs =
        scopes.length === 0
          ? 'Needs a valid API key (the scopes each part needs are checked per part).'
          : `Needs the scope${scopes.length > 1 ? 's' : ''} ${scopes.map((scope) => `\`${scope}\``).join(', ')}.`;
      schema.description = schema.description === undefined ? needs : `${schema.description}\n\n${needs}`;
    });

    app.addHook('onRequest', async (request, reply) => {
      const scopes = request.routeOptions.config.scopes;
      if (scopes === undefined) {
        app.rateLimitAnonymous(request, reply);
        return;
      }
      let principal: Principal;
      try {
        principal = await authenticate(request);
      } catch (error) {
        // Refused callers are limited by address, so guessing costs them as much as it costs us.
        if (error instanceof AppError && error.status === 401) app.rateLimitAnonymous(request, reply);
        throw error;
      }
      request.principal = principal;
      // The request's own child logger: every later line of the request names the key.
      (request.log as Logger).setBindings({ keyPrefix: principal.prefix });
      app.rateLimit(reply, `key:${principal.keyId}`, principal.rateLimitPerMinute ?? options.rateLimitPerMinute);
      authorize(request, scopes);
    });
  },
  // Rate limits before keys are looked up; CORS headers on a 401 too.
  { name: 'authentication', dependencies: ['stores', 'rate-limit', 'security-headers'], fastify: '5.x' },
);

/** Throws 403 unless the request's key holds every scope in `required`. */
export function authorize(request: FastifyRequest, required: readonly Scope[]): void {
  const principal = request.principal;
  if (principal === null) throw noKey();
  const missing = missingScopes(principal, required);
  if (missing.length > 0) {
    throw new AppError(403, 'insufficient-scope', 'Forbidden', {
      detail: `This API key lacks the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.`,
      extensions: { missingScopes: missing },
    });
  }
}
