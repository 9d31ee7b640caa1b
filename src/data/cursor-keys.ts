// The key that signs list cursors (see src/data/query.ts), the same on every instance, or a cursor
// from one instance would be refused by the next: CURSOR_SECRET when it is configured; otherwise
// a random secret stored once per database (collection service_secrets, created with its secret
// by a migration), read once per process. A database not yet migrated gets its secret from the
// first instance that needs one; instances that race to store it all end up with the one stored.

import { createHash, randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import type { Deadline } from './deadline.ts';

export const SECRETS_COLLECTION = 'service_secrets';
export const CURSOR_SECRET_ID = 'cursor-signing';

interface StoredSecret {
  _id: string;
  secret: string;
  createdAt: Date;
}

/** A secret as an HMAC key: hashed, so that secrets of any length give keys of one length. */
const keyOf = (secret: string) => createHash('sha256').update(`storekeeper cursors\n${secret}`).digest();

export class CursorKeys {
  private readonly configured: Buffer | undefined;
  private stored: Promise<Buffer> | undefined;

  constructor(
    private readonly connection: mongoose.Connection,
    secret?: string,
  ) {
    this.configured = secret === undefined ? undefined : keyOf(secret);
  }

  /** The signing key; with a deadline, it comes by it or the request answers 503. */
  async key(deadline?: Deadline): Promise<Buffer> {
    if (this.configured !== undefined) return this.configured;
    // One read per process; a failed read is not kept, the next list tries again.
    this.stored ??= this.load().catch((error: unknown) => {
      this.stored = undefined;
      throw error;
    });
    return deadline === undefined ? this.stored : deadline.race(this.stored);
  }

  private async load(): Promise<Buffer> {
    const db = this.connection.db;
    if (db === undefined) throw new mongoose.mongo.MongoNotConnectedError('MongoDB is not connected: no cursor key yet');
    const secrets = db.collection<StoredSecret>(SECRETS_COLLECTION);
    let found = await secrets.findOne({ _id: CURSOR_SECRET_ID });
    if (found === null) {
      await secrets.updateOne(
        { _id: CURSOR_SECRET_ID },
        { $setOnInsert: { secret: randomBytes(32).toString('base64url'), createdAt: new Date() } },
        { upsert: true },
      ).catch((error: { code?: number }) => {
        // Another instance stored it first (concurrent upserts on one _id): theirs is the one.
        if (error.code !== 11000) throw error;
      });
      found = await secrets.findOne({ _id: CURSOR_SECRET_ID });
    }
    if (found === null || typeof found.secret !== 'string') throw new Error(`${SECRETS_COLLECTION} holds no cursor secret`);
    return keyOf(found.secret);
  }
}
