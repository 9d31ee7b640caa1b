// The audit trail's entries: one per document that a successful write changed, naming the API
// key that wrote, what it did, to which document, in which request and when. Declared in the
// shape of an entity (src/domain/entity.ts) so that the list API's query language, cursors and
// query-string schema serve it as they serve the collections, but read-only and kept out of
// ENTITIES: clients never write it, and reading it takes the audit:read scope rather than a
// collection's read or write scope.
//
// Not built with defineEntity, which adds the fields every stored document carries (version,
// createdAt, updatedAt): an entry never changes, so those would only repeat `at` and a constant
// version, and `documentVersion` (the audited document's version) would be easy to mistake for
// the entry's own.

import { Type, type TProperties } from 'typebox';
import { RANGE, type Entity, type IndexDeclaration } from './entity.ts';
import { ENTITIES } from './entities/index.ts';
import { ORDER_ACTIONS } from './orders.ts';
import { DateTime, OBJECT_ID_PATTERN, ObjectIdString } from './types.ts';

export const AUDIT_READ_SCOPE = 'audit:read';

/**
 * What a write did to a document: the document API's writes (a DELETE that archives instead is
 * an `archive`), then the workflows' actions under their own names. Every document a workflow
 * request changes gets an entry with the request's action: placing an order records the order,
 * each stock item it reserved and the customer whose stats it counted, all as `place`.
 */
export const AUDIT_ACTIONS = [
  'create',
  'replace',
  'patch',
  'delete',
  'archive',
  'place',
  ...ORDER_ACTIONS,
  'restock',
  'move',
  'revoke',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/**
 * The collections whose writes are audited: every document collection, and the API keys (created and
 * revoked through /v1/keys).
 */
export const AUDITED_COLLECTIONS = [...ENTITIES.map((entity) => entity.collection), 'api_keys'];

/**
 * A hex id kept as a string. Key and document ids are stored as the API shows them, not as
 * ObjectIds: an entry is read and filtered by those strings, and needs no join.
 */
const HexId = (description: string) =>
  Type.String({ pattern: OBJECT_ID_PATTERN, description, examples: ['6650f0c2a1b2c3d4e5f60718'] });

const fields = {
  at: DateTime({
    description: 'When the write was made, just before its commit (the entries of one request share it).',
  }),
  keyId: HexId('Id of the API key that made the write.'),
  keyName: Type.String({ minLength: 1, maxLength: 100, description: 'Name of that key at the time of the write.' }),
  action: Type.Enum(AUDIT_ACTIONS, { description: 'What the write did to the document.' }),
  collection: Type.Enum(AUDITED_COLLECTIONS, { description: 'Collection of the document.' }),
  documentId: HexId('Id of the document written.'),
  documentVersion: Type.Optional(
    Type.Integer({
      minimum: 1,
      description:
        "The document's version after the write (its ETag); for a deletion, the version that was deleted. API " +
        'keys have none.',
    }),
  ),
  // The request-id rule of src/http/plugins/request-context.ts (the caller's id or a UUID).
  requestId: Type.String({
    minLength: 1,
    maxLength: 128,
    description: 'The X-Request-Id of the request that made the write.',
  }),
  expiresAt: DateTime({
    description: 'When the entry is removed: AUDIT_RETENTION_DAYS after the write, as configured then.',
  }),
} satisfies TProperties;

const DESCRIPTION =
  'One document changed by one successful write: who (the API key), what (action), which document, in which ' +
  'request and when. ' +
  'Written in the same transaction as the change itself, so every committed change has its entries and a ' +
  'failed write has none; never the document contents.';

const INDEXES: IndexDeclaration[] = [
  { name: 'at', key: { at: -1, _id: -1 }, serves: 'the whole trail, newest first, and time ranges' },
  { name: 'key_at', key: { keyId: 1, at: -1, _id: -1 }, serves: 'what one API key did, newest first' },
  {
    name: 'document_at',
    key: { collection: 1, documentId: 1, at: -1, _id: -1 },
    serves: "one document's history, newest first",
  },
  { name: 'request', key: { requestId: 1 }, serves: 'everything one request changed' },
];

/**
 * Retention: the TTL monitor removes an entry once its own expiresAt has passed. expiresAt is
 * set per entry at write time, so a new AUDIT_RETENTION_DAYS needs no index change (it applies
 * to entries written from then on). Outside INDEXES, whose declaration has no expiry.
 */
export const AUDIT_EXPIRY_INDEX = { name: 'expires', key: { expiresAt: 1 }, expireAfterSeconds: 0 } as const;

const example = {
  at: '2026-11-25T09:30:00.000Z',
  keyId: '6650f0c2a1b2c3d4e5f60718',
  keyName: 'checkout',
  action: 'place',
  collection: 'orders',
  documentId: '6650f0c2a1b2c3d4e5f60720',
  documentVersion: 1,
  requestId: 'a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  expiresAt: '2027-11-25T09:30:00.000Z',
};

export const AuditEvent: Entity = {
  collection: 'audit_events',
  singular: 'audit event',
  schemaName: 'AuditEvent',
  description: DESCRIPTION,
  writable: Type.Object({}, { additionalProperties: false }),
  server: Type.Object(fields, { additionalProperties: false }),
  immutable: [],
  filters: {
    keyId: ['eq'],
    action: ['eq', 'in'],
    collection: ['eq', 'in'],
    documentId: ['eq'],
    requestId: ['eq'],
    at: [...RANGE],
  },
  sorts: ['at'],
  defaultSort: 'at',
  textSearch: false,
  indexes: INDEXES,
  shardKey: {
    key: { documentId: 'hashed', _id: 1 },
    why:
      'The trail grows fastest of all (an entry per document per write, kept AUDIT_RETENTION_DAYS) and is only ' +
      "appended to. Its question about one thing is one document's history: hashed on documentId it reaches one " +
      "shard, and entries spread over all shards whatever their document's age; the entry's own _id after it " +
      '(time-ordered) lets a document with a very long history, a best-selling stock item, split into several ' +
      'chunks. An entry the audit stream stores twice has the same documentId, so reaches the same shard, whose ' +
      '_id index refuses the copy as today.',
    uniqueElsewhere: {},
    scatterGather: [
      {
        shapes: ['_id'],
        cost: 'One entry by id (GET /v1/audit/{id}): one _id index lookup on every shard.',
      },
      {
        shapes: ['keyId', 'action', 'collection', 'requestId', 'at', 'sort at'],
        cost:
          'What a key did, what a request changed (also the importer asking whether a batch committed), time ' +
          'ranges: every shard answers from its index, at most a page each, merged by mongos newest first.',
      },
    ],
  },
  operations: { create: false, replace: false, patch: false, delete: false },
  serverDefaults: {},
  example: {},
  serverExample: example,
  resource: Type.Object(
    { id: ObjectIdString({ description: "The entry's id." }), ...fields },
    { additionalProperties: false, description: DESCRIPTION },
  ),
  stored: Type.Object({ _id: ObjectIdString(), ...fields }, { additionalProperties: false }),
};

/** An entry as the API shows it, for documentation. */
export const AUDIT_EVENT_EXAMPLE = { id: '6650f0c2a1b2c3d4e5f60730', ...example };
