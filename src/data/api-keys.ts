// Storage of API keys: created with a fresh secret (returned once, stored as a hash), listed
// without their hashes, revoked by setting revokedAt, and found by their public prefix. The
// collection and its unique prefix index are created by a migration. Given a unit of work's
// transaction (the HTTP API's), a creation or revocation is written in it and recorded there;
// the ops command writes without one. What changes, on any instance or through the ops command,
// reaches the store's listeners (the key cache) from the key change stream (key-changes.ts).

import mongoose, { type mongo } from 'mongoose';
import { expandScopes, generateApiKey, type Scope } from '../domain/access.ts';
import type { Tx } from './unit-of-work.ts';

export const API_KEYS_COLLECTION = 'api_keys';

export interface ApiKeyDocument {
  _id: mongo.ObjectId;
  prefix: string;
  hash: string;
  name: string;
  scopes: Scope[];
  rateLimitPerMinute?: number;
  createdAt: Date;
  expiresAt?: Date;
  revokedAt?: Date;
}

/** A key as shown to operators: everything but the hash, with its id as hex. */
export type ApiKeyInfo = Omit<ApiKeyDocument, '_id' | 'hash'> & { id: string };

export interface NewApiKey {
  name: string;
  /** As an operator writes them; shorthands (`*`, `*:read`...) are expanded here. */
  scopes: readonly string[];
  expiresAt?: Date;
  rateLimitPerMinute?: number;
}

/**
 * A key that changed (created, revoked, altered or removed: its id, and its prefix when the change
 * carried it), or 'all' when anything may have changed unseen.
 */
export type KeyChange = { id: string; prefix?: string } | 'all';

export const keyInfo = ({ _id, hash: _hash, ...rest }: ApiKeyDocument): ApiKeyInfo => ({
  id: _id.toHexString(),
  ...rest,
});

export class ApiKeyStore {
  private readonly listeners = new Set<(change: KeyChange) => void>();

  constructor(private readonly keys: mongo.Collection<ApiKeyDocument>) {}

  /** Calls `listener` with every change the key change stream reports; returns its removal. */
  onChange(listener: (change: KeyChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What the key change stream reports. */
  changed(change: KeyChange): void {
    for (const listener of this.listeners) listener(change);
  }

  /** A store over a driver database (the ops command) or a Mongoose connection (the service). */
  static of(db: mongo.Db | mongoose.Connection): ApiKeyStore {
    return new ApiKeyStore(db.collection(API_KEYS_COLLECTION) as unknown as mongo.Collection<ApiKeyDocument>);
  }

  /** Creates a key; the returned `key` is the only time its secret exists outside the caller. */
  async create(input: NewApiKey, tx?: Tx): Promise<ApiKeyInfo & { key: string }> {
    const name = input.name.trim();
    // Characters as the API's schema and the collection's validator count them: code points, not UTF-16 units.
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- splitting into code points is the point
    const length = [...name].length;
    if (length === 0 || length > 100) throw new RangeError('a key name must be 1-100 characters');
    if (input.expiresAt !== undefined && !(input.expiresAt.getTime() > Date.now()))
      throw new RangeError('the expiry must be in the future');
    if (
      input.rateLimitPerMinute !== undefined &&
      !(Number.isInteger(input.rateLimitPerMinute) && input.rateLimitPerMinute >= 0)
    ) {
      throw new RangeError('the rate limit must be a whole number of requests per minute (0: unlimited)');
    }
    const scopes = expandScopes(input.scopes);
    if (scopes.length === 0) throw new RangeError('a key needs at least one scope');
    // A prefix collision is astronomically unlikely; the unique index would refuse it, and a new
    // key is drawn.
    for (let attempt = 1; ; attempt++) {
      const { key, prefix, hash } = generateApiKey();
      const document: ApiKeyDocument = {
        _id: new mongoose.mongo.ObjectId(),
        prefix,
        hash,
        name,
        scopes,
        ...(input.rateLimitPerMinute !== undefined && { rateLimitPerMinute: input.rateLimitPerMinute }),
        createdAt: new Date(),
        ...(input.expiresAt !== undefined && { expiresAt: input.expiresAt }),
      };
      try {
        await this.keys.insertOne(document, { session: tx?.session });
        tx?.record('create', API_KEYS_COLLECTION, document);
        return { ...keyInfo(document), key };
      } catch (error) {
        if ((error as { code?: unknown }).code !== 11000 || attempt >= 3) throw error;
      }
    }
  }

  async list(): Promise<ApiKeyInfo[]> {
    const documents = await this.keys.find({}, { sort: { createdAt: 1, _id: 1 } }).toArray();
    return documents.map(keyInfo);
  }

  /** The key with this id or prefix, or null. */
  async find(idOrPrefix: string, session?: mongo.ClientSession): Promise<ApiKeyInfo | null> {
    const filter = /^[0-9a-f]{24}$/.test(idOrPrefix)
      ? { _id: new mongoose.mongo.ObjectId(idOrPrefix) }
      : { prefix: idOrPrefix };
    const document = await this.keys.findOne(filter, { session });
    return document === null ? null : keyInfo(document);
  }

  /** The stored key with this prefix (hash included), for authentication. */
  async findByPrefix(prefix: string): Promise<ApiKeyDocument | null> {
    return this.keys.findOne({ prefix });
  }

  /**
   * Revokes a key by id or prefix; returns it as revoked, or null when there is none. Revoking twice
   * keeps the first time.
   */
  async revoke(idOrPrefix: string, tx?: Tx): Promise<{ key: ApiKeyInfo; changed: boolean } | null> {
    const session = tx?.session;
    const found = await this.find(idOrPrefix, session);
    if (found === null) return null;
    const document = await this.keys.findOneAndUpdate(
      { _id: new mongoose.mongo.ObjectId(found.id), revokedAt: { $exists: false } },
      { $set: { revokedAt: new Date() } },
      { returnDocument: 'after', session },
    );
    // Revoked already (by another request in between, outside a transaction): as it is now.
    if (document === null) return { key: (await this.find(found.id, session)) ?? found, changed: false };
    tx?.record('revoke', API_KEYS_COLLECTION, document);
    return { key: keyInfo(document), changed: true };
  }
}
