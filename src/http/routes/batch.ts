// POST /v1/batch: inserts, replaces, merge patches and deletes across the document collections,
// all applied in one transaction or none. Every operation is validated as its single route
// would validate it before anything is written; the writes themselves are src/shop/batch.ts.
//
// The contract (BatchRequest) is exact: one schema per operation and collection, each with the
// collection's own Input or Patch schema. The request is validated in two steps instead, a shape
// and then checkOperation, because one schema of alternatives would answer an invalid operation
// with the failures of every alternative, where checkOperation points at what is wrong. The two
// accept the same requests (test/http/openapi.test.ts sends both kinds through both).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from 'typebox';
import {
  BATCH_COLLECTIONS,
  BATCH_MAX_OPERATIONS,
  BATCH_OPS,
  failedOperation,
  type BatchOperation,
} from '../../domain/batch.ts';
import type { Entity } from '../../domain/entity.ts';
import { ENTITIES } from '../../domain/entities/index.ts';
import type { Json } from '../../domain/merge-patch.ts';
import { OBJECT_ID_PATTERN } from '../../domain/types.ts';
import { compileValidator } from '../../domain/validation.ts';
import type { BatchOutcome } from '../../shop/batch.ts';
import { AppError, type FieldError } from '../../errors.ts';
import { capitalized, writeBodies } from '../schemas/documents.ts';
import { kindOf, problemKinds, problemResponses, type ProblemKind } from '../schemas/problem.ts';
import { DOCUMENTED_BODY } from '../plugins/openapi.ts';
import { Customer, Product, Stock } from '../../domain/entities/index.ts';
import { documentNotFound, changedSince } from '../../data/documents.ts';
import { customerHasOrders } from '../../domain/deletion.ts';
import { expectedVersion } from '../conditional.ts';
import { writeScope } from '../../domain/access.ts';
import { authorize } from '../plugins/authentication.ts';
import { writeContextOf } from '../actor.ts';

const COLLECTIONS = [...BATCH_COLLECTIONS.keys()];
const OBJECT_ID = '6650f0c2a1b2c3d4e5f60718';

const IdSchema = () =>
  Type.String({ pattern: OBJECT_ID_PATTERN, description: 'The document (replace, patch, delete).' });
const IfMatchSchema = () =>
  Type.String({
    pattern: '^\\s*("\\d{1,15}"|\\*)\\s*$',
    description: 'replace, patch, delete: as the If-Match header, an ETag such as "3" (else 412).',
  });

/** The shape every operation must have, checked before checkOperation looks at what its op needs. */
const OperationShape = Type.Object(
  {
    op: Type.Enum(BATCH_OPS, { description: 'What to do.' }),
    collection: Type.Enum(COLLECTIONS, {
      description: `Where: ${[...BATCH_COLLECTIONS].map(([name, ops]) => `${name} (${ops.join(', ')})`).join('; ')}.`,
    }),
    id: Type.Optional(IdSchema()),
    // Open objects here; checkOperation validates them against the collection's schemas.
    document: Type.Optional(
      Type.Unsafe<Record<string, unknown>>(
        Type.Object(
          {},
          {
            additionalProperties: true,
            description: "insert, replace: the collection's Input schema (e.g. ProductInput).",
          },
        ),
      ),
    ),
    patch: Type.Optional(
      Type.Unsafe<Record<string, Json>>(
        Type.Object(
          {},
          {
            additionalProperties: true,
            description: "patch: a JSON Merge Patch, the collection's Patch schema (e.g. ProductPatch).",
          },
        ),
      ),
    ),
    ifMatch: Type.Optional(IfMatchSchema()),
  },
  { additionalProperties: false },
);
type OperationShape = Static<typeof OperationShape>;

function schemaNameOf(collection: string): string {
  const entity = (ENTITIES as readonly Entity[]).find((declared) => declared.collection === collection);
  if (entity === undefined) throw new Error(`the batch names ${collection}, which is no entity's collection`);
  return entity.schemaName;
}
const collectionsAllowing = (op: BatchOperation['op']) =>
  [...BATCH_COLLECTIONS].filter(([, ops]) => ops.includes(op)).map(([collection]) => collection);

/** What each op carries besides op and collection, for one collection: [members, required]. */
function membersOf(op: BatchOperation['op'], collection: string): [Record<string, TSchema>, string[]] {
  const name = schemaNameOf(collection);
  switch (op) {
    case 'insert':
      return [{ document: Type.Ref(`${name}Input`) }, ['document']];
    case 'replace':
      return [{ id: IdSchema(), document: Type.Ref(`${name}Input`), ifMatch: IfMatchSchema() }, ['id', 'document']];
    case 'patch':
      return [{ id: IdSchema(), patch: Type.Ref(`${name}Patch`), ifMatch: IfMatchSchema() }, ['id', 'patch']];
    case 'delete':
      return [{ id: IdSchema(), ifMatch: IfMatchSchema() }, ['id']];
  }
}

const OP_SUMMARY: Record<BatchOperation['op'], string> = {
  insert: 'Inserts the document, as POST to the collection would.',
  replace: 'Replaces the document, as PUT would (ifMatch as its If-Match).',
  patch: 'Merge-patches the document, as PATCH would (ifMatch as its If-Match).',
  delete:
    'Deletes the document as DELETE would, following the rules of its collection (a product that orders or stock items refer to ' +
    'is archived).',
};

/**
 * One component per op (BatchInsert...): for a delete, one schema; for the others, one per
 * collection, since the document or patch is that collection's.
 */
const opSchemas = BATCH_OPS.map((op) => {
  const $id = `Batch${capitalized(op)}`;
  const variant = ([first = '', ...others]: string[]) => {
    const [members, required] = membersOf(op, first);
    return Type.Object(
      {
        op: Type.Literal(op),
        collection:
          others.length === 0 ? Type.Literal(first) : Type.Unsafe<string>({ type: 'string', enum: [first, ...others] }),
        ...members,
      },
      { required: ['op', 'collection', ...required], additionalProperties: false },
    );
  };
  const collections = collectionsAllowing(op);
  const schema =
    op === 'delete' ? variant(collections) : { oneOf: collections.map((collection) => variant([collection])) };
  return { ...schema, $id, description: OP_SUMMARY[op] };
});

const BatchOperationSchema = {
  $id: 'BatchOperation',
  description: 'One write, validated as its single route validates it; its op says which members it has.',
  oneOf: opSchemas.map((schema) => Type.Ref(schema.$id)),
};

const productExample = Product.example;
const stockExample = { ...Stock.example, warehouse: 'BER-1', available: 40 };
const { phone: _phone, ...patchedCustomer } = Customer.example;
const requestExample = {
  operations: [
    { op: 'insert', collection: 'products', document: productExample },
    { op: 'insert', collection: 'stock', document: stockExample },
    { op: 'patch', collection: 'customers', id: OBJECT_ID, patch: { phone: null }, ifMatch: '"2"' },
    { op: 'delete', collection: 'products', id: '6650f0c2a1b2c3d4e5f60719' },
  ],
};

/** The request as validated: its shape here, then checkOperation per operation. */
const BatchRequestShape = Type.Object(
  { operations: Type.Array(OperationShape, { minItems: 1, maxItems: BATCH_MAX_OPERATIONS }) },
  { additionalProperties: false },
);

const BatchRequestSchema = Type.Object(
  {
    operations: Type.Array(Type.Ref('BatchOperation'), {
      minItems: 1,
      maxItems: BATCH_MAX_OPERATIONS,
      description:
        `1 to ${BATCH_MAX_OPERATIONS} operations, applied in order: ` + 'a later one sees what the earlier ones wrote.',
    }),
  },
  { $id: 'BatchRequest', additionalProperties: false, examples: [requestExample] },
);

const BatchResultSchema = Type.Object(
  {
    index: Type.Integer({ minimum: 0, description: 'Position of the operation in the request.' }),
    op: Type.Enum(BATCH_OPS),
    status: Type.Integer({
      description:
        'What the single route would have answered: 201 inserted, 200 replaced, patched or archived, 204 deleted.',
    }),
    id: Type.String({ pattern: OBJECT_ID_PATTERN }),
    version: Type.Integer({
      minimum: 1,
      description: 'The version written (for a deletion, the version deleted); its ETag is "<version>".',
    }),
    document: Type.Optional(
      Type.Object(
        {},
        {
          additionalProperties: true,
          description: 'The document as written (not on deletion): a Product, Customer or StockItem.',
        },
      ),
    ),
  },
  { $id: 'BatchResult', additionalProperties: false },
);

const stamp = { createdAt: '2026-11-25T09:30:00.000Z', updatedAt: '2026-11-25T09:30:00.000Z' };
const BatchResponseSchema = Type.Object(
  { results: Type.Array(Type.Ref('BatchResult'), { description: 'One per operation, in request order.' }) },
  {
    $id: 'BatchResponse',
    additionalProperties: false,
    examples: [
      {
        results: [
          {
            index: 0,
            op: 'insert',
            status: 201,
            id: '6650f0c2a1b2c3d4e5f60720',
            version: 1,
            document: { id: '6650f0c2a1b2c3d4e5f60720', ...productExample, version: 1, ...stamp },
          },
          {
            index: 1,
            op: 'insert',
            status: 201,
            id: '6650f0c2a1b2c3d4e5f60721',
            version: 1,
            document: {
              id: '6650f0c2a1b2c3d4e5f60721',
              ...stockExample,
              ...Stock.serverDefaults,
              version: 1,
              ...stamp,
            },
          },
          {
            index: 2,
            op: 'patch',
            status: 200,
            id: OBJECT_ID,
            version: 3,
            document: {
              id: OBJECT_ID,
              ...patchedCustomer,
              ...Customer.serverExample,
              version: 3,
              createdAt: '2026-11-20T10:00:00.000Z',
              updatedAt: stamp.updatedAt,
            },
          },
          { index: 3, op: 'delete', status: 204, id: '6650f0c2a1b2c3d4e5f60719', version: 4 },
        ],
      },
    ],
  },
);

const duplicateExample = failedOperation(
  new AppError(409, 'duplicate', 'Conflict', {
    detail: 'A product with this sku already exists.',
    extensions: { errors: [{ in: 'body', pointer: '/sku', message: 'is already taken' }] },
  }),
  3,
  { op: 'insert', collection: 'products', document: {} },
);
const patchInProducts = { op: 'patch', collection: 'products', id: OBJECT_ID, patch: {} } as const;
const notFoundKinds = [
  kindOf(
    failedOperation(documentNotFound('product', OBJECT_ID), 1, patchInProducts),
    'the document of an operation does not exist.',
  ),
];
const preconditionKinds = [
  kindOf(
    failedOperation(changedSince('product', OBJECT_ID, 3), 1, patchInProducts),
    "the document is no longer at the version the operation's ifMatch names.",
  ),
];
const conflictKinds: ProblemKind[] = [
  {
    code: duplicateExample.code,
    title: duplicateExample.title,
    when: 'an operation would duplicate a unique value; `errors` points into it.',
    detail: duplicateExample.message,
    extensions: duplicateExample.extensions,
  },
  kindOf(
    failedOperation(customerHasOrders(), 0, { op: 'delete', collection: 'customers', id: OBJECT_ID }),
    'a deletion its collection refuses (also `stock-reserved`), or `concurrent-modification`.',
  ),
];

interface Checks {
  input: (value: unknown) => FieldError[];
  patch: (value: unknown) => FieldError[];
}

/** The up-front checks of one operation, with pointers into the batch request. */
function checkOperation(raw: OperationShape, index: number, checks: Map<string, Checks>): FieldError[] {
  const at = (pointer: string) => `/operations/${index}${pointer}`;
  const { collection, op } = raw;
  const allowed = BATCH_COLLECTIONS.get(collection) ?? [];
  const check = checks.get(collection);
  if (check === undefined || !allowed.includes(op)) {
    return [
      {
        in: 'body',
        pointer: at('/op'),
        message: `${collection} does not allow ${op} (allowed: ${allowed.join(', ')})`,
      },
    ];
  }
  const wanted = {
    insert: ['document'],
    replace: ['id', 'document', 'ifMatch'],
    patch: ['id', 'patch', 'ifMatch'],
    delete: ['id', 'ifMatch'],
  }[op];
  const required = { insert: ['document'], replace: ['id', 'document'], patch: ['id', 'patch'], delete: ['id'] }[op];
  const errors: FieldError[] = [];
  for (const name of ['id', 'document', 'patch', 'ifMatch'] as const) {
    if (raw[name] !== undefined && !wanted.includes(name))
      errors.push({ in: 'body', pointer: at(`/${name}`), message: `is not allowed in ${op}` });
    if (raw[name] === undefined && required.includes(name))
      errors.push({ in: 'body', pointer: at(`/${name}`), message: `is required in ${op}` });
  }
  const { input, patch } = check;
  const prefixed = (found: FieldError[], member: string) =>
    found.map((e) => ({ ...e, pointer: at(`/${member}${e.pointer}`) }));
  if (raw.document !== undefined && wanted.includes('document'))
    errors.push(...prefixed(input(raw.document), 'document'));
  if (raw.patch !== undefined && wanted.includes('patch')) errors.push(...prefixed(patch(raw.patch), 'patch'));
  return errors;
}

/** An operation checkOperation accepted: the members its op requires are there. */
function toOperation(raw: OperationShape): BatchOperation {
  const { collection, id = '', document = {}, patch = {} } = raw;
  const version = expectedVersion(raw.ifMatch);
  const conditional = version === undefined ? {} : { expectedVersion: version };
  switch (raw.op) {
    case 'insert':
      return { op: 'insert', collection, document };
    case 'replace':
      return { op: 'replace', collection, id, document, ...conditional };
    case 'patch':
      return { op: 'patch', collection, id, patch, ...conditional };
    case 'delete':
      return { op: 'delete', collection, id, ...conditional };
  }
}

const STATUS: Record<BatchOutcome['action'], number> = {
  inserted: 201,
  replaced: 200,
  patched: 200,
  archived: 200,
  deleted: 204,
};

const batchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of opSchemas) app.addSchema(schema);
  app.addSchema(BatchOperationSchema);
  app.addSchema(BatchRequestSchema);
  app.addSchema(BatchResultSchema);
  app.addSchema(BatchResponseSchema);

  // The same schemas as the single routes' bodies, compiled once, without their $ids: they are
  // registered with Fastify's own validator already.
  const checks = new Map<string, Checks>();
  for (const entity of ENTITIES as readonly Entity[]) {
    if (!BATCH_COLLECTIONS.has(entity.collection)) continue;
    const bodies = writeBodies(entity);
    const { $id: _input, examples: _examples, ...input } = bodies.input;
    const { $id: _patch, ...patch } = bodies.patch;
    checks.set(entity.collection, {
      input: compileValidator(input, 'body', { applyDefaults: true }),
      patch: compileValidator(patch),
    });
  }

  app.post(
    '',
    {
      // Any valid key may call it; each operation needs the write scope of its collection.
      config: { scopes: [], expensive: true },
      schema: {
        tags: ['batch'],
        operationId: 'runBatch',
        summary: 'Apply several writes at once, all or nothing',
        description:
          `Inserts, replaces, merge-patches and deletes documents of ${COLLECTIONS.join(', ')} ` +
          '(orders change only through their workflow), ' +
          `1 to ${BATCH_MAX_OPERATIONS} operations in one transaction. ` +
          'Every operation is validated first, as its single route would validate it; any invalid one is a 400 ' +
          'listing every invalid value with pointers into this request, and nothing is written. ' +
          'Then they are applied in order; the first that fails aborts them all, and the answer is the problem ' +
          'its single route would give (404, 409, 412, 400) with `failedOperation: { index, op, collection }`. ' +
          'Nothing is written unless everything is. ' +
          'The key needs the write scope of every collection the operations touch (403 names the missing ones).',
        body: BatchRequestShape,
        [DOCUMENTED_BODY]: 'BatchRequest',
        response: {
          200: { description: 'Every operation was applied.', ...Type.Ref('BatchResponse') },
          ...problemResponses(400, 413, 415, 500, 503),
          ...problemKinds(
            404,
            'An operation names a document that does not exist; nothing was written. `failedOperation` names it:',
            notFoundKinds,
          ),
          ...problemKinds(
            412,
            "An operation's ifMatch does not hold; nothing was written. `failedOperation` names it:",
            preconditionKinds,
          ),
          ...problemKinds(
            409,
            'An operation was refused; nothing was written. `failedOperation` names it:',
            conflictKinds,
          ),
        },
      },
    },
    async (request) => {
      const raws = request.body.operations;
      authorize(request, [...new Set(raws.map((raw) => writeScope(raw.collection)))]);
      const errors = raws.flatMap((raw, index) => checkOperation(raw, index, checks));
      if (errors.length > 0) throw AppError.validation(errors);
      const operations = raws.map(toOperation);
      const outcomes = await app.shop.batch.apply(operations, writeContextOf(request));
      return {
        results: operations.map(({ collection, op }, index) => {
          const outcome = outcomes[index];
          if (outcome === undefined) throw new Error(`the batch answered no outcome for operation ${index}`);
          const { action, document } = outcome;
          const resource = app.stores.repositoryOf(collection).toResource(document);
          return {
            index,
            op,
            status: STATUS[action],
            id: resource.id,
            version: document.version,
            // Plain JSON: the schema leaves the document open, so nothing types its dates and ids.
            ...(action !== 'deleted' && { document: JSON.parse(JSON.stringify(resource)) as unknown }),
          };
        }),
      };
    },
  );
};

export default batchRoutes;
