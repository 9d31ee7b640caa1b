// Orders brought in from another system keep its order number (`externalNumber`, optional), so
// that `npm run import` finds an order again by it: re-importing a file changes nothing, and an
// order whose status moved on in the old system is updated rather than duplicated. The orders'
// validator accepts the field (a snapshot of src/domain/entities/order.ts), and a unique index,
// partial so that orders placed here (which have none) cost nothing, keeps one order per number.
// Safe to run again. `down` refuses while an order carries a number: removing the field would
// lose what ties it to its source.

const NAME = 'orders';
const FIELD = 'externalNumber';
const INDEX = {
  name: 'external_number_unique',
  key: { externalNumber: 1 },
  unique: true,
  partialFilterExpression: { externalNumber: { $exists: true } },
};

const FIELD_SCHEMA = {
  bsonType: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._/#-]*\\z',
  description: 'The order number of the system it was imported from (npm run import); unique when present.',
};

/** @param db {import('mongodb').Db} */
async function changeValidator(db, change) {
  const [info] = await db.listCollections({ name: NAME }).toArray();
  const validator = info?.options?.validator;
  if (validator?.$jsonSchema?.properties === undefined) return;
  const properties = change({ ...validator.$jsonSchema.properties });
  await db.command({
    collMod: NAME,
    validator: { ...validator, $jsonSchema: { ...validator.$jsonSchema, properties } },
    validationLevel: info.options.validationLevel ?? 'strict',
    validationAction: info.options.validationAction ?? 'error',
  });
}

/** @param db {import('mongodb').Db} */
export const up = async (db) => {
  await changeValidator(db, (properties) => ({ ...properties, [FIELD]: FIELD_SCHEMA }));
  await db.collection(NAME).createIndexes([INDEX]);
};

/** @param db {import('mongodb').Db} */
export const down = async (db) => {
  const numbered = await db.collection(NAME).countDocuments({ [FIELD]: { $exists: true } }, { limit: 1 });
  if (numbered > 0) {
    throw new Error(
      `${NAME}: orders carry an ${FIELD} (imported orders); remove the field from them first if they are to lose it`,
    );
  }
  const indexes = await db.collection(NAME).indexes();
  if (indexes.some((index) => index.name === INDEX.name)) await db.collection(NAME).dropIndex(INDEX.name);
  await changeValidator(db, (properties) =>
    Object.fromEntries(Object.entries(properties).filter(([name]) => name !== FIELD)),
  );
};
