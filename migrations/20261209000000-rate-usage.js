// Rate-limit usage shared between instances: each instance adds what every key (or client IP) used
// to a document per identity and minute, and keeps a heartbeat document of its own, so each sees
// the others' use. Documents expire a few minutes after their minute (TTL index on expiresAt).
// Created here, before any instance writes, so that no concurrent first upserts create it.

const NAME = 'rate_usage';

const VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'expiresAt'],
    properties: {
      _id: {
        bsonType: 'string',
        description: '<identity>@<minute> for usage, instance:<id> for a heartbeat.',
      },
      n: { bsonType: ['int', 'long', 'double'], minimum: 0, description: "Requests the identity's minute counted." },
      by: {
        bsonType: 'object',
        description: 'The same count per instance id, so that each instance tells its own use from the others.',
      },
      at: { bsonType: 'date', description: "A heartbeat's last exchange." },
      expiresAt: { bsonType: 'date', description: 'The TTL index removes the document after this time.' },
    },
  },
};

const VALIDATION = { validationLevel: 'strict', validationAction: 'error' };

const INDEXES = [{ name: 'expires', key: { expiresAt: 1 }, expireAfterSeconds: 0 }];

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

/** Drops the collection: instances limit alone until it is back. @param db {import('mongodb').Db} */
export const down = async (db) => {
  await db.collection(NAME).drop();
};
