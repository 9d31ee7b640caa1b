// The service_secrets collection, holding the secret that signs list cursors when CURSOR_SECRET
// is not configured: one random value per database, so every instance on the database signs and
// checks cursors alike. Created here with its secret; an instance that finds none (a database not
// yet migrated) stores one the same way, and this migration then keeps it.

import { randomBytes } from 'node:crypto';

const NAME = 'service_secrets';
const CURSOR_SECRET_ID = 'cursor-signing';

const VALIDATOR = {
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'secret', 'createdAt'],
    properties: {
      _id: { bsonType: 'string', enum: [CURSOR_SECRET_ID], description: 'What the secret is for.' },
      secret: { bsonType: 'string', pattern: '^[A-Za-z0-9_-]{43}$', description: '32 random bytes, base64url.' },
      createdAt: { bsonType: 'date' },
    },
    additionalProperties: false,
  },
};

/** Safe to run again: an existing collection gets the validator, an existing secret is kept. @param db {import('mongodb').Db} */
export const up = async (db) => {
  const existing = await db.listCollections({ name: NAME }, { nameOnly: true }).toArray();
  if (existing.length === 0) {
    await db.createCollection(NAME, { validator: VALIDATOR, validationLevel: 'strict', validationAction: 'error' });
  } else {
    await db.command({ collMod: NAME, validator: VALIDATOR, validationLevel: 'strict', validationAction: 'error' });
  }
  await db
    .collection(NAME)
    .updateOne(
      { _id: CURSOR_SECRET_ID },
      { $setOnInsert: { secret: randomBytes(32).toString('base64url'), createdAt: new Date() } },
      { upsert: true },
    );
};

/** Drops the collection: cursors issued until then stop being accepted (their next page is a 400). @param db {import('mongodb').Db} */
export const down = async (db) => {
  await db.collection(NAME).drop();
};
