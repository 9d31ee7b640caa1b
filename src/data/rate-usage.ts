// Rate-limit usage shared between the instances on one database, so that a key's limit holds
// across them while each request is still decided in memory. Every exchange (a few times a
// second) an instance adds the requests it admitted per identity to that identity's document of
// the current minute ($inc, with a count per instance), renews its own heartbeat, and reads back
// the documents of the identities it serves: what the others used since the last exchange, and how
// many others use each identity; the heartbeats say how many instances there are. The collection
// and its TTL index are a migration's: an exchange never creates it.

import type mongoose from 'mongoose';
import type { mongo } from 'mongoose';
import { MIGRATION_SETTINGS } from './migrations.ts';

export const RATE_USAGE_COLLECTION = 'rate_usage';
/** The migration that creates the collection: no exchange before it is applied. */
const MIGRATION = '20261209000000-rate-usage.js';

/** Usage is counted per minute: a document per identity and minute. */
const WINDOW_MS = 60_000;
/** An instance whose heartbeat is older than this has gone. */
const INSTANCE_GONE_MS = 10_000;

interface UsageDocument {
  _id: string;
  n?: number;
  by?: Record<string, number>;
  at?: Date;
  expiresAt: Date;
}

/** What an exchange learned of one identity. */
export interface Usage {
  /** Requests the other instances admitted since the previous exchange. */
  others: number;
  /** Other instances that used it this minute or the last. */
  peers: number;
}

export class RateUsage {
  /** The others' count last seen per usage document. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly usage: mongo.Collection<UsageDocument>,
    /** This instance's id: a name for its counts and its heartbeat. */
    readonly instance: string,
    /** The changelog's entry of the collection's migration, or null. */
    private readonly changelog: () => Promise<unknown>,
    private readonly now: () => number = Date.now,
  ) {}

  static of(connection: mongoose.Connection, instance: string): RateUsage {
    return new RateUsage(
      connection.collection(RATE_USAGE_COLLECTION) as unknown as mongo.Collection<UsageDocument>,
      instance,
      () => connection.collection(MIGRATION_SETTINGS.changelogCollectionName).findOne({ fileName: MIGRATION }),
    );
  }

  /**
   * Whether the collection's migration is applied. Asked of the changelog, which the service may
   * read (listing collections it may not): an upsert into a missing collection would create it.
   */
  async migrated(): Promise<boolean> {
    return (await this.changelog()) !== null;
  }

  /**
   * Adds `admitted` (requests per identity since the last exchange) and reads back what the others
   * used of `serving` (the identities this instance holds buckets for), and how many instances
   * there are (this one included).
   */
  async exchange(
    admitted: ReadonlyMap<string, number>,
    serving: readonly string[],
    timeoutMs: number,
  ): Promise<{ usage: Map<string, Usage>; instances: number }> {
    const now = this.now();
    const minute = Math.floor(now / WINDOW_MS) * WINDOW_MS;
    const expiresAt = new Date(minute + 3 * WINDOW_MS);
    const writes: mongo.AnyBulkWriteOperation<UsageDocument>[] = [
      {
        updateOne: {
          filter: { _id: `instance:${this.instance}` },
          update: { $set: { at: new Date(now), expiresAt: new Date(now + 2 * WINDOW_MS) } },
          upsert: true,
        },
      },
    ];
    for (const [identity, count] of admitted) {
      writes.push({
        updateOne: {
          filter: { _id: `${identity}@${minute}` },
          update: { $inc: { n: count, [`by.${this.instance}`]: count }, $setOnInsert: { expiresAt } },
          upsert: true,
        },
      });
    }
    await this.usage.bulkWrite(writes, { ordered: false, maxTimeMS: timeoutMs });
    const ids = serving.flatMap((identity) => [`${identity}@${minute - WINDOW_MS}`, `${identity}@${minute}`]);
    const [documents, heartbeats] = await Promise.all([
      ids.length === 0 ? [] : this.usage.find({ _id: { $in: ids } }, { maxTimeMS: timeoutMs }).toArray(),
      this.usage.countDocuments(
        { _id: { $regex: /^instance:/ }, at: { $gt: new Date(now - INSTANCE_GONE_MS) } },
        { maxTimeMS: timeoutMs },
      ),
    ]);
    const usage = new Map<string, Usage>();
    const seen = new Set<string>();
    for (const document of documents) {
      const identity = document._id.slice(0, document._id.lastIndexOf('@'));
      const others = Object.entries(document.by ?? {}).filter(([instance]) => instance !== this.instance);
      const total = others.reduce((sum, [, count]) => sum + count, 0);
      const known = usage.get(identity) ?? { others: 0, peers: 0 };
      known.others += Math.max(0, total - (this.seen.get(document._id) ?? 0));
      known.peers = Math.max(known.peers, others.filter(([, count]) => count > 0).length);
      usage.set(identity, known);
      this.seen.set(document._id, total);
      seen.add(document._id);
    }
    // Only the two minutes read are kept: the older ones are done.
    for (const id of this.seen.keys()) if (!seen.has(id)) this.seen.delete(id);
    return { usage, instances: Math.max(1, heartbeats) };
  }
}
