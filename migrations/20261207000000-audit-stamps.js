// Writes of one document carry their audit entry on the document (`_audit`) and the service's
// audit stream stores it from MongoDB's change stream (src/data/audit-stream.ts). Two things make
// that possible:
// - the document collections' validators accept the stamp (a snapshot of src/domain/audit-stamp.ts,
//   added to whatever validator each collection has, as its last property);
// - stream_positions holds the stream's resume position, so a restarted service goes on where the
//   last one stopped; it is created here, before any concurrent work, with the position of now.
// Safe to run again. `down` removes the stamps from the documents, the property from the
// validators, and the positions.

const COLLECTIONS = ['products', 'customers', 'stock', 'orders'];
const POSITIONS = 'stream_positions';
const STAMP = '_audit';

const STAMP_SCHEMA = {
  bsonType: 'object',
  required: ['id', 'action', 'keyId', 'keyName', 'requestId', 'at'],
  properties: {
    id: { bsonType: 'objectId', description: 'The id its audit entry is stored under.' },
    action: { bsonType: 'string', minLength: 1, maxLength: 32, description: 'What the write did.' },
    keyId: { bsonType: 'string', pattern: '^[0-9a-f]{24}\\z', description: 'Id of the API key that made the write.' },
    keyName: { bsonType: 'string', minLength: 1, maxLength: 100, description: 'Name of that key at the time.' },
    requestId: { bsonType: 'string', minLength: 1, maxLength: 128, description: 'The request that made the write.' },
    at: { bsonType: 'date', description: 'When the write was made.' },
  },
  additionalProperties: false,
  description: 'The audit entry of the last write that carried one.',
};

/** @param db {import('mongodb').Db} */
async function changeValidators(db, change) {
  for (const name of COLLECTIONS) {
    const [info] = await db.listCollections({ name }).toArray();
    const validator = info?.options?.validator;
    if (validator?.$jsonSchema?.properties === undefined) continue;
    const properties = change({ ...validator.$jsonSchema.properties });
    await db.command({
      collMod: name,
      validator: { ...validator, $jsonSchema: { ...validator.$jsonSchema, properties } },
      validationLevel: info.options.validationLevel ?? 'strict',
      validationAction: info.options.validationAction ?? 'error',
    });
  }
}

/** @param db {import('mongodb').Db} */
export const up = async (db) => {
  const existing = await db.listCollections({ name: POSITIONS }, { nameOnly: true }).toArray();
  if (existing.length === 0) await db.createCollection(POSITIONS);
  // The stream's first position: every stamp written from now on is read by some run of it.
  const positions = db.collection(POSITIONS);
  if ((await positions.findOne({ _id: 'audit' })) === null) {
    await positions.updateOne(
      { _id: 'audit' },
      { $currentDate: { startAt: { $type: 'timestamp' } } },
      { upsert: true },
    );
  }
  await changeValidators(db, (properties) => ({ ...properties, [STAMP]: STAMP_SCHEMA }));
};

/** @param db {import('mongodb').Db} */
export const down = async (db) => {
  for (const name of COLLECTIONS) {
    await db.collection(name).updateMany({ [STAMP]: { $exists: true } }, { $unset: { [STAMP]: '' } });
  }
  await changeValidators(db, (properties) =>
    Object.fromEntries(Object.entries(properties).filter(([name]) => name !== STAMP)),
  );
  const existing = await db.listCollections({ name: POSITIONS }, { nameOnly: true }).toArray();
  if (existing.length > 0) await db.collection(POSITIONS).drop();
};
