// The api_keys collection: one document per key, holding only a SHA-256 hash of its secret, the
// public prefix that finds it, its name, scopes and optional expiry. Revoked keys stay (with
// revokedAt) so the audit trail can still name them. Created here, never implicitly.

const NAME = 'api_keys';

const VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'prefix', 'hash', 'name', 'scopes', 'createdAt'],
    properties: {
      _id: { bsonType: 'objectId' },
      prefix: {
        bsonType: 'string',
        pattern: '^[a-z0-9]{12}$',
        description: 'Public identifier, also the second part of the key.',
      },
      hash: { bsonType: 'string', pattern: '^[0-9a-f]{64}$', description: 'sha256 of the secret part of the key.' },
      name: { bsonType: 'string', minLength: 1, maxLength: 100 },
      scopes: {
        bsonType: 'array',
        maxItems: 100,
        items: { bsonType: 'string', pattern: '^[a-z_]+:(read|write|admin)$' },
      },
      rateLimitPerMinute: {
        bsonType: 'int',
        minimum: 0,
        description: 'Overrides the service default; 0 is unlimited.',
      },
      createdAt: { bsonType: 'date' },
      expiresAt: { bsonType: 'date' },
      revokedAt: { bsonType: 'date' },
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
  await db.collection(NAME).createIndexes([{ name: 'prefix', key: { prefix: 1 }, unique: true }]);
};

/** Drops the collection: every key stops working. @param db {import('mongodb').Db} */
export const down = async (db) => {
  await db.collection(NAME).drop();
};
