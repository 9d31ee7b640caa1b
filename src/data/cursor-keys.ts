// The key that signs list cursors (see src/data/query.ts), the same on every instance, or a cursor
// from one instance would be refused by the next: CURSOR_SECRET when it is configured; otherwise
// a random secret stored once per database (collection service_secrets, created with its secret
// by a migration, which owns it: the service never creates collections), read once per process
// and only by a list that issues or reads a cursor.

import { createHash } from 'node:crypto';
import mongoose from 'mongoose';
import { AppError } from '../errors.ts';
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
    if (db === undefined)
      throw new mongoose.mongo.MongoNotConnectedError('MongoDB is not connected: no cursor key yet');
    const found = await db.collection<StoredSecret>(SECRETS_COLLECTION).findOne({ _id: CURSOR_SECRET_ID });
    if (found === null || typeof found.secret !== 'string') {
      throw new AppError(503, 'migrations-pending', 'Service Unavailable', {
        detail:
          `No cursor secret is stored in ${SECRETS_COLLECTION}: apply the migrations (npm run ` +
          `migrate:up), or set CURSOR_SECRET.`,
        headers: { 'retry-after': '5' },
      });
    }
    return keyOf(found.secret);
  }
}
