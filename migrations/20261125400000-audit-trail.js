// The audit_events collection: one entry per document changed by a successful write (key, action,
// collection, document id and version, request id, time), inserted in the write's own
// transaction. A snapshot of src/domain/audit.ts (migrations never import src/); the indexes
// serve the audit list's filters, newest first, and the TTL index removes each entry at its own
// expiresAt, so changing AUDIT_RETENTION_DAYS needs no index change.

const NAME = 'audit_events';

const VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'at', 'keyId', 'keyName', 'action', 'collection', 'documentId', 'requestId', 'expiresAt'],
    properties: {
      _id: { bsonType: 'objectId' },
      at: {
        bsonType: 'date',
        description: 'When the write was made, just before its commit (the entries of one request share it).',
      },
      keyId: { bsonType: 'string', pattern: '^[0-9a-f]{24}$', description: 'Id of the API key that made the write.' },
      keyName: {
        bsonType: 'string',
        minLength: 1,
        maxLength: 100,
        description: 'Name of that key at the time of the write.',
      },
      action: {
        enum: [
          'create',
          'replace',
          'patch',
          'delete',
          'archive',
          'place',
          'pay',
          'ship',
          'deliver',
          'cancel',
          'restock',
          'move',
          'revoke',
        ],
        description: 'What the write did to the document.',
      },
      collection: {
        enum: ['products', 'customers', 'stock', 'orders', 'api_keys'],
        description: 'Collection of the document.',
      },
      documentId: { bsonType: 'string', pattern: '^[0-9a-f]{24}$', description: 'Id of the document written.' },
      documentVersion: {
        bsonType: ['int', 'long'],
        minimum: 1,
        description:
          "The document's version after the write (its ETag); for a deletion, the version that was deleted. API keys have none.",
      },
      requestId: {
        bsonType: 'string',
        minLength: 1,
        maxLength: 128,
        description: 'The X-Request-Id of the request that made the write.',
      },
      expiresAt: {
        bsonType: 'date',
        description: 'When the entry is removed: AUDIT_RETENTION_DAYS after the write, as configured then.',
      },
    },
    additionalProperties: false,
  },
};

const INDEXES = [
  // the whole trail, newest first, and time ranges
  { name: 'at', key: { at: -1, _id: -1 } },
  // what one API key did, newest first
  { name: 'key_at', key: { keyId: 1, at: -1, _id: -1 } },
  // one document's history, newest first
  { name: 'document_at', key: { collection: 1, documentId: 1, at: -1, _id: -1 } },
  // everything one request changed
  { name: 'request', key: { requestId: 1 } },
  // retention: each entry is removed once its own expiresAt has passed (the TTL monitor runs once a minute)
  { name: 'expires', key: { expiresAt: 1 }, expireAfterSeconds: 0 },
];

const VALIDATION = { validationLevel: 'strict', validationAction: 'error' };

/**
 * Safe to run again: an existing collection gets the validator through collMod, and createIndexes
 * leaves identical indexes alone. @param db {import('mongodb').Db}
 */
export const up = async (db) => {
  const existing = await db.listCollections({ name: NAME }, { nameOnly: true }).toArray();
  if (existing.length === 0) {
    await db.createCollection(NAME, { validator: VALIDATOR, ...VALIDATION });
  } else {
    await db.command({ collMod: NAME, validator: VALIDATOR, ...VALIDATION });
  }
  await db.collection(NAME).createIndexes(INDEXES);
};

/** Drops the collection: the recorded trail is lost. @param db {import('mongodb').Db} */
export const down = async (db) => {
  await db.collection(NAME).drop();
};
