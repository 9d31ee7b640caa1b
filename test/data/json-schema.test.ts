// The TypeBox to $jsonSchema translation on its own; schema-drift and validator tests show that
// MongoDB accepts the result and enforces it.

import { describe, expect, it } from 'vitest';
import { Type, type TObject } from 'typebox';
import { toMongoJsonSchema, toPcrePattern } from '../../src/data/json-schema.ts';
import { DateTime, Money, ObjectIdString, Sku } from '../../src/domain/types.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';

const property = (schema: Parameters<typeof Type.Object>[0][string]) =>
  (toMongoJsonSchema(Type.Object({ value: schema })).properties as Record<string, unknown>).value;

describe('toMongoJsonSchema', () => {
  it('turns an object into bsonType object with required, properties and additionalProperties', () => {
    const schema = Type.Object(
      { a: Type.String(), b: Type.Optional(Type.Boolean()) },
      { additionalProperties: false, description: 'd', title: 't' },
    );
    expect(toMongoJsonSchema(schema)).toEqual({
      bsonType: 'object',
      required: ['a'],
      properties: { a: { bsonType: 'string' }, b: { bsonType: 'bool' } },
      additionalProperties: false,
      description: 'd',
      title: 't',
    });
  });

  it('leaves out additionalProperties when the object does not set it, and an empty required', () => {
    const converted = toMongoJsonSchema(Type.Object({ a: Type.Optional(Type.String()) }));
    expect(converted).toEqual({ bsonType: 'object', properties: { a: { bsonType: 'string' } } });
    expect(toMongoJsonSchema(Type.Object({}, { additionalProperties: false }))).toEqual({
      bsonType: 'object',
      properties: {},
      additionalProperties: false,
    });
  });

  it('keeps the length and pattern of strings, drops annotations and unchecked formats', () => {
    expect(
      property(
        Type.String({ minLength: 1, maxLength: 5, pattern: '^a', default: 'a', examples: ['a'], format: 'uri' }),
      ),
    ).toEqual({
      bsonType: 'string',
      minLength: 1,
      maxLength: 5,
      pattern: '^a',
    });
    expect(property(Sku())).toEqual({
      bsonType: 'string',
      pattern: '^[A-Z0-9][A-Z0-9-]{2,31}\\z',
      description: 'Stock-keeping unit: 3-32 upper-case letters, digits and dashes.',
    });
  });

  it("checks e-mail addresses with Ajv's own expression, spelled without its case-insensitive flag", () => {
    const converted = property(Type.String({ format: 'email', maxLength: 254 })) as { pattern: string };
    expect(converted).toEqual({
      bsonType: 'string',
      maxLength: 254,
      pattern: expect.stringMatching(/^\^\[a-zA-Z0-9.*\\z$/),
    });
    expect(() => property(Type.String({ format: 'email', pattern: '^a' }))).toThrow(
      /cannot be combined with format email/,
    );
  });

  it('stores date-time strings as dates and objectid strings as ObjectIds, without string keywords', () => {
    expect(property(DateTime({ description: 'when' }))).toEqual({ bsonType: 'date', description: 'when' });
    expect(property(ObjectIdString())).toEqual({ bsonType: 'objectId' });
  });

  it('stores integers as int or long, numbers as any numeric type, with their bounds', () => {
    expect(property(Type.Integer({ minimum: 0, maximum: 10, multipleOf: 2 }))).toEqual({
      bsonType: ['int', 'long'],
      minimum: 0,
      maximum: 10,
      multipleOf: 2,
    });
    expect(property(Type.Number({ minimum: -1 }))).toEqual({
      bsonType: ['int', 'long', 'double', 'decimal'],
      minimum: -1,
    });
  });

  it('writes exclusive bounds the draft 4 way', () => {
    expect(property(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }))).toEqual({
      bsonType: ['int', 'long', 'double', 'decimal'],
      minimum: 0,
      exclusiveMinimum: true,
      maximum: 1,
      exclusiveMaximum: true,
    });
  });

  it('turns enums and literals into enum, booleans into bool, null into null', () => {
    expect(property(Type.Enum(['a', 'b'], { default: 'a' }))).toEqual({ enum: ['a', 'b'] });
    expect(property(Type.Literal('x'))).toEqual({ bsonType: 'string', enum: ['x'] });
    expect(property(Type.Boolean({ default: false }))).toEqual({ bsonType: 'bool' });
    expect(property(Type.Null())).toEqual({ bsonType: 'null' });
  });

  it('converts arrays with their items and bounds', () => {
    expect(property(Type.Array(Type.Integer(), { minItems: 1, maxItems: 3, uniqueItems: true, default: [] }))).toEqual({
      bsonType: 'array',
      items: { bsonType: ['int', 'long'] },
      minItems: 1,
      maxItems: 3,
      uniqueItems: true,
    });
  });

  it('converts records into patternProperties on a closed object', () => {
    const record = Type.Record(Type.String({ pattern: '^[A-Z]{3}$' }), Type.Integer({ minimum: 0 }), {
      additionalProperties: false,
      maxProperties: 5,
    });
    expect(property(record)).toEqual({
      bsonType: 'object',
      patternProperties: { '^[A-Z]{3}\\z': { bsonType: ['int', 'long'], minimum: 0 } },
      additionalProperties: false,
      maxProperties: 5,
    });
  });

  it('converts unions into anyOf, nested objects recursively', () => {
    expect(property(Type.Union([Type.String({ maxLength: 2 }), Money('price')]))).toEqual({
      anyOf: [
        { bsonType: 'string', maxLength: 2 },
        {
          bsonType: 'object',
          required: ['amount', 'currency'],
          properties: {
            amount: {
              bsonType: ['int', 'long'],
              minimum: 0,
              maximum: 2_147_483_647,
              description: 'Amount in minor units (e.g. cents); at most 2^31-1, stored as a 32-bit integer.',
            },
            currency: { bsonType: 'string', pattern: '^[A-Z]{3}\\z', description: 'ISO 4217 currency code.' },
          },
          additionalProperties: false,
          description: 'price',
        },
      ],
    });
  });

  it("spells patterns as MongoDB's PCRE reads them with ECMAScript's meaning: an end anchor is \\z, escapes and classes stay", () => {
    expect(toPcrePattern('^[A-Z]{3}$')).toBe('^[A-Z]{3}\\z');
    expect(toPcrePattern('^\\+[1-9][0-9]{6,14}$')).toBe('^\\+[1-9][0-9]{6,14}\\z');
    expect(toPcrePattern('^a\\$[$]$')).toBe('^a\\$[$]\\z');
    expect(toPcrePattern('(a|b$)')).toBe('(a|b\\z)');
  });

  it('refuses patterns whose classes mean other characters in PCRE than in ECMAScript, naming where', () => {
    for (const pattern of ['^.$', '\\S', '^\\d+$', '\\w', '\\u00e9', '\\p{L}', '[\\s]']) {
      expect(() => property(Type.String({ pattern })), pattern).toThrow(/\$\.value.*pattern/);
    }
  });

  it('refuses what MongoDB cannot check instead of dropping it, naming where', () => {
    const raw = (properties: Record<string, unknown>) => ({ type: 'object', properties }) as unknown as TObject;
    expect(() => toMongoJsonSchema(raw({ a: { $ref: 'Other' } }))).toThrow(/\$\.a.*\$ref/);
    expect(() => toMongoJsonSchema(raw({ a: { type: 'string', format: 'ipv5' } }))).toThrow(/\$\.a.*format "ipv5"/);
    expect(() => toMongoJsonSchema(raw({ a: { type: 'array', prefixItems: [] } }))).toThrow(/prefixItems/);
    expect(() => toMongoJsonSchema(raw({ a: { type: 'bigint' } }))).toThrow(/"bigint" has no BSON type/);
  });

  it('gives every stored entity an objectId _id and BSON dates for its system fields', () => {
    for (const entity of ENTITIES) {
      const converted = toMongoJsonSchema(entity.stored) as {
        properties: Record<string, unknown>;
        required: string[];
        additionalProperties: boolean;
      };
      expect(converted.properties._id).toEqual({ bsonType: 'objectId' });
      expect(converted.properties.createdAt).toMatchObject({ bsonType: 'date' });
      expect(converted.properties.version).toMatchObject({ bsonType: ['int', 'long'], minimum: 1 });
      expect(converted.required).toEqual(expect.arrayContaining(['_id', 'version', 'createdAt', 'updatedAt']));
      expect(converted.additionalProperties).toBe(false);
    }
  });
});
