// The change feed over HTTP: GET /v1/<collection>/changes (that collection's read scope; its
// list's filters and `fields`) and GET /v1/changes?collections=... (every named collection's read
// scope) serve the instance's one change stream (src/data/change-feed.ts) as server-sent events.
// A client resumes where it left off with Last-Event-ID (what EventSource sends) or `?after=`:
// positions are MongoDB's resume tokens, signed like list cursors, so any instance continues a
// stream another one served, without a gap or a repeat.
//
// The frames are written here, straight to the socket, rather than by @fastify/sse: its frames
// always carry data (the first frame and the heartbeat here carry only an id), every write of its
// send() awaits the socket's drain with listeners of its own, which the synchronous fan-out cannot
// await (a stream here pauses its subscription instead), and its own heartbeat carries no
// position. What it would have kept is kept here: the headers set on the reply (X-Request-Id,
// RateLimit-*, helmet's) go out with the stream, and Fastify's onResponse hooks (metrics, the
// access log line) run when the service ends the stream (not when the client leaves: Fastify runs
// them on the response's finish, which a connection closed by the client never reaches).
//
// A stream is paced by its client: once it leaves FEED_CLIENT_BUFFER_BYTES unread, the stream
// tells its subscription to offer no more, and resumes it when the connection has drained. So a
// client that reads gets any replay or catch-up whole, however large, at its own speed; what one
// client holds in memory is its connection's buffer (that mark, plus a frame); what a slow one is
// behind by waits in the feed's ring, shared by all. One that stays behind longer than the ring
// holds is closed (slow-consumer) and resumes from its last event, from MongoDB's history: a slow
// reader never holds the others back nor grows memory.
//
// A stream is not a request that should end soon: it takes no load-shedding slot, nothing bounds
// it in time, and its lifetime is not counted as a request's latency. What bounds it instead:
// FEED_MAX_STREAMS per instance (503) and FEED_MAX_STREAMS_PER_KEY (429); its key is checked again
// through the authentication's cached lookup, so a revoked key's streams close within about
// AUTH_CACHE_TTL_MS (key-revoked); and the app's close (SIGTERM) ends every stream at once
// (shutdown) instead of waiting for SHUTDOWN_GRACE_MS.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { mongo } from 'mongoose';
// CommonJS: ESM sees its module object, which holds the matcher (default) and its operations.
import sift from 'sift';
import { Type, type TObject, type TSchema } from 'typebox';
import { DATA_RESOURCES, missingScopes, readScope, type Principal, type Scope } from '../../domain/access.ts';
import { ENTITIES } from '../../domain/entities/index.ts';
import type { Entity } from '../../domain/entity.ts';
import { ObjectIdString } from '../../domain/types.ts';
import {
  FeedPositionInvalid,
  FeedPositionLost,
  decodePosition,
  encodePosition,
  type Change,
  type ChangeType,
  type EndReason,
  type FeedSubscription,
} from '../../data/change-feed.ts';
import { Deadline, DeadlineExceeded } from '../../data/deadline.ts';
import type { StoredDocument } from '../../data/documents.ts';
import { compileFilter, type MongoFilter } from '../../data/query.ts';
import { AppError, type FieldError } from '../../errors.ts';
import { authorize } from '../plugins/authentication.ts';
import { describeFilters, filterClauses, prepareListQuery, type ListQuery } from '../lists.ts';
import { CONTROL_PARAMS, LIST_MAX_FILTERS, documentSchemas } from '../schemas/documents.ts';
import { kindOf, problemKinds, problemResponses, validationKind } from '../schemas/problem.ts';

export interface ChangeRoutesOptions {
  /** FEED_MAX_STREAMS. */
  maxStreams: number;
  /** FEED_MAX_STREAMS_PER_KEY. */
  maxStreamsPerKey: number;
  /** FEED_HEARTBEAT_MS. */
  heartbeatMs: number;
  /** FEED_CLIENT_BUFFER_BYTES: past it a stream waits for its connection to drain. */
  clientBufferBytes: number;
  /** FEED_RETRY_MS. */
  retryMs: number;
  /** AUTH_CACHE_TTL_MS: how stale the key lookup a stream checks its key with may be. */
  authCacheTtlMs: number;
  /** RETRY_AFTER_SECONDS, on the 503 and 429 answers. */
  retryAfterSeconds: number;
}

/** Why the service closed a stream, as its last frame says; `disconnected` (the client left) has no frame. */
export type CloseReason = 'shutdown' | 'slow-consumer' | 'key-revoked' | 'feed-failed';
const CLOSE_REASONS: readonly CloseReason[] = ['shutdown', 'slow-consumer', 'key-revoked', 'feed-failed'];
const CHANGE_TYPES: readonly ChangeType[] = ['insert', 'update', 'replace', 'delete'];
/** Why a stream closes when the feed ends its subscription. */
const END_REASONS: Record<EndReason, CloseReason> = {
  stopped: 'shutdown',
  failed: 'feed-failed',
  // Paused longer than the ring (or a catch-up) waits: it resumes from its position, from MongoDB.
  behind: 'slow-consumer',
};

const EVENT_STREAM = 'text/event-stream';
const STREAM_HEADERS = { 'content-type': EVENT_STREAM, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

/** How long a closed stream's last frames may take to leave before its connection is cut: a slow reader may catch up. */
const SLOW_CONSUMER_LINGER_MS = 30_000;
/** The same at shutdown, when the process is waiting for its connections to end. */
const SHUTDOWN_LINGER_MS = 500;
/** A key is checked again four times per cache lifetime, so a revocation shows soon after the cache lets it. */
const RECHECKS_PER_TTL = 4;
/** With no cache (AUTH_CACHE_TTL_MS=0) each check is a query: no more often than this per stream. */
const MIN_RECHECK_MS = 250;

const EXAMPLE_ID = '6650f0c2a1b2c3d4e5f60718';
const EXAMPLE_TIME = '2026-11-25T09:30:00.000Z';
/** A position as the service writes them, for the examples (signed with a key of zeros). */
const EXAMPLE_POSITION = encodePosition(Buffer.alloc(32), {
  _data: '82692A4F1C000000022B042C0100296E5A1004A1B2C3D4E5F60718A1B2C3D4E5F6071846645F6964006466',
});

// --- positions -----------------------------------------------------------------------------

/** Where a client's position came from, for the problem that points at it. */
interface GivenPosition {
  text: string;
  at: FieldError;
}

/** Last-Event-ID (what EventSource sends when it reconnects) wins over ?after=. */
function givenPosition(request: FastifyRequest, after: unknown): GivenPosition | undefined {
  const header = request.headers['last-event-id'];
  if (typeof header === 'string' && header !== '') return { text: header, at: givenAt('headers', '/last-event-id') };
  return typeof after !== 'string' ? undefined : { text: after, at: givenAt('query', '/after') };
}

const givenAt = (part: string, pointer: string): FieldError => ({
  in: part,
  pointer,
  message: 'is not a position of this feed',
});

const invalidPosition = (at: FieldError) =>
  new AppError(400, 'invalid-position', 'Invalid Position', {
    detail:
      'The position was not given out by this feed, or was altered: resume with the id of an event this service ' +
      'sent, or open the feed without a position.',
    extensions: { errors: [at] },
  });

const positionExpired = (at: FieldError, collections: readonly string[]) =>
  new AppError(410, 'position-expired', 'Position Expired', {
    detail:
      "The position is older than MongoDB's history of changes: what changed since cannot be replayed. " +
      'To resynchronise: open the feed again without a position (it starts from now), list ' +
      `${collections.length > 1 ? 'the collections' : 'the collection'} ` +
      `(${collections.map((collection) => `GET /v1/${collection}?sort=updatedAt`).join(', ')}), and apply the ` +
      "feed's events on top, keeping the higher version of each document.",
    extensions: { errors: [{ ...at, message: 'is older than the history of changes' }] },
  });

/** The text of positions, for the last token asked: a change goes to every stream, signed once. */
function positionWriter(key: Buffer): (token: mongo.ResumeToken) => string {
  let last = { data: undefined as unknown, text: '' };
  return (token) => {
    const data = (token as { _data?: unknown })._data;
    if (last.data !== data) last = { data, text: encodePosition(key, token) };
    return last.text;
  };
}

// --- which changes a stream gets, and how -----------------------------------------------------

/**
 * A filter compiled for the lists, matched against documents in memory by sift (the MongoDB
 * query matcher Mongoose uses). A collection with a collation (customers: case-insensitive)
 * compares strings as MongoDB does there, with the same collation.
 */
function matcherOf(entity: Entity, filter: MongoFilter): (document: StoredDocument) => boolean {
  if (entity.collation === undefined) return sift.default(filter);
  const { createEqualsOperation, $gt, $gte, $lt, $lte } = sift;
  const { locale, strength } = entity.collation;
  const collator = new Intl.Collator(locale, {
    sensitivity: strength === 1 ? 'base' : strength === 2 ? 'accent' : 'variant',
  });
  type Creator = typeof $gt;
  const ordered =
    (operation: Creator, holds: (order: number) => boolean): Creator =>
    (params, owner, options, name) =>
      typeof params === 'string'
        ? createEqualsOperation(
            (value: unknown) => typeof value === 'string' && holds(collator.compare(value, params)),
            owner,
            options,
          )
        : operation(params, owner, options, name);
  return sift.default(filter, {
    // Filter values are scalars (compileFilter refuses anything else): equal as MongoDB compares them.
    compare: (a: unknown, b: unknown) =>
      typeof a === 'string' && typeof b === 'string'
        ? collator.compare(a, b) === 0
        : a === b || (a == null && b == null),
    operations: {
      $gt: ordered($gt, (order) => order > 0),
      $gte: ordered($gte, (order) => order >= 0),
      $lt: ordered($lt, (order) => order < 0),
      $lte: ordered($lte, (order) => order <= 0),
    },
  });
}

/**
 * Whether a change concerns a filtered stream: the document matched before the change or matches
 * after it, so a document leaving the filter is reported too. A missing image (MongoDB did not keep
 * it) cannot rule a change out: an update or delete without it is reported.
 */
function concerns(change: Change, matches: (document: StoredDocument) => boolean): boolean {
  const { before, after, type } = change;
  const afterMatches = after === undefined ? type === 'update' || type === 'replace' : matches(after);
  return afterMatches || (before === undefined ? type !== 'insert' : matches(before));
}

/** A document's JSON as the collection's GET (or, with fields, its list) writes it. */
type Serializer = (resource: Record<string, unknown>) => string;

/** What a stream wants: its collections, its filter, its fields. */
interface Interest {
  collections: readonly string[];
  /** The read scopes it was opened with, checked again with its key. */
  scopes: readonly Scope[];
  /** Whether a change concerns the stream (its filters); none: every change does. */
  filter?: (change: Change) => boolean;
  /** `fields=`: the resource members besides id and version. */
  fields?: readonly string[];
}

/**
 * Writes change frames, each once per change and projection however many streams it goes to
 * (a change reaches every stream in one synchronous pass), with the resource exactly as GET
 * /v1/<collection>/<id> answers it: the repository's view, written by the route schemas' serializer.
 */
class Frames {
  private readonly written = new WeakMap<Change, Map<string, string>>();
  private readonly serializers = new Map<string, Serializer>();

  constructor(
    private readonly app: FastifyInstance,
    readonly position: (token: mongo.ResumeToken) => string,
  ) {}

  /** Compiles the serializers a stream needs, through a reply of the routes (Fastify caches them per route). */
  prepare(reply: FastifyReply, collections: readonly string[], fields: boolean): void {
    for (const collection of collections) {
      const name = schemaNameOf(collection, fields);
      if (!this.serializers.has(name)) this.serializers.set(name, reply.compileSerializationSchema({ $ref: name }));
    }
  }

  of(change: Change, fields: readonly string[] | undefined): string {
    const projection = fields === undefined ? '' : fields.join(',');
    let byProjection = this.written.get(change);
    if (byProjection === undefined) this.written.set(change, (byProjection = new Map<string, string>()));
    let frame = byProjection.get(projection);
    if (frame === undefined) {
      frame = this.frameOf(change, fields);
      byProjection.set(projection, frame);
    }
    return frame;
  }

  private frameOf(change: Change, fields: readonly string[] | undefined): string {
    const document = change.after === undefined ? undefined : this.documentOf(change.collection, change.after, fields);
    // Written member by member, in this order: a client may read id, version and time without parsing the document.
    const data =
      `{"collection":${JSON.stringify(change.collection)},"id":${JSON.stringify(change.id)}` +
      (change.version === undefined ? '' : `,"version":${change.version}`) +
      `,"operationTime":"${change.operationTime.toISOString()}"` +
      (document === undefined ? '' : `,"document":${document}`) +
      '}';
    return `id: ${this.position(change.token)}\nevent: ${change.type}\ndata: ${data}\n\n`;
  }

  private documentOf(collection: string, stored: StoredDocument, fields: readonly string[] | undefined): string {
    const resource = this.app.stores.repositoryOf(collection).toResource(stored);
    const serializer = this.serializers.get(schemaNameOf(collection, fields !== undefined));
    if (serializer === undefined) throw new Error(`no serializer prepared for ${collection}`);
    if (fields === undefined) return serializer(resource);
    const picked: Record<string, unknown> = { id: resource.id, version: resource.version };
    for (const field of fields) if (field in resource) picked[field] = resource[field];
    return serializer(picked);
  }
}

const entityOf = (collection: string): Entity => {
  const entity = ENTITIES.find((candidate) => candidate.collection === collection);
  if (entity === undefined) throw new Error(`no entity of a collection named ${collection}`);
  return entity;
};

/** The component a document is written with: the resource whole, or its list item's schema with `fields`. */
const schemaNameOf = (collection: string, fields: boolean) =>
  `${entityOf(collection).schemaName}${fields ? 'Fields' : ''}`;

// --- streams -------------------------------------------------------------------------------

/** The streams open on this instance, counted per key for the caps. */
class Streams {
  readonly open = new Set<FeedStream>();
  private readonly perKey = new Map<string, number>();
  /** Places taken by streams still subscribing. */
  private reserved = 0;

  constructor(private readonly options: ChangeRoutesOptions) {}

  /** Takes a place for a new stream of `keyId`, or answers why not. */
  reserve(keyId: string): void {
    const { maxStreams, maxStreamsPerKey, retryAfterSeconds } = this.options;
    const retryAfter = { 'retry-after': String(retryAfterSeconds) };
    if (this.open.size + this.reserved >= maxStreams) {
      throw new AppError(503, 'overloaded', 'Service Unavailable', {
        detail: `${maxStreams} change-feed streams are open on this instance (FEED_MAX_STREAMS); retry shortly.`,
        headers: retryAfter,
      });
    }
    const held = this.perKey.get(keyId) ?? 0;
    if (held >= maxStreamsPerKey) {
      throw new AppError(429, 'too-many-streams', 'Too Many Requests', {
        detail:
          `This API key holds ${held} change-feed streams on this instance (FEED_MAX_STREAMS_PER_KEY); ` +
          'close one before opening another.',
        headers: retryAfter,
      });
    }
    this.perKey.set(keyId, held + 1);
    this.reserved++;
  }

  /** A place taken by reserve() that no stream took after all. */
  cancel(keyId: string): void {
    this.reserved--;
    this.forget(keyId);
  }

  /** The stream takes the place reserve() made. */
  add(stream: FeedStream): void {
    this.reserved--;
    this.open.add(stream);
  }

  remove(stream: FeedStream, keyId: string): void {
    if (this.open.delete(stream)) this.forget(keyId);
  }

  private forget(keyId: string): void {
    const held = (this.perKey.get(keyId) ?? 1) - 1;
    if (held > 0) this.perKey.set(keyId, held);
    else this.perKey.delete(keyId);
  }
}

interface StreamContext {
  app: FastifyInstance;
  request: FastifyRequest;
  reply: FastifyReply;
  principal: Principal;
  interest: Interest;
  frames: Frames;
  streams: Streams;
  options: ChangeRoutesOptions;
}

/**
 * One client's stream: the subscription's changes written as frames as they come, as fast as the
 * client reads them, a heartbeat carrying its position, its key checked again, and a last frame
 * saying why it ended.
 */
class FeedStream {
  private subscription: FeedSubscription | undefined;
  private closed: CloseReason | 'disconnected' | undefined;
  /** Why the feed ended the subscription before the stream began: it begins, then ends so. */
  private endedEarly: CloseReason | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private checking = false;
  /** The connection holds more than clientBufferBytes: the subscription is paused until it drains. */
  private draining = false;
  /** Settles when the response is over: its last frame handed to the connection, or the connection gone. */
  readonly ended: Promise<void>;

  constructor(private readonly context: StreamContext) {
    const raw = context.reply.raw;
    this.ended = new Promise((resolve) => {
      raw.once('finish', resolve);
      raw.once('close', resolve);
    });
  }

  /** The subscription's onChange: synchronous, in order, each change once; false: offer no more until it drained. */
  change(change: Change): boolean {
    if (this.closed !== undefined || this.subscription === undefined) return true;
    const { interest, frames, app } = this.context;
    if (interest.filter !== undefined && !interest.filter(change)) return true;
    const more = this.write(frames.of(change, interest.fields));
    app.feedMetrics.written(change.collection, change.type, (Date.now() - change.operationTime.getTime()) / 1000);
    return more;
  }

  /**
   * Writes a frame; false once the connection holds more than clientBufferBytes, and then the
   * subscription is resumed when it has drained. (The mark is never below the connection's own
   * high-water mark: only past that does a write answer false, and 'drain' follow.)
   */
  private write(frame: string): boolean {
    const raw = this.context.reply.raw;
    if (raw.write(frame) || raw.writableLength <= this.context.options.clientBufferBytes) return true;
    if (!this.draining) {
      this.draining = true;
      raw.once('drain', this.drained);
    }
    return false;
  }

  private readonly drained = () => {
    this.draining = false;
    this.subscription?.resume();
  };

  /**
   * Answers 200 and writes the first frame: the reconnection delay and the start position. The
   * subscription delivers nothing before the macrotask after it was handed out, so this comes first.
   */
  start(subscription: FeedSubscription): void {
    const { reply, streams, frames, options, request } = this.context;
    this.subscription = subscription;
    streams.add(this);
    this.context.app.feedMetrics.opened(request);
    const raw = reply.raw;
    // Fastify leaves the answer to the stream: the reply's headers go out with it, and its onResponse
    // hooks (metrics, the access log) still run when the response ends.
    reply.hijack();
    for (const [name, value] of Object.entries({ ...reply.getHeaders(), ...STREAM_HEADERS })) {
      if (value !== undefined) raw.setHeader(name, value);
    }
    raw.writeHead(200);
    raw.write(`retry: ${options.retryMs}\nid: ${frames.position(subscription.position)}\n: connected\n\n`);
    raw.once('close', () => this.close('disconnected'));
    if (this.endedEarly !== undefined) {
      this.close(this.endedEarly);
      return;
    }
    // A client with frames still unread needs no heartbeat: the connection is not idle.
    this.every(options.heartbeatMs, () => {
      if (!this.draining) this.write(`: heartbeat\nid: ${frames.position(subscription.position)}\n\n`);
    });
    const recheckMs = Math.max(MIN_RECHECK_MS, options.authCacheTtlMs / RECHECKS_PER_TTL);
    this.every(recheckMs, () => void this.recheck(request, recheckMs));
  }

  /** Ends the stream: a last frame saying why (unless the client left), then the response. */
  close(reason: CloseReason | 'disconnected'): void {
    if (this.closed !== undefined) return;
    const subscription = this.subscription;
    if (subscription === undefined) {
      if (reason !== 'disconnected') this.endedEarly ??= reason;
      return;
    }
    this.closed = reason;
    for (const timer of this.timers) clearInterval(timer);
    subscription.close();
    const { streams, principal, app } = this.context;
    streams.remove(this, principal.keyId);
    app.feedMetrics.closed(reason);
    if (reason !== 'disconnected') this.finish(reason, subscription);
  }

  private finish(reason: CloseReason, subscription: FeedSubscription): void {
    const raw = this.context.reply.raw;
    if (raw.destroyed) return;
    const lastEventId = this.context.frames.position(subscription.position);
    raw.end(`event: close\ndata: ${JSON.stringify({ reason, lastEventId })}\n\n`);
    // A client that stops reading would hold its connection (and its unread frames) forever.
    const linger = setTimeout(
      () => raw.destroy(),
      reason === 'shutdown' ? SHUTDOWN_LINGER_MS : SLOW_CONSUMER_LINGER_MS,
    ).unref();
    raw.once('close', () => clearTimeout(linger));
  }

  private every(ms: number, tick: () => void): void {
    this.timers.push(setInterval(tick, ms).unref());
  }

  /** The key looked up again (the authentication's cache): revoked, expired or stripped of a scope, the stream ends. */
  private async recheck(request: FastifyRequest, withinMs: number): Promise<void> {
    if (this.checking || this.closed !== undefined) return;
    this.checking = true;
    try {
      const principal = await this.context.app.authenticate(request, Deadline.after(withinMs));
      if (missingScopes(principal, this.context.interest.scopes).length > 0) this.close('key-revoked');
    } catch (error) {
      if (error instanceof AppError && error.status === 401) this.close('key-revoked');
      // Otherwise MongoDB did not answer in time: the key stays trusted until a lookup says otherwise.
    } finally {
      this.checking = false;
    }
  }
}

// --- the routes ----------------------------------------------------------------------------

/** The feed's query: the list's filters and `fields`, and `after`; nothing that pages or sorts. */
function feedQuery(listQuery: TObject): TObject {
  const properties: Record<string, TSchema> = {};
  for (const [name, schema] of Object.entries(listQuery.properties)) {
    if (name === 'fields' || !(CONTROL_PARAMS as readonly string[]).includes(name)) properties[name] = schema;
  }
  properties.after = Type.Optional(AfterParameter);
  return Type.Object(properties, { additionalProperties: false });
}

const AfterParameter = Type.String({
  minLength: 1,
  maxLength: 1024,
  description:
    'Where to continue: the `id` of the last event received (a position). Absent: from now. ' +
    'The Last-Event-ID header, when sent, wins.',
});

const FeedHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      maxLength: 1024,
      description: 'What EventSource sends when it reconnects: the `id` of the last event received. Wins over `after`.',
    }),
  ),
});

/** The preValidation of the per-collection feeds: the lists' (filter count, comma lists), `after` aside. */
async function prepareFeedQuery(request: { query: ListQuery }): Promise<void> {
  const { after, ...query } = request.query;
  await prepareListQuery({ query });
  request.query = after === undefined ? query : { ...query, after };
}

/** The data of one collection's change events, documented as a component. */
function changeSchema(entity: Entity): TSchema {
  const { schemaName, collection, singular } = entity;
  const resource = (documentSchemas(entity).shared as { $id?: string; examples?: unknown[] }[]).find(
    (schema) => schema.$id === schemaName,
  );
  return {
    ...Type.Object(
      {
        collection: Type.Unsafe<string>({ type: 'string', enum: [collection] }),
        id: ObjectIdString({ description: `The ${singular}'s id.` }),
        version: Type.Optional(
          Type.Integer({
            minimum: 1,
            description: `The ${singular}'s version after the change; for a delete, the version deleted (when MongoDB kept it).`,
          }),
        ),
        operationTime: Type.String({ format: 'date-time', description: 'When MongoDB applied the change.' }),
        document: Type.Optional(
          Type.Unsafe<Record<string, unknown>>({
            ...Type.Ref(`${schemaName}Fields`),
            description:
              `The ${singular} after the change, as GET /v1/${collection}/{id} answers it (with \`fields\`, ` +
              'those fields, id and version); absent for a delete.',
          }),
        ),
      },
      { additionalProperties: false },
    ),
    $id: `${schemaName}Change`,
    description: `The data of a change event of ${collection}: the JSON of one \`data:\` line.`,
    examples: [
      { collection, id: EXAMPLE_ID, version: 3, operationTime: EXAMPLE_TIME, document: resource?.examples?.[0] },
    ],
  };
}

const FeedCloseSchema = {
  ...Type.Object(
    {
      reason: Type.Unsafe<CloseReason>({
        type: 'string',
        enum: [...CLOSE_REASONS],
        description:
          'shutdown: the instance is stopping; slow-consumer: the client read slower than changes came for longer ' +
          'than the instance keeps them in memory (FEED_REPLAY_EVENTS), and resumes from MongoDB; key-revoked: the ' +
          "key was revoked, expired or lost a scope; feed-failed: the service's change stream could not go on " +
          'without a gap.',
      }),
      lastEventId: Type.String({ description: 'Where to resume: every change up to it was sent (or filtered out).' }),
    },
    { additionalProperties: false },
  ),
  $id: 'FeedClose',
  description: 'The data of the last event of a stream the service closes (`event: close`).',
  examples: [{ reason: 'shutdown', lastEventId: EXAMPLE_POSITION }],
};

const WIRE_EXAMPLE = [
  'retry: 2000',
  'id: <position>',
  ': connected',
  '',
  'id: <position>',
  'event: replace',
  'data: {"collection":"products","id":"6650f0c2a1b2c3d4e5f60718","version":4,"operationTime":"...","document":{...}}',
  '',
  ': heartbeat',
  'id: <position>',
  '',
  'event: close',
  'data: {"reason":"shutdown","lastEventId":"<position>"}',
]
  .map((line) => `    ${line}`)
  .join('\n');

const FEED_DESCRIPTION =
  'Server-sent events (text/event-stream), as EventSource reads them:\n\n' +
  `${WIRE_EXAMPLE}\n\n` +
  'The first event carries the reconnection delay (FEED_RETRY_MS) and the start position. Each change is an ' +
  'event named as MongoDB names the write (insert; replace, which merge patches are too; update, a write of ' +
  'some fields; delete), its `id` the position after it, its `document` the resource as GET answers it after ' +
  'the change (none for a delete). A heartbeat comes ' +
  'every FEED_HEARTBEAT_MS with the position the stream has reached. When the service closes a stream, its ' +
  'last event (`close`) says why and where to resume. Reconnect with Last-Event-ID (EventSource does) or ' +
  '`?after=`: no change is lost or repeated, from this instance or another. A position older than the history ' +
  'MongoDB keeps gets 410 position-expired, whose detail says how to resynchronise.';

const streamKinds = (retryAfterSeconds: number) => ({
  ...problemKinds(400, 'The query or the position is not one this feed answers:', [
    validationKind('a parameter is unknown (q, sort, limit, cursor and count are not taken) or its value invalid.'),
    kindOf(invalidPosition(givenAt('query', '/after')), 'the position was not given out by this feed, or was altered.'),
  ]),
  ...problemKinds(410, 'Gone:', [
    kindOf(
      positionExpired(givenAt('headers', '/last-event-id'), ['products']),
      "the position is older than MongoDB's history of changes; `detail` says how to resynchronise.",
    ),
  ]),
  ...problemKinds(429, 'Too many requests, or streams:', [
    kindOf(
      new AppError(429, 'rate-limited', 'Too Many Requests', {
        detail: 'Rate limit of 1200 requests per minute exceeded; retry in 1 s.',
      }),
      'the rate limit of the key (or the client IP) is used up; retry after Retry-After.',
    ),
    kindOf(
      new AppError(429, 'too-many-streams', 'Too Many Requests', {
        detail:
          'This API key holds 100 change-feed streams on this instance (FEED_MAX_STREAMS_PER_KEY); close one ' +
          'before opening another.',
      }),
      'the key holds FEED_MAX_STREAMS_PER_KEY streams on this instance already.',
    ),
  ]),
  ...problemKinds(503, 'The feed cannot serve a stream now; retry after Retry-After:', [
    kindOf(
      notRunning(retryAfterSeconds),
      'the change feed has not started on this instance yet (MongoDB unreachable, or starting).',
    ),
    kindOf(
      new AppError(503, 'overloaded', 'Service Unavailable', {
        detail: '2000 change-feed streams are open on this instance (FEED_MAX_STREAMS); retry shortly.',
      }),
      'FEED_MAX_STREAMS streams are open on this instance.',
    ),
  ]),
  ...problemResponses(500),
});

const notRunning = (retryAfterSeconds: number) =>
  AppError.unavailable(
    retryAfterSeconds,
    'The change feed is not running on this instance yet (MongoDB unreachable, or starting); retry shortly.',
  );

/** The 200 answer of a feed of these collections: its headers and its events, documented frame by frame. */
function streamResponse(entities: readonly [Entity, ...Entity[]]) {
  const changeExample = { collection: entities[0].collection, id: EXAMPLE_ID, version: 4, operationTime: EXAMPLE_TIME };
  return {
    description: 'The stream; it ends only when the client or the service closes it.',
    headers: {
      'cache-control': { type: 'string', description: 'no-cache.' },
      'x-accel-buffering': { type: 'string', description: 'no.' },
    },
    content: {
      [EVENT_STREAM]: {
        schema: {
          type: 'array',
          description:
            'The stream read as events, one object per event, as OpenAPI 3.2 describes text/event-stream ' +
            '(`data` shown parsed: on the wire it is one line of JSON).',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string', description: 'A position: where a client resumes after this event.' },
              event: { type: 'string', enum: [...CHANGE_TYPES, 'close'] },
              data: {
                anyOf: [...entities.map((entity) => Type.Ref(`${entity.schemaName}Change`)), Type.Ref('FeedClose')],
              },
              retry: { type: 'integer', minimum: 0, description: 'Milliseconds to wait before reconnecting.' },
              comment: { type: 'string', enum: ['connected', 'heartbeat'] },
            },
            additionalProperties: false,
          },
        },
        example: [
          { retry: 2000, id: EXAMPLE_POSITION, comment: 'connected' },
          { id: EXAMPLE_POSITION, event: 'replace', data: changeExample },
          { comment: 'heartbeat', id: EXAMPLE_POSITION },
          { event: 'close', data: { reason: 'shutdown', lastEventId: EXAMPLE_POSITION } },
        ],
      },
    },
  };
}

const changeRoutes: FastifyPluginAsyncTypebox<ChangeRoutesOptions> = async (app, options) => {
  for (const entity of ENTITIES) app.addSchema(changeSchema(entity));
  app.addSchema(FeedCloseSchema);
  const streams = new Streams(options);
  let frames: Frames | undefined;

  app.addHook('preClose', async () => {
    const open = [...streams.open];
    for (const stream of open) stream.close('shutdown');
    // Done before the server closes: the connections are idle by then, and close at once.
    await Promise.all(open.map((stream) => stream.ended));
  });

  /** Opens a stream of `interest` for the request, or answers why not. */
  async function serve(request: FastifyRequest, reply: FastifyReply, interest: Interest, after: unknown) {
    const feed = app.stores.feed;
    if (feed === undefined) throw notRunning(options.retryAfterSeconds);
    const key = await app.stores.positionKey(request.deadline);
    frames ??= new Frames(app, positionWriter(key));
    const given = givenPosition(request, after);
    const from = given === undefined ? undefined : decodePosition(key, given.text);
    if (given !== undefined && from === undefined) throw invalidPosition(given.at);
    // HEAD: the stream's headers, and no stream.
    if (request.method === 'HEAD') return reply.code(200).headers(STREAM_HEADERS).send('');

    const principal = request.principal as Principal;
    frames.prepare(reply, interest.collections, interest.fields !== undefined);
    streams.reserve(principal.keyId);
    const stream = new FeedStream({ app, request, reply, principal, interest, frames, streams, options });
    const subscribing = feed.subscribe({
      collections: interest.collections,
      ...(from !== undefined && { after: from }),
      onChange: (change) => stream.change(change),
      onEnd: (reason) => stream.close(END_REASONS[reason]),
    });
    let subscription: FeedSubscription;
    try {
      // A catch-up may wait for its turn: bounded by the request's deadline like any wait.
      subscription = await request.deadline.race(subscribing);
    } catch (error) {
      streams.cancel(principal.keyId);
      if (error instanceof DeadlineExceeded)
        subscribing.then(
          (late) => late.close(),
          () => undefined,
        );
      if (error instanceof FeedPositionLost && given !== undefined)
        throw positionExpired(given.at, interest.collections);
      if (error instanceof FeedPositionInvalid && given !== undefined) throw invalidPosition(given.at);
      throw error;
    }
    if (request.socket.destroyed) {
      // The client left while its catch-up waited.
      subscription.close();
      streams.cancel(principal.keyId);
      reply.hijack();
      reply.raw.destroy();
      return reply;
    }
    stream.start(subscription);
    return reply;
  }

  for (const entity of ENTITIES) {
    const schemas = documentSchemas(entity);
    const collection = entity.collection;
    app.get(
      `/${collection}/changes`,
      {
        config: { scopes: [readScope(collection)] },
        schema: {
          tags: [collection],
          operationId: `follow${entity.schemaName}Changes`,
          summary: `Follow the changes to ${collection}`,
          description:
            `${FEED_DESCRIPTION}\n\n` +
            describeFilters(entity) +
            `Filters and \`fields\` are those of GET /v1/${collection} (at most ${LIST_MAX_FILTERS} filters). ` +
            'A change is sent when the document matched the filters before it or matches them after it (a ' +
            'document leaving them is reported), and a delete whose document MongoDB did not keep is sent to ' +
            'every filtered stream.',
          querystring: feedQuery(schemas.query),
          headers: FeedHeaders,
          response: { 200: streamResponse([entity]), ...streamKinds(options.retryAfterSeconds) },
        },
        preValidation: prepareFeedQuery,
      },
      async (request, reply) => {
        const query = request.query;
        const { after, ...filters } = query;
        const clauses = filterClauses(filters);
        const test = clauses.length === 0 ? undefined : matcherOf(entity, compileFilter(entity, clauses));
        return serve(
          request,
          reply,
          {
            collections: [collection],
            scopes: [readScope(collection)],
            ...(test !== undefined && { filter: (change: Change) => concerns(change, test) }),
            ...(typeof query.fields === 'string' && { fields: query.fields.split(',') }),
          },
          after,
        );
      },
    );
  }

  const names = DATA_RESOURCES.join('|');
  const allFields = [...new Set(ENTITIES.flatMap((entity) => Object.keys(entity.resource.properties)))].filter(
    (name) => name !== 'id',
  );
  app.get(
    '/changes',
    {
      // Every named collection's read scope: checked in the handler, which knows the names.
      config: { scopes: [] },
      schema: {
        tags: DATA_RESOURCES,
        operationId: 'followChanges',
        summary: 'Follow the changes to several collections',
        description:
          `${FEED_DESCRIPTION}\n\n` +
          "One stream of several collections' changes, in the order MongoDB applied them. Needs the read scope " +
          'of every collection named (403 naming the missing ones otherwise).',
        querystring: Type.Object(
          {
            collections: Type.String({
              pattern: `^(${names})(,(${names})){0,${DATA_RESOURCES.length - 1}}$`,
              description: `Comma-separated, each once: ${DATA_RESOURCES.join(', ')}.`,
              examples: ['products,orders'],
            }),
            fields: Type.Optional(
              Type.String({
                pattern: `^(${allFields.join('|')})(,(${allFields.join('|')}))*$`,
                maxLength: 500,
                description:
                  'Comma-separated fields to send of each document (id and version always come), of any of the ' +
                  `collections: ${allFields.join(', ')}.`,
              }),
            ),
            after: Type.Optional(AfterParameter),
          },
          { additionalProperties: false },
        ),
        headers: FeedHeaders,
        response: {
          200: streamResponse(ENTITIES),
          ...streamKinds(options.retryAfterSeconds),
        },
      },
    },
    async (request, reply) => {
      const collections = request.query.collections.split(',');
      if (new Set(collections).size !== collections.length) {
        throw AppError.validation([{ in: 'query', pointer: '/collections', message: 'names a collection twice' }]);
      }
      const scopes = collections.map(readScope);
      authorize(request, scopes);
      return serve(
        request,
        reply,
        {
          collections,
          scopes,
          ...(request.query.fields !== undefined && { fields: request.query.fields.split(',') }),
        },
        request.query.after,
      );
    },
  );
};

export default changeRoutes;
