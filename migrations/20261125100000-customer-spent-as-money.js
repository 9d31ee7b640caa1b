// Customers' stats.spent goes from a record keyed by currency ({ EUR: 12497 }) to an array of Money
// ([{ currency: 'EUR', amount: 12497 }]), which an index can serve, and gets that index. The
// validators are snapshots of `npm run schema:print` (migrations never import src/). Safe to run
// again after an interruption at any point: documents are picked by their shape, never by a
// marker, and every schema step is a no-op the second time.

const COLLECTION = 'customers';

/** Documents per update: small enough to keep each write short, large enough to amortise a round trip. */
export const BATCH_SIZE = 1000;

const MAX_AMOUNT = 2_147_483_647;

/** stats.spent as the first migration declared it. */
const RECORD_SPENT = {
  bsonType: 'object',
  patternProperties: { '^[A-Z]{3}$': { bsonType: ['int', 'long'], minimum: 0 } },
  additionalProperties: false,
  description: 'Total spent per currency, in minor units.',
};

/** stats.spent as an array of Money. */
const MONEY_SPENT = {
  bsonType: 'array',
  items: {
    bsonType: 'object',
    required: ['amount', 'currency'],
    properties: {
      amount: {
        bsonType: ['int', 'long'],
        minimum: 0,
        maximum: MAX_AMOUNT,
        description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
      },
      currency: { bsonType: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.' },
    },
    additionalProperties: false,
    description: 'Total spent in one currency.',
  },
  maxItems: 20,
  description: 'Total spent per currency, at most one entry per currency.',
};

/** The customers validator, identical in both versions but for stats.spent. */
const customersValidator = (spent) => ({
  $jsonSchema: {
    bsonType: 'object',
    required: ['_id', 'email', 'name', 'addresses', 'marketingOptIn', 'stats', 'version', 'createdAt', 'updatedAt'],
    properties: {
      _id: { bsonType: 'objectId' },
      email: { bsonType: 'string', maxLength: 254, description: 'Unique, compared without regard to case.' },
      name: { bsonType: 'string', minLength: 1, maxLength: 200 },
      phone: { bsonType: 'string', pattern: '^\\+[1-9][0-9]{6,14}$', description: 'E.164 phone number.' },
      addresses: {
        bsonType: 'array',
        items: {
          bsonType: 'object',
          required: ['line1', 'city', 'postalCode', 'country'],
          properties: {
            label: { bsonType: 'string', maxLength: 40 },
            line1: { bsonType: 'string', minLength: 1, maxLength: 200 },
            line2: { bsonType: 'string', maxLength: 200 },
            city: { bsonType: 'string', minLength: 1, maxLength: 100 },
            region: { bsonType: 'string', maxLength: 100 },
            postalCode: { bsonType: 'string', minLength: 1, maxLength: 20 },
            country: { bsonType: 'string', pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 code.' },
          },
          additionalProperties: false,
        },
        maxItems: 10,
      },
      marketingOptIn: { bsonType: 'bool' },
      stats: {
        bsonType: 'object',
        required: ['orderCount', 'spent'],
        properties: {
          orderCount: { bsonType: ['int', 'long'], minimum: 0 },
          spent,
          lastOrderAt: { bsonType: 'date' },
        },
        additionalProperties: false,
        description: 'Maintained by the order workflow.',
      },
      version: {
        bsonType: ['int', 'long'],
        minimum: 1,
        description: 'Incremented by every write; the ETag is derived from it.',
      },
      createdAt: { bsonType: 'date', description: 'When the document was created.' },
      updatedAt: { bsonType: 'date', description: 'When the document last changed.' },
    },
    additionalProperties: false,
  },
});

/** The validator of 20261125000000-create-collections.js, which down restores. */
export const RECORD_VALIDATOR = customersValidator(RECORD_SPENT);
/** The validator this migration leaves. */
export const MONEY_VALIDATOR = customersValidator(MONEY_SPENT);
/** While documents move, either shape is valid (each still checked in full). */
export const EITHER_VALIDATOR = customersValidator({ anyOf: [RECORD_SPENT, MONEY_SPENT] });

const VALIDATION = { validationLevel: 'strict', validationAction: 'error' };

// Serves { 'stats.spent': { $elemMatch: { currency, amount: { $gte } } } }; it inherits the
// collection's collation like the first migration's indexes.
const SPENT_INDEX = { name: 'spent_by_currency', key: { 'stats.spent.currency': 1, 'stats.spent.amount': 1 } };

/**
 * Which documents each direction still has to convert, and how. `$type: 'object'` alone would not
 * do for the record: on an array it matches when any element is a document, so arrays of Money
 * would be converted again. Updates set stats.spent only, never version or updatedAt: a schema
 * migration is not a change a client made, and bumping them would send every "changed since" sync
 * consumer the whole collection. The price: a client revalidating a cached customer by its ETag
 * keeps the old shape until that customer next changes.
 */
export const RESHAPES = {
  up: {
    pending: { 'stats.spent': { $type: 'object', $not: { $type: 'array' } } },
    pipeline: [
      {
        $set: {
          'stats.spent': {
            $map: {
              input: { $objectToArray: '$stats.spent' },
              as: 'entry',
              in: { currency: '$$entry.k', amount: '$$entry.v' },
            },
          },
        },
      },
    ],
  },
  down: {
    pending: { 'stats.spent': { $type: 'array' } },
    pipeline: [
      {
        $set: {
          'stats.spent': {
            $arrayToObject: {
              $map: { input: '$stats.spent', as: 'money', in: { k: '$$money.currency', v: '$$money.amount' } },
            },
          },
        },
      },
    ],
  },
};

/**
 * Documents a direction cannot convert, or not faithfully. Each batch is validated whole (strict
 * validation checks every field of an updated document), so a document the target validator
 * refuses would stop the run halfway: up, a record the array's limits refuse (an amount over
 * 2^31-1, more than 20 currencies), which the record allowed, or a document invalid elsewhere (the
 * first migration adopted existing documents as they were); down, the same, or two entries of one
 * currency, which the array's validator cannot forbid and a record cannot hold.
 */
const UNCONVERTIBLE = {
  up: {
    why: 'an amount over 2^31-1, more than 20 currencies, or a field the validator refuses',
    pipeline: [{ $match: RESHAPES.up.pending }, ...RESHAPES.up.pipeline, { $match: { $nor: [MONEY_VALIDATOR] } }],
  },
  down: {
    why: 'two entries of one currency, or a field the validator refuses',
    pipeline: [
      { $match: RESHAPES.down.pending },
      {
        $match: {
          $or: [
            // $isArray first: MongoDB may merge the two $match stages and test in any order.
            {
              $expr: {
                $cond: [
                  { $isArray: '$stats.spent' },
                  { $ne: [{ $size: '$stats.spent' }, { $size: { $setUnion: ['$stats.spent.currency'] } }] },
                  false,
                ],
              },
            },
            // Valid as it is implies valid converted: the record's rules are the array's, looser.
            { $nor: [MONEY_VALIDATOR] },
          ],
        },
      },
    ],
  },
};

/** Refuses before changing anything, naming a few of the documents to correct. */
async function assertConvertible(db, direction) {
  const { why, pipeline } = UNCONVERTIBLE[direction];
  const found = await db
    .collection(COLLECTION)
    .aggregate([...pipeline, { $project: { _id: 1 } }, { $sort: { _id: 1 } }, { $limit: 5 }])
    .toArray();
  if (found.length === 0) return;
  throw new Error(
    `${COLLECTION}: documents with ${why} cannot be converted (${found.map((d) => String(d._id)).join(', ')}` +
      `${found.length === 5 ? ', ...' : ''}); nothing was changed: correct them and migrate again`,
  );
}

const toStderr = (line) => process.stderr.write(`${line}\n`);

/**
 * Converts the documents still in the other shape, `batchSize` at a time in _id order, and returns
 * how many it changed. Each batch is one update of an _id range, so a document's conversion is
 * atomic and an interrupted run leaves every document in one shape or the other. `maxBatches`
 * stops early (as an interruption would).
 * @param db {import('mongodb').Db}
 * @param direction {'up' | 'down'}
 * @param options {{ batchSize?: number, maxBatches?: number, log?: (line: string) => void }}
 */
export async function reshape(db, direction, { batchSize = BATCH_SIZE, maxBatches = Infinity, log = toStderr } = {}) {
  const { pending, pipeline } = RESHAPES[direction];
  const customers = db.collection(COLLECTION);
  const started = performance.now();
  let total = 0;
  let after;
  for (let batch = 1; batch <= maxBatches; batch += 1) {
    const afterPrevious = after === undefined ? {} : { $gt: after };
    const filter = after === undefined ? pending : { ...pending, _id: afterPrevious };
    const ids = await customers.find(filter, { projection: { _id: 1 }, sort: { _id: 1 }, limit: batchSize }).toArray();
    if (ids.length === 0) break;
    const last = ids[ids.length - 1]._id;
    // The range, not the list of ids: a document written into it since the find converts too.
    const { modifiedCount } = await customers.updateMany(
      { ...pending, _id: { ...afterPrevious, $lte: last } },
      pipeline,
    );
    after = last;
    total += modifiedCount;
    const seconds = (performance.now() - started) / 1000;
    log(`batch ${batch}: ${modifiedCount} documents, total ${total}, ${Math.round(total / seconds)} docs/s`);
  }
  return total;
}

async function setValidator(db, validator) {
  await db.command({ collMod: COLLECTION, validator, ...VALIDATION });
}

/** @param db {import('mongodb').Db} */
export const up = async (db) => {
  await assertConvertible(db, 'up');
  await setValidator(db, EITHER_VALIDATOR);
  await reshape(db, 'up');
  await setValidator(db, MONEY_VALIDATOR);
  // An instance of the previous release may have written a record after its document's batch;
  // from here on the validator refuses one, and this pass converts those that got in (usually none).
  await reshape(db, 'up');
  await db.collection(COLLECTION).createIndex(SPENT_INDEX.key, { name: SPENT_INDEX.name });
};

/** @param db {import('mongodb').Db} */
export const down = async (db) => {
  await assertConvertible(db, 'down');
  await setValidator(db, EITHER_VALIDATOR);
  // Before the reshape, which then has no index entries to maintain.
  await db
    .collection(COLLECTION)
    .dropIndex(SPENT_INDEX.name)
    .catch((error) => {
      if (error?.codeName !== 'IndexNotFound') throw error;
    });
  await reshape(db, 'down');
  await setValidator(db, RECORD_VALIDATOR);
  await reshape(db, 'down');
};
