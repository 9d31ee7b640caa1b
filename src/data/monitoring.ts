// What the MongoDB driver reports of its own work, kept as plain counts for /metrics to read when
// Prometheus scrapes: the duration of every command of the app's main client by command and
// collection, its failures by class, each client's pool (connections, checked out, waiting, the
// wait), server-selection failures, topology and primary changes; and the slow-operation log, a
// warning for each command over SLOW_OPERATION_MS naming its request (served-requests.ts), its
// collection and its query's shape with every value replaced by its type.
//
// Every command passes through here, and the benchmarks compare the service's CPU per request with
// the raw driver's: the handlers allocate nothing per command once each (command, collection) pair
// has been seen (a preallocated ring pairs a command's start with its end; label values are the
// interned strings of fixed lists, anything else "other"; a histogram is an array of counts). The
// rest is the driver's: with monitorCommands it builds an event object per command start and end,
// and for a cursor command (find, aggregate, getMore) it would decode the whole reply once more for
// the event, which is why the hot reads ask for raw documents (raw-reads.ts).
//
// The replies give documents returned (a cursor's batch, a write's n); documents examined are the
// server's to know (its profiler, or its own slow-query log, which names the client by appName).

import type { mongo } from 'mongoose';
import { API_KEYS_COLLECTION } from './api-keys.ts';
import { AUDIT_COLLECTION } from './audit.ts';
import { POSITIONS_COLLECTION } from './audit-stream.ts';
import { SECRETS_COLLECTION } from './cursor-keys.ts';
import { IDEMPOTENCY_COLLECTION } from './idempotency.ts';
import { MIGRATION_SETTINGS } from './migrations.ts';
import { RATE_USAGE_COLLECTION } from './rate-usage.ts';
import { ENTITIES } from '../domain/entities/index.ts';
import { failureKind } from './failures.ts';
import { requestServed } from './served-requests.ts';

/** The label of anything outside a fixed list, so that a label's values stay few whatever runs. */
export const OTHER = 'other';
/** The collection label of a command on no collection (a commit, a ping). */
export const NO_COLLECTION = 'none';

/** Commands with a label of their own; the rest are counted as "other". */
export const COMMANDS: readonly string[] = [
  'find',
  'getMore',
  'aggregate',
  'count',
  'distinct',
  'insert',
  'update',
  'delete',
  'findAndModify',
  'bulkWrite',
  'commitTransaction',
  'abortTransaction',
  'killCursors',
  'endSessions',
  'listCollections',
  'listIndexes',
  'createIndexes',
  'ping',
  'hello',
  'explain',
];

/** Collections with a label of their own: the entities' and the service's. */
export const COLLECTIONS: readonly string[] = [
  ...ENTITIES.map((entity) => entity.collection),
  AUDIT_COLLECTION,
  API_KEYS_COLLECTION,
  IDEMPOTENCY_COLLECTION,
  RATE_USAGE_COLLECTION,
  POSITIONS_COLLECTION,
  SECRETS_COLLECTION,
  MIGRATION_SETTINGS.changelogCollectionName,
];

/** Classes of command failures: failureKind's, with the refusals that are the request's told apart. */
export const FAILURE_CLASSES = [
  'transient',
  'unavailable',
  'query-timeout',
  'duplicate-key',
  'validation',
  'server',
  OTHER,
] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/** Upper bounds (seconds) of the command-duration buckets. */
export const COMMAND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds (seconds) of the pool-wait buckets: a checkout is usually immediate. */
export const POOL_WAIT_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5];

/** A histogram as counts per bucket (not cumulative; the last one is +Inf), their sum and count. */
export class Distribution {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += value;
    this.count++;
  }
}

/** One client's pool, summed over its servers. */
export class PoolStats {
  created = 0;
  closed = 0;
  checkOutsStarted = 0;
  checkedOut = 0;
  checkedIn = 0;
  /** Checkouts that failed, by the driver's reason: timeout (waitQueueTimeoutMS), connectionError, poolClosed. */
  readonly checkOutFailures: Record<string, number> = { timeout: 0, connectionError: 0, poolClosed: 0 };
  cleared = 0;
  readonly wait = new Distribution(POOL_WAIT_BUCKETS);

  /** Connections open (idle or in use). */
  get size(): number {
    return this.created - this.closed;
  }
  /** Connections an operation holds. */
  get inUse(): number {
    return this.checkedOut - this.checkedIn;
  }
  /** Operations waiting for a connection. */
  get waiting(): number {
    let failed = 0;
    for (const count of Object.values(this.checkOutFailures)) failed += count;
    return this.checkOutsStarted - this.checkedOut - failed;
  }
}

/** What the slow-operation log writes to: the app's logger. */
export interface SlowOperationLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface MonitoringOptions {
  /** SLOW_OPERATION_MS: commands that take at least this long are logged; 0: none. */
  slowOperationMs: number;
  log: SlowOperationLog;
}

/** A command in flight: what its end needs of its start. Reused, never reallocated. */
interface InFlight {
  id: number;
  command: string;
  collection: string;
  started: mongo.CommandStartedEvent | undefined;
}

/** Commands in flight at once that can be paired with their start (far more than any pool's size). */
const RING_SIZE = 4096;

const interned = (names: readonly string[]) => new Map(names.map((name) => [name, name]));
const KNOWN_COMMANDS = interned(COMMANDS);
const KNOWN_COLLECTIONS = interned(COLLECTIONS);

/** The collection a command names: a command's first member, or getMore's collection. */
function collectionNamed(command: mongo.Document, commandName: string): string | undefined {
  const named: unknown = commandName === 'getMore' ? command.collection : command[commandName];
  return typeof named === 'string' ? named : undefined;
}

/** The collection's label: its name when it is one of ours. */
function collectionOf(command: mongo.Document, commandName: string): string {
  const named = collectionNamed(command, commandName);
  return named === undefined ? NO_COLLECTION : (KNOWN_COLLECTIONS.get(named) ?? OTHER);
}

/** The class of a command failure (or of a write error in its reply), from a fixed list. */
export function failureClass(error: unknown): FailureClass {
  const kind = failureKind(error);
  if (kind !== 'other') return kind;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 11000) return 'duplicate-key';
  if (code === 121) return 'validation';
  return typeof code === 'number' ? 'server' : OTHER;
}

function isServerSelectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current.name === 'MongoServerSelectionError' || current.name === 'MongooseServerSelectionError') return true;
  }
  return false;
}

/** Members of a command that are the driver's bookkeeping, not the query: left out of its shape. */
const BOOKKEEPING = new Set([
  // The request's id, logged as requestId (served-requests.ts).
  'comment',
  'lsid',
  'txnNumber',
  '$clusterTime',
  '$db',
  '$readPreference',
  'readConcern',
  'writeConcern',
  'startTransaction',
  'autocommit',
  'apiVersion',
  'apiStrict',
  'apiDeprecationErrors',
  'recoveryToken',
]);
/** Members whose values say how, not what: kept as they are (they hold no document values). */
const VERBATIM = new Set(['sort', 'projection', 'hint', 'limit', 'skip', 'batchSize', 'maxTimeMS', 'ordered', 'new']);
/** Arrays longer than this show their first items' shapes and how many more there are. */
const SHAPE_ITEMS = 3;
const SHAPE_DEPTH = 8;

/** The type marker a value is replaced with in a shape. */
function marker(value: unknown): string {
  if (value === null) return '?null';
  if (typeof value !== 'object') return `?${typeof value}`;
  if (value instanceof Date) return '?date';
  const bsonType = (value as { _bsontype?: unknown })._bsontype;
  return typeof bsonType === 'string' ? `?${bsonType.toLowerCase()}` : '?object';
}

/** A value with every leaf replaced by its type: keys and operators stay, values do not. */
export function redactedShape(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Date || '_bsontype' in value)
    return marker(value);
  if (depth >= SHAPE_DEPTH) return '?…';
  if (Array.isArray(value)) {
    const shown = value.slice(0, SHAPE_ITEMS).map((item: unknown) => redactedShape(item, depth + 1));
    if (value.length > SHAPE_ITEMS) shown.push(`…${value.length - SHAPE_ITEMS} more`);
    return shown;
  }
  const shape: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value as Record<string, unknown>))
    shape[key] = redactedShape(member, depth + 1);
  return shape;
}

/** A command as the slow-operation log shows it: the query's shape, no value of any document. */
export function commandShape(command: mongo.Document, commandName: string): Record<string, unknown> {
  const shape: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(command)) {
    if (BOOKKEEPING.has(key)) continue;
    // The command's own member names its collection; getMore's cursor id is no document value.
    shape[key] = key === commandName || key === 'collection' || VERBATIM.has(key) ? value : redactedShape(value);
  }
  return shape;
}

/** Documents a command's reply says it returned or wrote, where it says so. */
function documentsReturned(reply: mongo.Document | undefined): number | undefined {
  const cursor = reply?.cursor as { firstBatch?: unknown[]; nextBatch?: unknown[] } | undefined;
  const batch = cursor?.firstBatch ?? cursor?.nextBatch;
  if (Array.isArray(batch)) return batch.length;
  if (typeof reply?.n === 'number') return reply.n;
  return undefined;
}

/** The driver's events of the app's clients, as counts, and the slow-operation log. */
export class DriverMonitor {
  /** Command durations (seconds) by command, then collection. */
  readonly commands = new Map<string, Map<string, Distribution>>();
  /** Command failures by command, then class. */
  readonly failures = new Map<string, Map<FailureClass, number>>();
  /** Commands logged as slow, by command. */
  readonly slow = new Map<string, number>();
  /** Pools by the client they belong to: main, audit, feed, keys. */
  readonly pools = new Map<string, PoolStats>();
  /** Operations that found no server to run on, and connection attempts that found none. */
  serverSelectionFailures = 0;
  /** Changes of the main client's view of the deployment (a server's state, a member added or gone). */
  topologyChanges = 0;
  /** Times the primary the main client knows became another server, or none. */
  primaryChanges = 0;
  /** The primary the main client knows (host:port), if any. */
  primary: string | undefined;
  private sawPrimary = false;
  private readonly watched = new WeakSet<mongo.MongoClient>();

  private readonly ring: InFlight[] = Array.from({ length: RING_SIZE }, () => ({
    id: -1,
    command: OTHER,
    collection: OTHER,
    started: undefined,
  }));

  constructor(private readonly options: MonitoringOptions) {}

  /**
   * Follows a client's pool (every client); with `commands` its commands (a client opened with
   * monitorCommands), with `topology` the deployment it sees (the main client).
   */
  watch(
    client: mongo.MongoClient,
    pool: string,
    { commands = false, topology = false }: { commands?: boolean; topology?: boolean } = {},
  ): void {
    // A client followed twice would count everything twice.
    if (this.watched.has(client)) return;
    this.watched.add(client);
    const stats = this.poolStats(pool);
    client.on('connectionCreated', () => {
      stats.created++;
    });
    client.on('connectionClosed', () => {
      stats.closed++;
    });
    client.on('connectionCheckOutStarted', () => {
      stats.checkOutsStarted++;
    });
    client.on('connectionCheckedOut', (event) => {
      stats.checkedOut++;
      stats.wait.observe(event.durationMS / 1000);
    });
    client.on('connectionCheckOutFailed', (event) => {
      stats.checkOutFailures[event.reason] = (stats.checkOutFailures[event.reason] ?? 0) + 1;
      stats.wait.observe(event.durationMS / 1000);
    });
    client.on('connectionCheckedIn', () => {
      stats.checkedIn++;
    });
    client.on('connectionPoolCleared', () => {
      stats.cleared++;
    });
    if (topology) client.on('topologyDescriptionChanged', (event) => this.topologyChanged(event.newDescription));
    if (!commands) return;
    client.on('commandStarted', (event) => this.started(event));
    client.on('commandSucceeded', (event) => this.ended(event, event.reply as mongo.Document | undefined, undefined));
    client.on('commandFailed', (event) => this.ended(event, undefined, event.failure));
  }

  /** An operation failed: counted when no server could be selected for it. */
  failed(error: unknown): void {
    if (isServerSelectionFailure(error)) this.serverSelectionFailures++;
  }

  private poolStats(pool: string): PoolStats {
    let stats = this.pools.get(pool);
    if (stats === undefined) this.pools.set(pool, (stats = new PoolStats()));
    return stats;
  }

  /** The ring's slot of a command (the driver numbers its messages in sequence). */
  private slot(requestId: number): InFlight {
    return this.ring[requestId & (RING_SIZE - 1)] as InFlight;
  }

  private started(event: mongo.CommandStartedEvent): void {
    const slot = this.slot(event.requestId);
    slot.id = event.requestId;
    slot.command = KNOWN_COMMANDS.get(event.commandName) ?? OTHER;
    slot.collection = collectionOf(event.command, event.commandName);
    slot.started = this.options.slowOperationMs > 0 ? event : undefined;
  }

  private ended(
    event: mongo.CommandSucceededEvent | mongo.CommandFailedEvent,
    reply: mongo.Document | undefined,
    failure: Error | undefined,
  ): void {
    const slot = this.slot(event.requestId);
    const paired = slot.id === event.requestId;
    const command = paired ? slot.command : (KNOWN_COMMANDS.get(event.commandName) ?? OTHER);
    const collection = paired ? slot.collection : OTHER;
    this.distribution(command, collection).observe(event.duration / 1000);
    // A write refused per document (a duplicate key, a validator) is a reply with ok: 1 and writeErrors.
    const writeError = (reply?.writeErrors as unknown[] | undefined)?.[0];
    if (failure !== undefined || writeError !== undefined) {
      let byClass = this.failures.get(command);
      if (byClass === undefined) this.failures.set(command, (byClass = new Map<FailureClass, number>()));
      const kind = failureClass(failure ?? writeError);
      byClass.set(kind, (byClass.get(kind) ?? 0) + 1);
    }
    const { slowOperationMs } = this.options;
    if (slowOperationMs > 0 && event.duration >= slowOperationMs) {
      this.slow.set(command, (this.slow.get(command) ?? 0) + 1);
      this.logSlow(event, paired ? slot : undefined, collection, reply, failure);
    }
    if (paired) {
      slot.id = -1;
      slot.started = undefined;
    }
  }

  private distribution(command: string, collection: string): Distribution {
    let byCollection = this.commands.get(command);
    if (byCollection === undefined) this.commands.set(command, (byCollection = new Map<string, Distribution>()));
    let distribution = byCollection.get(collection);
    if (distribution === undefined) byCollection.set(collection, (distribution = new Distribution(COMMAND_BUCKETS)));
    return distribution;
  }

  private logSlow(
    event: mongo.CommandSucceededEvent | mongo.CommandFailedEvent,
    slot: InFlight | undefined,
    collection: string,
    reply: mongo.Document | undefined,
    failure: Error | undefined,
  ): void {
    const returned = documentsReturned(reply);
    const started = slot?.started;
    this.options.log.warn(
      {
        requestId: started && requestServed(started.command),
        command: event.commandName,
        // A log line is not a label: the collection's own name, whichever it is.
        collection: (started && collectionNamed(started.command, event.commandName)) ?? collection,
        db: event.databaseName,
        durationMs: Math.round(event.duration * 10) / 10,
        ...(started !== undefined && { shape: commandShape(started.command, event.commandName) }),
        ...(returned !== undefined && { documentsReturned: returned }),
        ...(failure !== undefined && { failed: failureClass(failure) }),
      },
      'slow MongoDB operation',
    );
  }

  private topologyChanged(description: mongo.TopologyDescription): void {
    this.topologyChanges++;
    let primary: string | undefined;
    for (const [address, server] of description.servers) {
      if (server.type === 'RSPrimary' || server.type === 'Standalone' || server.type === 'Mongos') primary = address;
    }
    if (primary === this.primary) return;
    // Finding the first primary is no change: the client has just learnt the deployment.
    if (this.sawPrimary) this.primaryChanges++;
    this.sawPrimary ||= primary !== undefined;
    this.primary = primary;
  }
}
