// The kinds of problem whose documents carry extension members, each with a schema of its own:
// the base Problem with `type` fixed to the kind's URN and its members required, so a client that
// switches on `type` knows what else the document holds. Registered as components of the OpenAPI
// document and named in the descriptions of the responses that carry them.

import { Type, type TProperties, type TSchema } from 'typebox';
import { SCOPES } from '../../domain/access.ts';
import { BATCH_COLLECTIONS, BATCH_OPS } from '../../domain/batch.ts';
import { ORDER_STATUSES } from '../../domain/entities/order.ts';
import { PRODUCT_STATUSES } from '../../domain/entities/product.ts';
import { ORDER_ACTIONS } from '../../domain/orders.ts';
import { ObjectIdString, Sku, WarehouseCode, Currency } from '../../domain/types.ts';

const stringEnum = (values: readonly string[], description?: string) =>
  Type.Unsafe<string>({ type: 'string', enum: [...values], ...(description && { description }) });

const FieldErrors = (description: string) => Type.Array(Type.Ref('FieldError'), { minItems: 1, description });

interface ProblemTypeDeclaration {
  /** Component name of its schema. */
  schema: string;
  description: string;
  members: TProperties;
}

/** Kinds of problem with extension members, by code (the last part of their type URN). */
const PROBLEM_TYPES: Record<string, ProblemTypeDeclaration> = {
  'validation-failed': {
    schema: 'ValidationProblem',
    description: 'A request with invalid values (400): `errors` points at each one.',
    members: { errors: FieldErrors('Every invalid value, where it is and what is wrong with it.') },
  },
  duplicate: {
    schema: 'DuplicateProblem',
    description: 'A write that would duplicate a unique value (409): `errors` points at the fields.',
    members: { errors: FieldErrors('The fields whose values are taken.') },
  },
  'invalid-cursor': {
    schema: 'InvalidCursorProblem',
    description: 'A list cursor that is malformed, tampered with or from another query (400).',
    members: { errors: FieldErrors('Points at the cursor parameter.') },
  },
  'invalid-position': {
    schema: 'InvalidPositionProblem',
    description: 'A change-feed position (`after` or Last-Event-ID) this service did not give out, or altered (400).',
    members: { errors: FieldErrors('Points at the parameter or header that carried the position.') },
  },
  'position-expired': {
    schema: 'PositionExpiredProblem',
    description: "A change-feed position older than MongoDB's history (410): `detail` says how to resynchronise.",
    members: { errors: FieldErrors('Points at the parameter or header that carried the position.') },
  },
  'insufficient-scope': {
    schema: 'InsufficientScopeProblem',
    description: 'The API key lacks scopes the request needs (403).',
    members: {
      missingScopes: Type.Array(stringEnum(SCOPES), {
        minItems: 1,
        description: 'The scopes the key would need in addition.',
      }),
    },
  },
  'migrations-pending': {
    schema: 'MigrationsPendingProblem',
    description: 'Readiness refused because migrations are not applied (503).',
    members: {
      pendingMigrations: Type.Array(Type.String(), {
        minItems: 1,
        description: 'File names of the pending migrations, oldest first.',
      }),
    },
  },
  'insufficient-stock': {
    schema: 'InsufficientStockProblem',
    description: 'Fewer available units than asked for (409): `shortages` lists every short SKU.',
    members: {
      shortages: Type.Array(
        Type.Object(
          {
            sku: Sku(),
            warehouse: WarehouseCode(),
            requested: Type.Integer({ minimum: 1, description: 'Units asked for.' }),
            available: Type.Integer({
              minimum: 0,
              description: 'Units available when the request was refused (0 when the warehouse has no such item).',
            }),
          },
          { additionalProperties: false },
        ),
        { minItems: 1 },
      ),
    },
  },
  'limit-exceeded': {
    schema: 'LimitExceededProblem',
    description: 'A write that would take a field past its declared maximum (409).',
    members: {
      field: Type.String({ description: 'Dotted path of the field in the stored document, e.g. available.' }),
      limit: Type.Integer({ description: 'Its maximum.' }),
      value: Type.Integer({ description: 'What it would have held after the write.' }),
      documentId: Type.Optional(
        ObjectIdString({ description: 'The document the write would have changed, when known.' }),
      ),
    },
  },
  'unknown-product': {
    schema: 'UnknownProductProblem',
    description: 'Stock for a SKU that no product has (409).',
    members: { sku: Sku() },
  },
  'unknown-customer': {
    schema: 'UnknownCustomerProblem',
    description: 'An order for a customer that does not exist (409).',
    members: { customerId: ObjectIdString({ description: 'The id no customer has.' }) },
  },
  'products-unavailable': {
    schema: 'ProductsUnavailableProblem',
    description: 'An order for SKUs that are not active products (409).',
    members: {
      products: Type.Array(
        Type.Object(
          {
            sku: Sku(),
            reason: stringEnum(
              ['unknown', 'inactive'],
              'unknown: no product has the SKU; inactive: its status is not active.',
            ),
            status: Type.Optional(stringEnum(PRODUCT_STATUSES, 'The status of an inactive product.')),
          },
          { additionalProperties: false },
        ),
        { minItems: 1 },
      ),
    },
  },
  'mixed-currencies': {
    schema: 'MixedCurrenciesProblem',
    description: 'An order whose products are priced in more than one currency (409).',
    members: {
      currencies: Type.Array(Type.Object({ sku: Sku(), currency: Currency() }, { additionalProperties: false }), {
        minItems: 2,
        description: "Each line's SKU and the currency of its price.",
      }),
    },
  },
  'invalid-transition': {
    schema: 'InvalidTransitionProblem',
    description: 'An order action its status does not allow (409).',
    members: {
      currentStatus: stringEnum(ORDER_STATUSES, "The order's status."),
      allowedFrom: Type.Array(stringEnum(ORDER_STATUSES), {
        minItems: 1,
        description: 'The statuses the action is allowed from.',
      }),
      allowedActions: Type.Array(stringEnum(ORDER_ACTIONS), {
        description: 'The actions the order allows now (none once delivered or cancelled).',
      }),
    },
  },
};

/** The schema name of a kind of problem with extension members, or undefined. */
export const problemSchemaOf = (code: string): string | undefined => PROBLEM_TYPES[code]?.schema;

/** Where a batch operation failed: added to whatever problem its single route would give. */
const FailedOperationSchema = Type.Object(
  {
    index: Type.Integer({ minimum: 0, description: 'Position of the operation in the request.' }),
    op: stringEnum(BATCH_OPS),
    collection: stringEnum([...BATCH_COLLECTIONS.keys()]),
  },
  {
    $id: 'FailedOperation',
    additionalProperties: false,
    description: 'The batch operation that failed; none was applied.',
  },
);
export const BATCH_FAILURE_SCHEMA = 'BatchFailureProblem';

/** Every schema of this module, ready for addSchema: the kinds, FailedOperation and BatchFailureProblem. */
export function problemTypeSchemas(urnOf: (code: string) => string): TSchema[] {
  const kinds = Object.entries(PROBLEM_TYPES).map(([code, { schema, description, members }]) => ({
    $id: schema,
    description: `\`${urnOf(code)}\`: ${description}`,
    allOf: [Type.Ref('Problem'), Type.Object({ type: Type.Literal(urnOf(code)), ...members })],
  }));
  const batchFailure = {
    $id: BATCH_FAILURE_SCHEMA,
    description:
      "A problem of the batch route: the problem the failed operation's single route would give, naming the operation.",
    allOf: [Type.Ref('Problem'), Type.Object({ failedOperation: Type.Ref('FailedOperation') })],
  };
  return [...kinds, FailedOperationSchema, batchFailure];
}
