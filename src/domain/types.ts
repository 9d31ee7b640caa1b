// Building blocks shared by the entity declarations: identifiers, money, timestamps. Formats
// `date-time` and `objectid` mark the values stored as BSON dates and ObjectIds.

import { Type } from 'typebox';

export const OBJECT_ID_PATTERN = '^[0-9a-f]{24}$';

/** The id of a document (a MongoDB ObjectId in hex). */
export const ObjectIdString = (options: { description?: string } = {}) =>
  Type.String({ format: 'objectid', pattern: OBJECT_ID_PATTERN, examples: ['6650f0c2a1b2c3d4e5f60718'], ...options });

export const DateTime = (options: { description?: string } = {}) =>
  Type.String({ format: 'date-time', examples: ['2026-11-25T09:30:00.000Z'], ...options });

export const Sku = () =>
  Type.String({
    pattern: '^[A-Z0-9][A-Z0-9-]{2,31}$',
    description: 'Stock-keeping unit: 3-32 upper-case letters, digits and dashes.',
    examples: ['TSHIRT-RED-M'],
  });

export const Currency = () =>
  Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 currency code.', examples: ['EUR'] });

export const WarehouseCode = () =>
  Type.String({ pattern: '^[A-Z0-9][A-Z0-9-]{1,15}$', description: 'Warehouse code.', examples: ['AMS-1'] });

/** The largest amount of money: stored as a 32-bit integer. */
export const MAX_AMOUNT = 2_147_483_647;

/** An amount of money in minor units (cents), never a float. */
export const Money = (description: string) =>
  Type.Object(
    {
      amount: Type.Integer({
        minimum: 0,
        maximum: MAX_AMOUNT,
        description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
      }),
      currency: Currency(),
    },
    { additionalProperties: false, description },
  );

export const Quantity = (description: string) => Type.Integer({ minimum: 0, maximum: 1_000_000_000, description });
