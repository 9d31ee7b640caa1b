// The idempotency_records collection: one record per Idempotency-Key scope, holding the answer to
// replay, and the TTL index that forgets records at their expiresAt. Created here, never
// implicitly, like every collection (migrations never import src/).

const NAME = 'idempotency_records';

const VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'state', 'fingerprint', 'createdAt', 'expiresAt'],
    properties: {
      _id: {
        bsonType: 'string',
        pattern: '^[0-9a-f]{64}$',
        description: 'sha256 of the key scope (method, route, key).',
      },
      state: {
        enum: ['running', 'done'],
        description: 'running while the first request is handled; done once its answer is stored.',
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
      headers: {
        bsonType: 'object',
        properties: {
          'content-type': { bsonType: 'string' },
          location: { bsonType: 'string' },
          etag: { bsonType: 'string' },
        },
        additionalProperties: false,
        description: 'The headers replayed with the answer.',
      },
      body: { bsonType: 'string', description: 'The answer body as sent.' },
    },
    additionalProperties: false,
  },
};

/** Safe to run again: an existing collection gets the validator through collMod. @param db {import('mongodb').Db} */
export const up = async (db) => {
  const existing = await db.listCollections({ name: NAME }, { nameOnly: true }).toArray();
  if (existing.length === 0) {
    await db.createCollection(NAME, { validator: VALIDATOR, validationLevel: 'strict', validationAction: 'error' });
  } else {
    await db.command({ collMod: NAME, validator: VALIDATOR, validationLevel: 'strict', validationAction: 'error' });
  }
  // expireAfterSeconds 0: each record carries its own expiry, so changing the TTL needs no index change.
  await db.collection(NAME).createIndexes([{ name: 'expires', key: { expiresAt: 1 }, expireAfterSeconds: 0 }]);
};

/** Drops the collection; stored answers are lost, which only means retries run again. @param db {import('mongodb').Db} */
export const down = async (db) => {
  await db.collection(NAME).drop();
};
