// Idempotency records become leases: a running record names the request holding it (owner) and
// until when (leaseUntil), after which a retry may take it over; a write records that it committed
// (state committed, with its result) in its own transaction, so that a retry can always replay it.
// Running records written before this migration get a lease that ended a minute after they were
// created, so none of them blocks its key until it expires.

const NAME = 'idempotency_records';

const HEADERS = {
  bsonType: 'object',
  properties: {
    'content-type': { bsonType: 'string' },
    location: { bsonType: 'string' },
    etag: { bsonType: 'string' },
  },
  additionalProperties: false,
  description: 'The headers replayed with the answer.',
};

const COMMON = {
  _id: {
    bsonType: 'string',
    pattern: '^[0-9a-f]{64}$',
    description: 'sha256 of the key scope (API key, method, route, key).',
  },
  fingerprint: {
    bsonType: 'string',
    pattern: '^[0-9a-f]{64}$',
    description: 'sha256 of method, URL and canonical JSON body.',
  },
  createdAt: { bsonType: 'date' },
  expiresAt: { bsonType: 'date', description: 'The TTL index removes the record after this time.' },
  completedAt: { bsonType: 'date' },
  status: { bsonType: 'int', minimum: 100, maximum: 599, description: 'Status code of the stored answer.' },
  headers: HEADERS,
  body: { bsonType: 'string', description: 'The answer body as sent.' },
};

const VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'state', 'fingerprint', 'createdAt', 'expiresAt'],
    properties: {
      ...COMMON,
      state: {
        enum: ['running', 'committed', 'done'],
        description:
          'running while a request holds the key; committed once its write committed; done once its answer is stored.',
      },
      owner: { bsonType: 'string', minLength: 1, maxLength: 64, description: 'The request holding a running record.' },
      leaseUntil: {
        bsonType: 'date',
        description: 'Until when that request holds it; a retry may take it over afterwards.',
      },
      committedAt: { bsonType: 'date' },
      result: {
        description: "The committed write's result, from which its answer is rebuilt until the answer is stored.",
      },
    },
    additionalProperties: false,
  },
};

/** The validator before this migration (20261125200000-idempotency-records.js). */
const PREVIOUS_VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'state', 'fingerprint', 'createdAt', 'expiresAt'],
    properties: {
      ...COMMON,
      _id: {
        bsonType: 'string',
        pattern: '^[0-9a-f]{64}$',
        description: 'sha256 of the key scope (method, route, key).',
      },
      state: {
        enum: ['running', 'done'],
        description: 'running while the first request is handled; done once its answer is stored.',
      },
    },
    additionalProperties: false,
  },
};

const LEGACY_LEASE_MS = 60_000;

/** @param db {import('mongodb').Db} */
export const up = async (db) => {
  await db.command({ collMod: NAME, validator: VALIDATOR, validationLevel: 'strict', validationAction: 'error' });
  await db
    .collection(NAME)
    .updateMany({ state: 'running', leaseUntil: { $exists: false } }, [
      { $set: { leaseUntil: { $add: ['$createdAt', LEGACY_LEASE_MS] } } },
    ]);
};

/**
 * Back to records without leases. A committed record whose answer was never stored cannot be
 * expressed without leases: it is removed, and a retry with its key would run the write again, so
 * roll back only when no client is retrying (the count is logged). @param db {import('mongodb').Db}
 */
export const down = async (db) => {
  const records = db.collection(NAME);
  const { deletedCount } = await records.deleteMany({ state: 'committed' });
  if (deletedCount > 0)
    console.warn(`idempotency-leases down: removed ${deletedCount} committed record(s) without a stored answer`);
  await records.updateMany({}, { $unset: { owner: '', leaseUntil: '', committedAt: '', result: '' } });
  await db.command({
    collMod: NAME,
    validator: PREVIOUS_VALIDATOR,
    validationLevel: 'strict',
    validationAction: 'error',
  });
};
