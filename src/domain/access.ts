// Who may do what: the scopes an API key carries and the principal a request acts as. Scopes
// name a resource and an action; a key holds an explicit list of them (shorthands such as `*`
// are expanded when the key is created, so a scope added later is never granted by surprise).

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ENTITIES } from './entities/index.ts';

/** The document collections, each with a read and a write scope. */
export const DATA_RESOURCES = ENTITIES.map((entity) => entity.collection);

/** Scopes beyond the collections: the audit trail, API keys and operations (metrics). */
export const ADMIN_SCOPES = ['audit:read', 'keys:admin', 'operations:read'] as const;

export const SCOPES: readonly string[] = [
  ...DATA_RESOURCES.flatMap((collection) => [`${collection}:read`, `${collection}:write`]),
  ...ADMIN_SCOPES,
];

export type Scope = string;

export const readScope = (collection: string): Scope => `${collection}:read`;
export const writeScope = (collection: string): Scope => `${collection}:write`;

/** What a request authenticated by an API key acts as. */
export interface Principal {
  /** The key's id (hex ObjectId): what the audit trail records. */
  keyId: string;
  /** The key's public prefix, which also appears in the key itself. */
  prefix: string;
  name: string;
  scopes: ReadonlySet<Scope>;
  /** The key's own rate limit (requests per minute), overriding the service default. */
  rateLimitPerMinute?: number;
}

/** A scope name that is neither a scope nor a shorthand: the caller's mistake, like the RangeErrors of key creation. */
export class UnknownScopeError extends RangeError {
  override name = 'UnknownScopeError';
}

/**
 * Expands what an operator typed into the explicit scopes a key stores: exact scopes, `*:read`
 * and `*:write` (every collection), `<collection>:*` and `*` (every scope). Unknown names throw.
 */
export function expandScopes(requested: readonly string[]): Scope[] {
  const granted = new Set<Scope>();
  for (const raw of requested) {
    const name = raw.trim();
    if (name === '*') SCOPES.forEach((scope) => granted.add(scope));
    else if (name === '*:read') DATA_RESOURCES.forEach((collection) => granted.add(readScope(collection)));
    else if (name === '*:write') DATA_RESOURCES.forEach((collection) => granted.add(writeScope(collection)));
    else if (name.endsWith(':*') && DATA_RESOURCES.includes(name.slice(0, -2))) {
      granted.add(readScope(name.slice(0, -2)));
      granted.add(writeScope(name.slice(0, -2)));
    } else if (SCOPES.includes(name)) granted.add(name);
    else
      throw new UnknownScopeError(
        `unknown scope "${name}"; known: ${SCOPES.join(', ')}, or *, *:read, *:write, <collection>:*`,
      );
  }
  return SCOPES.filter((scope) => granted.has(scope));
}

/** The scopes of `required` the principal lacks (empty when allowed). */
export function missingScopes(principal: Principal, required: readonly Scope[]): Scope[] {
  return required.filter((scope) => !principal.scopes.has(scope));
}

// The key itself: `sk_<prefix>_<secret>`. The prefix (12 random lowercase letters and digits)
// finds the stored key and may be shown and logged; the secret (32 random bytes, base64url) is
// shown once and only its SHA-256 is stored. Random 256-bit secrets need no slow hash: nothing
// can be guessed, so a fast hash is what lets every request be checked cheaply.

const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const KEY_FORMAT = /^sk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface GeneratedKey {
  key: string;
  prefix: string;
  hash: string;
}

export function generateApiKey(): GeneratedKey {
  const bytes = randomBytes(12);
  const prefix = Array.from(bytes, (byte) => PREFIX_ALPHABET[byte % PREFIX_ALPHABET.length]).join('');
  const secret = randomBytes(32).toString('base64url');
  return { key: `sk_${prefix}_${secret}`, prefix, hash: hashSecret(secret) };
}

/** The prefix and secret of a well-formed key, or null. */
export function parseApiKey(key: string): { prefix: string; secret: string } | null {
  const [, prefix, secret] = KEY_FORMAT.exec(key) ?? [];
  return prefix === undefined || secret === undefined ? null : { prefix, secret };
}

export const hashSecret = (secret: string): string => hash('sha256', secret, 'hex');

/** Compares a presented secret with a stored hash in time that does not depend on where they differ. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const presented = hash('sha256', secret, 'buffer');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}
