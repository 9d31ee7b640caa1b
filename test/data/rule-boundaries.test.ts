// Every rule an entity declares (lengths, ranges, patterns, list sizes, property counts, unique
// items, enums) means the same to the three places that enforce it: the API's JSON Schema (Ajv,
// with the options Fastify uses; for the fields clients write, also the real route), the Mongoose
// model and the collection's $jsonSchema validator in MongoDB. For each rule the test generates
// values at its bound and one past it (strings of ASCII, two-byte and astral characters; near
// misses of each pattern: a final line break, other cases, each length its quantifiers allow and
// one more) and requires every layer to give each value the same verdict.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import type { Entity } from '../../src/domain/entity.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import { compileValidator } from '../../src/domain/validation.ts';
import { compileCaster } from '../../src/data/casting.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';

type JsonSchema = Record<string, any>;
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = (string | number)[];

const { ObjectId } = mongoose.Types;

/** One declared rule: a keyword and its bound, on the value at `at` (on its member names when `onNames`). */
interface Rule {
  at: Path;
  keyword: string;
  bound: unknown;
  schema: JsonSchema;
  onNames?: boolean;
}

const STRING_RULES = ['minLength', 'maxLength', 'pattern'] as const;
const NUMBER_RULES = ['minimum', 'maximum'] as const;
const ARRAY_RULES = ['minItems', 'maxItems', 'uniqueItems'] as const;
/** Strings stored as other BSON types: their spelling rules are the JSON form's, not the stored value's. */
const STORED_AS_OTHER_TYPES = new Set(['date-time', 'objectid']);

/** Every rule of a stored-document schema, with the path of the value it constrains. */
function rulesOf(schema: JsonSchema, sample: Json | undefined, at: Path = []): Rule[] {
  const rules: Rule[] = [];
  for (const branch of (schema.anyOf ?? []) as JsonSchema[]) rules.push(...rulesOf(branch, sample, at));
  if (schema.enum !== undefined) rules.push({ at, keyword: 'enum', bound: schema.enum, schema });
  switch (schema.type) {
    case 'object': {
      for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) {
        // _id and the audit stamp are the service's own, never a value a client sends.
        if (name !== '_id' && name !== '_audit') rules.push(...rulesOf(child, valueAt(sample, [name]), [...at, name]));
      }
      for (const [pattern, child] of Object.entries((schema.patternProperties ?? {}) as Record<string, JsonSchema>)) {
        const name = Object.keys((sample ?? {}) as object)[0] ?? 'probe';
        rules.push({ at, keyword: 'pattern', bound: pattern, schema, onNames: true });
        rules.push(...rulesOf(child, valueAt(sample, [name]), [...at, name]));
      }
      for (const keyword of ['minProperties', 'maxProperties']) {
        if (schema[keyword] !== undefined) rules.push({ at, keyword, bound: schema[keyword], schema });
      }
      break;
    }
    case 'array':
      for (const keyword of ARRAY_RULES)
        if (schema[keyword] !== undefined) rules.push({ at, keyword, bound: schema[keyword], schema });
      rules.push(...rulesOf(schema.items as JsonSchema, valueAt(sample, [0]), [...at, 0]));
      break;
    case 'string':
      if (STORED_AS_OTHER_TYPES.has(schema.format)) break;
      for (const keyword of STRING_RULES)
        if (schema[keyword] !== undefined) rules.push({ at, keyword, bound: schema[keyword], schema });
      break;
    case 'integer':
    case 'number':
      for (const keyword of NUMBER_RULES)
        if (schema[keyword] !== undefined) rules.push({ at, keyword, bound: schema[keyword], schema });
      break;
  }
  return rules;
}

function valueAt(value: Json | undefined, path: Path): Json | undefined {
  let current: Json | undefined = value;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, Json>)[segment as string];
  }
  return current;
}

/** Sets the value at `path`, making the containers on the way what the path needs. */
function setAt(document: Record<string, Json>, path: Path, value: Json): void {
  let container: Record<string | number, Json> = document;
  path.forEach((segment, index) => {
    if (index === path.length - 1) {
      container[segment] = value;
      return;
    }
    const wantsArray = typeof path[index + 1] === 'number';
    const next = container[segment];
    if (next === null || typeof next !== 'object' || Array.isArray(next) !== wantsArray)
      container[segment] = wantsArray ? [] : {};
    container = container[segment] as Record<string | number, Json>;
  });
}

const FILLERS = { ascii: 'a', 'two-byte': 'é', astral: '😀' } as const;
const codePoints = (text: string) => Array.from(text);

/** `sample` brought to `length` characters: filler in front of it, or the filler alone when shorter. */
function padded(sample: string, length: number, filler: string): string {
  const sampleLength = codePoints(sample).length;
  return length >= sampleLength ? filler.repeat(length - sampleLength) + sample : filler.repeat(length);
}

/** `sample` cut or stretched (its last character repeated) to `length` characters. */
function resized(sample: string, length: number): string {
  const chars = codePoints(sample);
  if (length <= chars.length) return chars.slice(0, length).join('');
  return sample + (chars.at(-1) ?? 'a').repeat(length - chars.length);
}

/** Values at and past the rule's bound, and near misses of a pattern. */
function valuesFor(rule: Rule, sample: Json | undefined): Json[] {
  const { keyword, bound } = rule;
  const text = typeof sample === 'string' ? sample : ((rule.schema.examples as string[] | undefined)?.[0] ?? '');
  switch (keyword) {
    case 'maxLength':
    case 'minLength': {
      const limit = bound as number;
      const lengths = keyword === 'maxLength' ? [limit, limit + 1] : [limit, limit - 1].filter((length) => length >= 0);
      return Object.values(FILLERS).flatMap((filler) => lengths.map((length) => padded(text, length, filler)));
    }
    case 'pattern': {
      const name = rule.onNames ? (Object.keys((sample ?? {}) as object)[0] ?? 'probe') : text;
      const quantifiers = [...String(bound).matchAll(/\{(\d+)(?:,(\d+))?\}/g)]
        .flatMap((found) => [found[1], found[2]])
        .filter(Boolean)
        .map(Number);
      const lengths = [
        0,
        1,
        codePoints(name).length - 1,
        codePoints(name).length + 1,
        ...quantifiers.flatMap((q) => [q - 1, q, q + 1, q + 2, q + 3]),
      ];
      const names = [
        name,
        `${name}\n`,
        `\n${name}`,
        `${name}\r`,
        `${name} `,
        name.toLowerCase(),
        name.toUpperCase(),
        `${name}é`,
        `${name}😀`,
        ...lengths.filter((length) => length >= 0).map((length) => resized(name, length)),
      ];
      if (!rule.onNames) return [...new Set(names)];
      const member = valueAt(sample, [Object.keys((sample ?? {}) as object)[0] ?? 'probe']) ?? 'x';
      return [...new Set(names)].map((candidate) => ({ [candidate]: member }));
    }
    case 'minimum':
      return [bound as number, (bound as number) - 1];
    case 'maximum':
      return [bound as number, (bound as number) + 1];
    case 'enum': {
      const values = bound as string[];
      return [...values, `${values[0]}x`, values[0]!.toUpperCase(), ''];
    }
    case 'minItems':
    case 'maxItems': {
      const limit = bound as number;
      const sizes = keyword === 'maxItems' ? [limit, limit + 1] : [limit, limit - 1].filter((size) => size >= 0);
      const item = Array.isArray(sample) ? sample[0] : sample;
      // Distinct strings, so a list of unique items stays unique at any size.
      return sizes.map((size) =>
        Array.from({ length: size }, (_, i) =>
          typeof item === 'string' ? `${item}${i}` : structuredClone(item ?? null),
        ),
      );
    }
    case 'uniqueItems': {
      const item = Array.isArray(sample) ? sample[0] : sample;
      return [[item ?? null], [item ?? null, item ?? null]];
    }
    case 'minProperties':
    case 'maxProperties': {
      const limit = bound as number;
      const sizes = keyword === 'maxProperties' ? [limit, limit + 1] : [limit, limit - 1].filter((size) => size >= 0);
      const name = Object.keys((sample ?? {}) as object)[0] ?? 'probe';
      const member = valueAt(sample, [name]) ?? 'x';
      return sizes.map((size) => Object.fromEntries(Array.from({ length: size }, (_, i) => [`${name}${i}`, member])));
    }
    default:
      throw new Error(`no values for ${keyword}`);
  }
}

type Verdict = 'accepted' | 'refused';

interface Layers {
  /** The resource's JSON Schema, as the API documents and Ajv checks it. */
  ajv(resource: Record<string, Json>): Verdict;
  /** PUT of the writable fields to a document that does not exist: 400 when refused, 404 when accepted. */
  route?(body: Record<string, Json>): Promise<Verdict>;
  mongoose(stored: Record<string, unknown>): Promise<Verdict>;
  mongodb(stored: Record<string, unknown>): Promise<Verdict>;
}

interface Figures {
  rules: Record<string, number>;
  values: { ajv: number; route: number; mongoose: number; mongodb: number };
}

describe('every declared rule means the same to the API, the Mongoose model and the MongoDB validator', () => {
  let t: TestApp;
  const figures: Figures = { rules: {}, values: { ajv: 0, route: 0, mongoose: 0, mongodb: 0 } };

  beforeAll(async () => {
    t = await buildTestApp('rule_boundaries');
    await waitForDatabase(t.app);
  });
  afterAll(async () => {
    const rules = Object.values(figures.rules).reduce((sum, count) => sum + count, 0);
    console.info(
      `rule boundaries: ${rules} rules (${Object.entries(figures.rules)
        .map(([keyword, count]) => `${keyword} ${count}`)
        .join(', ')}); values per layer: ${JSON.stringify(figures.values)}`,
    );
    await t.app.close();
  });

  function layersOf(entity: Entity): Layers {
    const checkResource = compileValidator(entity.resource);
    const model = t.app.stores.repositoryOf(entity.collection).model;
    const collection = () => t.app.db.connection.db!.collection(entity.collection);
    return {
      ajv: (resource) => (checkResource(resource).length === 0 ? 'accepted' : 'refused'),
      ...(entity.operations.replace && {
        route: async (body) => {
          const res = await t.app.inject({
            method: 'PUT',
            url: `/v1/${entity.collection}/${new ObjectId().toHexString()}`,
            payload: body,
          });
          if (res.statusCode !== 400 && res.statusCode !== 404)
            throw new Error(`PUT answered ${res.statusCode}: ${res.body}`);
          return res.statusCode === 404 ? 'accepted' : 'refused';
        },
      }),
      mongoose: async (stored) => {
        try {
          await new model(stored).validate();
          return 'accepted';
        } catch (error) {
          if (error instanceof mongoose.Error.ValidationError) return 'refused';
          throw error;
        }
      },
      mongodb: async (stored) => {
        try {
          await collection().insertOne(stored);
        } catch (error) {
          if ((error as { code?: number }).code === 121) return 'refused';
          throw error;
        }
        await collection().deleteOne({ _id: stored._id as InstanceType<typeof ObjectId> });
        return 'accepted';
      },
    };
  }

  it.each(ENTITIES.map((entity) => [entity.collection, entity] as [string, Entity]))('%s', async (_name, entity) => {
    const base = {
      ...structuredClone(entity.example),
      ...structuredClone(entity.serverExample),
      version: 1,
      createdAt: '2026-11-20T10:00:00.000Z',
      updatedAt: '2026-11-25T09:30:00.000Z',
    } as Record<string, Json>;
    const toStored = compileCaster(entity.stored);
    const writable = Object.keys(entity.writable.properties);
    const layers = layersOf(entity);
    const rules = rulesOf(entity.stored, base);
    expect(rules.length).toBeGreaterThan(0);

    /** Every layer's verdict on the base document with `value` at the rule's place. */
    async function verdicts(rule: Rule, value: Json): Promise<Record<string, Verdict>> {
      const document = structuredClone(base);
      if (rule.at.length === 0) Object.assign(document, value);
      else setAt(document, rule.at, value);
      const stored = toStored({ _id: new ObjectId(), ...document }) as Record<string, unknown>;
      const found: Record<string, Verdict> = {
        ajv: layers.ajv({ id: new ObjectId().toHexString(), ...document }),
        mongoose: await layers.mongoose(stored),
        mongodb: await layers.mongodb(stored),
      };
      figures.values.ajv++;
      figures.values.mongoose++;
      figures.values.mongodb++;
      if (layers.route !== undefined && writable.includes(String(rule.at[0]))) {
        found.route = await layers.route(
          Object.fromEntries(
            writable.filter((name) => document[name] !== undefined).map((name) => [name, document[name]!]),
          ),
        );
        figures.values.route++;
      }
      return found;
    }

    const base_ = await verdicts({ at: [], keyword: 'base', bound: null, schema: {} }, {});
    expect(base_, 'the example document').toEqual(
      Object.fromEntries(Object.keys(base_).map((layer) => [layer, 'accepted'])),
    );

    const disagreements: string[] = [];
    const toothless: string[] = [];
    for (const rule of rules) {
      figures.rules[rule.keyword] = (figures.rules[rule.keyword] ?? 0) + 1;
      const label = `${entity.collection}.${rule.at.join('.') || '(document)'}${rule.onNames ? ' member names' : ''} ${rule.keyword} ${JSON.stringify(rule.bound)}`;
      const seen = new Set<Verdict>();
      for (const value of valuesFor(rule, valueAt(base, rule.at))) {
        const found = await verdicts(rule, value);
        const distinct = new Set(Object.values(found));
        if (distinct.size > 1)
          disagreements.push(`${label}: ${JSON.stringify(value).slice(0, 120)} → ${JSON.stringify(found)}`);
        else seen.add(Object.values(found)[0]!);
      }
      // A rule none of whose values any layer refused (or accepted) would prove nothing.
      if (seen.size < 2) toothless.push(label);
    }
    expect(disagreements).toEqual([]);
    expect(toothless).toEqual([]);
  });
});
