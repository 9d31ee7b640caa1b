// Property-based contract test: for every operation of openapi/openapi.json, requests generated
// from the documented schemas are sent to the real app. A valid request never gets a 5xx or a 400,
// gets a status its operation documents, with the required headers and a body valid against the
// documented response schema; a valid request broken in exactly one way gets a 400 problem
// document and leaves the database as it was. The seed is printed so a failure can be replayed
// (CONTRACT_SEED=<seed>).

import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { OPENAPI_FILE } from '../../src/cli/openapi.ts';
import { OBJECT_ID_PATTERN } from '../../src/domain/types.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop } from '../helpers/shop.ts';

type Json = Record<string, any>;
type Operation = { path: string; method: string; operation: Json };
type GeneratedRequest = {
  pathParams: Record<string, string>;
  query: Record<string, unknown>;
  headers: Record<string, string>;
  body?: { type: string; value: unknown };
};

const SEED = Number(process.env.CONTRACT_SEED ?? Date.now() % 2 ** 31);
const VALID_RUNS = 30;
const INVALID_RUNS = 15;
// Statuses a valid request may get besides 2xx/304: references that do not exist, domain
// conflicts, preconditions, and an idempotency key reused with another body.
const ALLOWED_REFUSALS = new Set([404, 409, 412, 428, 422]);
const PROBLEM = 'application/problem+json';
/** Query parameters of a list that steer it rather than filter it (the description's limit counts filters only). */
const CONTROL_PARAMS = new Set(['sort', 'fields', 'limit', 'cursor', 'count', 'q']);

let spec: Json;
const skipped = new Set<string>();
const statuses = new Map<number, number>();
let validCases = 0;
let invalidCases = 0;

/** Values the seeded shop holds, offered next to random ones so requests reach real documents. */
const world = {
  ids: {} as Record<string, string[]>,
  skus: [] as string[],
  warehouses: ['WH-A', 'WH-B'],
  customerIds: [] as string[],
  /** The seeded documents by id, for the members a write must repeat. */
  documents: new Map<string, Json>(),
};

/** A drawn path or header value (a string, number or boolean) as the text it travels as. */
const asText = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));
const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

function resolve(schema: Json): Json {
  let current = schema;
  while (typeof current.$ref === 'string') {
    current = current.$ref
      .slice(2)
      .split('/')
      .map((s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((node: Json, key: string) => node[key], spec);
  }
  return current;
}

function operations(): Operation[] {
  return Object.entries(spec.paths as Record<string, Record<string, Json>>).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
  );
}

function contractAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addFormat('objectid', new RegExp(OBJECT_ID_PATTERN));
  ajv.addSchema(spec, 'openapi.json');
  return ajv;
}
let ajv: Ajv2020;
const validatorAt = (pointer: string) =>
  ajv.getSchema(`openapi.json#${pointer}`) ?? ajv.compile({ $ref: `openapi.json#${pointer}` });

const randomObjectId = fc.stringMatching(/^[0-9a-f]{24}$/);
const withSeeded = <T>(seeded: T[], generated: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  seeded.length === 0
    ? generated
    : fc.oneof({ arbitrary: fc.constantFrom(...seeded), weight: 3 }, { arbitrary: generated, weight: 1 });

/** Members whose name says they refer to seeded data get seeded values most of the time. */
function hinted(name: string | undefined, generated: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  if (name === 'sku') return withSeeded<unknown>(world.skus, generated);
  if (name === 'warehouse' || name === 'from' || name === 'to') return withSeeded<unknown>(world.warehouses, generated);
  if (name === 'customerId') return withSeeded<unknown>(world.customerIds, generated);
  // The seeded documents are at their first few versions: such ETags let conditional writes succeed.
  if (name === 'if-match' || name === 'if-none-match') return withSeeded<unknown>(['"1"', '"2"', '"3"'], generated);
  return generated;
}

/**
 * A fast-check arbitrary for the JSON Schema subset the contract uses. Returns undefined (and
 * records why) for a construct it cannot honour, so the member is left out rather than generated
 * wrong.
 */
function arbitrary(raw: Json, at: string, name?: string): fc.Arbitrary<unknown> | undefined {
  const schema = resolve(raw);
  if (schema.readOnly === true) return undefined;
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return hinted(name, fc.constantFrom(...schema.enum));
  const alternatives = (schema.oneOf ?? schema.anyOf) as Json[] | undefined;
  if (alternatives !== undefined) {
    const arbs = alternatives.map((alt, i) => arbitrary(alt, `${at}/${schema.oneOf ? 'oneOf' : 'anyOf'}/${i}`, name));
    const usable = arbs.filter((a): a is fc.Arbitrary<unknown> => a !== undefined);
    if (usable.length === 0) return undefined;
    // oneOf demands exactly one match: a value matching two alternatives is dropped by the caller's check.
    return fc.oneof(...usable);
  }
  if (schema.allOf !== undefined || schema.not !== undefined || schema.patternProperties !== undefined) {
    skipped.add(`${at}: allOf/not/patternProperties not generated`);
    return undefined;
  }
  switch (schema.type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
    case 'number': {
      const min = schema.minimum ?? schema.exclusiveMinimum ?? -1e6;
      const max = schema.maximum ?? schema.exclusiveMaximum ?? 1e6;
      const base =
        schema.type === 'integer'
          ? fc.integer({ min: Math.ceil(min), max: Math.floor(max) })
          : fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
      const bounded = base.filter(
        (n) =>
          (schema.exclusiveMinimum === undefined || n > schema.exclusiveMinimum) &&
          (schema.exclusiveMaximum === undefined || n < schema.exclusiveMaximum),
      );
      return hinted(name, bounded);
    }
    case 'string':
      return hinted(name, stringArbitrary(schema, at));
    case 'array': {
      const items = schema.items === undefined ? fc.anything() : arbitrary(schema.items, `${at}/items`, name);
      if (items === undefined) return schema.minItems > 0 ? undefined : fc.constant([]);
      const constraints = { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 5, 5) };
      if (constraints.minLength > constraints.maxLength) constraints.maxLength = constraints.minLength;
      return schema.uniqueItems
        ? fc.uniqueArray(items, { ...constraints, selector: (v) => JSON.stringify(v) })
        : fc.array(items, constraints);
    }
    case 'object':
    case undefined:
      if (schema.type === undefined && schema.properties === undefined) {
        skipped.add(`${at}: schema without type`);
        return undefined;
      }
      return objectArbitrary(schema, at);
    default:
      skipped.add(`${at}: type ${JSON.stringify(schema.type)} not generated`);
      return undefined;
  }
}

function stringArbitrary(schema: Json, at: string): fc.Arbitrary<string> {
  const minLength: number = schema.minLength ?? 0;
  const maxLength: number = schema.maxLength ?? Math.max(minLength, 40);
  const fits = (s: string) => s.length >= minLength && s.length <= maxLength;
  if (schema.format === 'objectid') return randomObjectId;
  // "Must be in the future (else 400)": a rule on the clock, stated in the member's description.
  const future = /Must be in the future/.test(String(schema.description));
  if (schema.format === 'date-time')
    return fc
      .date({
        min: future ? new Date(Date.now() + 86_400_000) : new Date('2000-01-01T00:00:00Z'),
        max: new Date('2099-12-31T00:00:00Z'),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString());
  if (schema.format === 'email') {
    const email = ajv.compile({ type: 'string', format: 'email' });
    return fc.emailAddress().filter((s) => fits(s) && email(s));
  }
  if (schema.format !== undefined) skipped.add(`${at}: format ${schema.format} generated as a plain string`);
  if (typeof schema.pattern === 'string') return fc.stringMatching(new RegExp(schema.pattern, 'u')).filter(fits);
  return fc.string({ minLength, maxLength: Math.min(maxLength, minLength + 40) });
}

function objectArbitrary(schema: Json, at: string): fc.Arbitrary<Json> | undefined {
  const properties = (schema.properties ?? {}) as Record<string, Json>;
  const required = new Set<string>(schema.required ?? []);
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, member] of Object.entries(properties)) {
    const arb = arbitrary(member, `${at}/properties/${key}`, key);
    if (arb !== undefined) model[key] = arb;
    else if (required.has(key)) {
      skipped.add(`${at}: required member ${key} cannot be generated, object skipped`);
      return undefined;
    }
  }
  let arb: fc.Arbitrary<Json> = fc.record(model, { requiredKeys: Object.keys(model).filter((k) => required.has(k)) });
  const extra = schema.additionalProperties;
  if (extra !== undefined && extra !== false && extra !== true && Object.keys(properties).length === 0) {
    const values = arbitrary(extra, `${at}/additionalProperties`);
    if (values === undefined) return fc.constant({});
    const keys =
      schema.propertyNames?.pattern !== undefined
        ? fc.stringMatching(new RegExp(schema.propertyNames.pattern, 'u'))
        : fc.string({ minLength: 1, maxLength: 20 });
    arb = fc.dictionary(keys, values, { maxKeys: Math.min(schema.maxProperties ?? 5, 5) });
  }
  if (schema.minProperties !== undefined) arb = arb.filter((o) => Object.keys(o).length >= schema.minProperties);
  return arb;
}

function queryValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => String(v));
  return String(value);
}

/** Valid requests for an operation: parameters and body drawn from their schemas. */
function requestArbitrary({ path, operation }: Operation): fc.Arbitrary<GeneratedRequest> {
  const at = `${path} ${operation.operationId}`;
  const parameters = ((operation.parameters ?? []) as Json[]).map(resolve);
  const collection = /^\/v1\/(\w+)\/\{id\}/.exec(path)?.[1];
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const p of parameters) {
    const key = `${p.in}:${p.name}`;
    if (p.in === 'query' && p.name === 'cursor') {
      skipped.add(`${at} query cursor: only a cursor the service issued is valid (an opaque, signed value), not drawn`);
      continue;
    }
    if (p.in === 'path') {
      const ids = collection === undefined ? [] : (world.ids[collection] ?? []);
      parts[key] = withSeeded(ids, randomObjectId);
      continue;
    }
    let arb = arbitrary(p.schema, `${at} ${key}`, p.name);
    if (arb === undefined) continue;
    // Comma separates list members in a query, and a header cannot carry control characters or
    // outer whitespace: values that would change meaning on the wire are not drawn.
    if (p.in === 'query' && p.schema.type === 'array')
      arb = arb.filter((v) => (v as unknown[]).every((item) => !String(item).includes(',')));
    if (p.in === 'header') arb = arb.filter((v) => /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(String(v)));
    if (p.in === 'header' && p.name === 'idempotency-key') arb = fc.uuid();
    parts[key] = p.required ? arb : fc.option(arb, { nil: undefined, freq: 2 });
  }
  const content = operation.requestBody?.content as Record<string, Json> | undefined;
  if (content !== undefined) {
    const [type, media] = Object.entries(content)[0]!;
    const body = arbitrary(media.schema, `${at} body`);
    if (body === undefined) skipped.add(`${at}: body cannot be generated`);
    else parts.body = body.map((value) => ({ type, value }));
  }
  // A limit the description states and no schema can: at most N filter parameters per list.
  const maxFilters = Number(/At most (\d+) filters per request/.exec(String(operation.description))?.[1] ?? Infinity);
  return fc
    .record(parts)
    .map((drawn) => {
      const request: GeneratedRequest = { pathParams: {}, query: {}, headers: {} };
      let filters = 0;
      for (const [key, value] of Object.entries(drawn)) {
        if (value === undefined) continue;
        if (key.startsWith('query:') && !CONTROL_PARAMS.has(key.slice(6)) && ++filters > maxFilters) continue;
        if (key === 'body') request.body = value as GeneratedRequest['body'];
        else {
          const [where, name] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
          if (where === 'path') request.pathParams[name] = asText(value);
          if (where === 'query') request.query[name] = value;
          if (where === 'header') request.headers[name] = asText(value);
        }
      }
      return honourDocumentedRules(operation, honourFixedMembers(operation, request));
    })
    .filter((request) => !breaksDocumentedRule(request));
}

/** "One line per SKU (a SKU on two lines is refused)", in OrderPlacement.lines: later lines of a SKU are dropped. */
function honourDocumentedRules(operation: Json, request: GeneratedRequest): GeneratedRequest {
  const body = request.body?.value as Json | null | undefined;
  if (operation.operationId !== 'placeOrder' || body == null || !Array.isArray(body.lines)) return request;
  const seen = new Set<string>();
  const lines = (body.lines as Json[]).filter((line) => !seen.has(line.sku) && seen.add(line.sku));
  return { ...request, body: { ...request.body!, value: { ...body, lines } } };
}

/** "`from` and `to` must differ (else 400)", in the stock move's description: such draws are not valid requests. */
function breaksDocumentedRule(request: GeneratedRequest): boolean {
  const body = request.body?.value as Json | null | undefined;
  return body != null && typeof body === 'object' && 'from' in body && 'to' in body && body.from === body.to;
}

/**
 * The members the contract marks "Fixed at creation" (sku, warehouse): a replace or patch of an
 * existing document must repeat its value, a rule across request and stored data that no schema
 * states, so such a member takes the stored value.
 */
function honourFixedMembers(operation: Json, request: GeneratedRequest): GeneratedRequest {
  const stored = world.documents.get(request.pathParams.id ?? '');
  if (
    stored === undefined ||
    request.body === undefined ||
    request.body.value === null ||
    typeof request.body.value !== 'object'
  )
    return request;
  const schema = resolve(operation.requestBody.content[request.body.type].schema);
  const body = { ...(request.body.value as Json) };
  for (const [key, member] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
    if (key in body && /Fixed at creation/.test(String(resolve(member).description))) body[key] = stored[key];
  }
  return { ...request, body: { ...request.body, value: body } };
}

/** Whether a generated request is valid per the contract: guards the generator itself. */
function schemaErrors(op: Operation, request: GeneratedRequest): string[] {
  const base = `/paths/${escapePointer(op.path)}/${op.method}`;
  const errors: string[] = [];
  for (const [i, p] of ((op.operation.parameters ?? []) as Json[]).entries()) {
    const param = resolve(p);
    const value =
      param.in === 'path'
        ? request.pathParams[param.name]
        : param.in === 'query'
          ? request.query[param.name]
          : request.headers[param.name];
    if (value === undefined) continue;
    const pointer = p.$ref ? `${p.$ref.slice(1)}/schema` : `${base}/parameters/${i}/schema`;
    const validate = validatorAt(pointer);
    if (!validate(value)) errors.push(`${param.in} ${param.name}: ${ajv.errorsText(validate.errors)}`);
  }
  if (request.body !== undefined) {
    const validate = validatorAt(`${base}/requestBody/content/${escapePointer(request.body.type)}/schema`);
    if (!validate(request.body.value)) errors.push(`body: ${ajv.errorsText(validate.errors)}`);
  }
  return errors;
}

/** The numeric limits of a JSON Schema that the breaks step over. */
type Limits = { maxItems?: number; maxLength?: number; maximum?: number; minimum?: number };
type Break = { what: string; apply: (request: GeneratedRequest) => GeneratedRequest };
const clone = (r: GeneratedRequest): GeneratedRequest => structuredClone(r);

/** Every way to break one thing of a value against its schema, at a JSON location. */
function breaksOf(
  raw: Json,
  value: unknown,
  set: (v: unknown) => (r: GeneratedRequest) => void,
  where: string,
): Break[] {
  const schema = resolve(raw);
  const limits: Limits = schema;
  const out: Break[] = [];
  const mk = (what: string, v: unknown) => ({
    what: `${where}: ${what}`,
    apply: (r: GeneratedRequest) => {
      const c = clone(r);
      set(v)(c);
      return c;
    },
  });
  if (schema.anyOf ?? schema.oneOf) {
    // Break inside the alternative the value took; only when it is the sole alternative of its type.
    const alts = ((schema.anyOf ?? schema.oneOf) as Json[]).map(resolve);
    const taken = alts.filter((a) => validatorFor(a)(value) === true);
    if (taken.length === 1 && alts.filter((a) => a.type === taken[0]!.type).length === 1 && taken[0]!.type !== 'null')
      out.push(...breaksOf(taken[0]!, value, set, where));
    return out;
  }
  if (Array.isArray(schema.enum) && schema.enum.every((e: unknown) => typeof e === 'string'))
    out.push(mk('enum value not listed', 'not-a-listed-value'));
  switch (schema.type) {
    case 'object': {
      if (value === null || typeof value !== 'object') return out;
      out.push(mk('wrong type (string for object)', 'not-an-object'));
      const obj = value as Json;
      for (const key of (schema.required ?? []) as string[]) {
        if (key in obj)
          out.push({
            what: `${where}: required member ${key} removed`,
            apply: (r) => {
              const c = clone(r);
              const { [key]: _removed, ...copy } = obj;
              set(copy)(c);
              return c;
            },
          });
      }
      if (schema.additionalProperties === false) out.push(mk('unknown member', { ...obj, unknownMember: 1 }));
      for (const [key, member] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
        if (!(key in obj)) continue;
        out.push(...breaksOf(member, obj[key], (v) => set({ ...obj, [key]: v }), `${where}/${key}`));
      }
      return out;
    }
    case 'array':
      if (!Array.isArray(value)) return out;
      out.push(mk('wrong type (object for array)', { not: 'an array' }));
      if (limits.maxItems !== undefined && value.length > 0 && limits.maxItems <= 200)
        out.push(
          mk(
            `more than maxItems ${limits.maxItems}`,
            Array.from({ length: limits.maxItems + 1 }, () => value[0]),
          ),
        );
      if (value.length > 0)
        out.push(...breaksOf(schema.items ?? {}, value[0], (v) => set([v, ...value.slice(1)]), `${where}/0`));
      return out;
    case 'string':
      out.push(mk('wrong type (object for string)', { not: 'a string' }));
      if (limits.maxLength !== undefined && limits.maxLength <= 10_000)
        out.push(mk(`longer than maxLength ${limits.maxLength}`, 'A'.repeat(limits.maxLength + 1)));
      return out;
    case 'integer':
    case 'number':
      out.push(mk('wrong type (object for number)', { not: 'a number' }));
      if (limits.maximum !== undefined) out.push(mk(`above maximum ${limits.maximum}`, limits.maximum + 1));
      if (limits.minimum !== undefined) out.push(mk(`below minimum ${limits.minimum}`, limits.minimum - 1));
      return out;
    case 'boolean':
      out.push(mk('wrong type (object for boolean)', { not: 'a boolean' }));
      return out;
    default:
      return out;
  }
}

const validators = new Map<Json, ReturnType<Ajv2020['compile']>>();
function validatorFor(schema: Json) {
  let v = validators.get(schema);
  if (v === undefined) {
    v = ajv.compile(schema.$ref ? { $ref: `openapi.json${schema.$ref}` } : withAbsoluteRefs(schema));
    validators.set(schema, v);
  }
  return v;
}
function withAbsoluteRefs(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(withAbsoluteRefs);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [
      k,
      k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `openapi.json${v}` : withAbsoluteRefs(v),
    ]),
  );
}

/** Query, path and body breaks of a valid request. Query arrays and texts travel as text: only breaks text can carry. */
function breaksOfRequest(op: Operation, request: GeneratedRequest): Break[] {
  const out: Break[] = [];
  for (const raw of (op.operation.parameters ?? []) as Json[]) {
    const p = resolve(raw);
    const schema = resolve(p.schema);
    const limits: Limits = schema;
    if (p.in === 'path')
      out.push({
        what: `path ${p.name}: not an objectid`,
        apply: (r) => {
          const c = clone(r);
          c.pathParams[p.name] = 'not-an-id';
          return c;
        },
      });
    if (p.in !== 'query') continue;
    const set = (v: unknown) => (r: GeneratedRequest) => void (r.query[p.name] = v);
    const mk = (what: string, v: unknown): Break => ({
      what: `query ${p.name}: ${what}`,
      apply: (r) => {
        const c = clone(r);
        set(v)(c);
        return c;
      },
    });
    if (Array.isArray(schema.enum)) out.push(mk('enum value not listed', 'not-a-listed-value'));
    if (schema.type === 'integer' || schema.type === 'number') {
      out.push(mk('not a number', 'abc'));
      if (limits.maximum !== undefined) out.push(mk(`above maximum ${limits.maximum}`, String(limits.maximum + 1)));
      if (limits.minimum !== undefined) out.push(mk(`below minimum ${limits.minimum}`, String(limits.minimum - 1)));
    }
    if (schema.type === 'boolean') out.push(mk('not a boolean', 'maybe'));
    if (schema.type === 'string' && limits.maxLength !== undefined && limits.maxLength <= 10_000)
      out.push(mk(`longer than maxLength ${limits.maxLength}`, 'A'.repeat(limits.maxLength + 1)));
    if (schema.type === 'string' && schema.format === 'date-time') out.push(mk('not a date-time', 'yesterday'));
  }
  if (request.body !== undefined) {
    const content = op.operation.requestBody.content[request.body.type];
    out.push(
      ...breaksOf(content.schema, request.body.value, (v) => (r) => void (r.body = { ...r.body!, value: v }), 'body'),
    );
  }
  return out;
}

function urlOf(op: Operation, request: GeneratedRequest): string {
  return op.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(request.pathParams[name]!));
}

let t: TestApp | undefined;

async function send(op: Operation, request: GeneratedRequest) {
  const query: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(request.query)) query[k] = queryValue(v);
  const headers: Record<string, string> = { ...request.headers };
  if (request.body !== undefined) headers['content-type'] = request.body.type;
  return t!.app.inject({
    method: op.method.toUpperCase() as 'GET',
    url: urlOf(op, request),
    query: query as Record<string, string>,
    headers,
    ...(request.body !== undefined && { payload: JSON.stringify(request.body.value) }),
  });
}

const describeRequest = (op: Operation, request: GeneratedRequest) =>
  `${op.method.toUpperCase()} ${urlOf(op, request)} query=${JSON.stringify(request.query)} headers=${JSON.stringify(request.headers)} body=${JSON.stringify(request.body?.value)}`;

/** The documented response problems with an answer, as messages. */
function responseProblems(op: Operation, res: Awaited<ReturnType<typeof send>>): string[] {
  const problems: string[] = [];
  const documented = op.operation.responses[String(res.statusCode)] as Json | undefined;
  if (documented === undefined)
    return [
      `status ${res.statusCode} is not documented (documented: ${Object.keys(op.operation.responses).join(', ')})`,
    ];
  const response = resolve(documented);
  for (const [name, header] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
    if (resolve(header).required === true && res.headers[name.toLowerCase()] === undefined)
      problems.push(`required header ${name} missing`);
  }
  const type = String(res.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  const content = (response.content ?? {}) as Record<string, Json>;
  if (res.statusCode === 304 || res.statusCode === 204) return problems;
  if (!(type in content))
    return [...problems, `content type ${type} not documented (${Object.keys(content).join(', ')})`];
  if (type.endsWith('json')) {
    const base = `/paths/${escapePointer(op.path)}/${op.method}/responses/${res.statusCode}`;
    const pointer = documented.$ref
      ? `${documented.$ref.slice(1)}/content/${escapePointer(type)}/schema`
      : `${base}/content/${escapePointer(type)}/schema`;
    const validate = validatorAt(pointer);
    if (!validate(res.json()))
      problems.push(`body does not match the documented schema: ${ajv.errorsText(validate.errors)}`);
  }
  return problems;
}

async function snapshot(): Promise<string> {
  const db = t!.app.db.connection.db!;
  const names = (await db.listCollections().toArray())
    .map((c) => c.name)
    .filter((n) => !/audit|idempotency|rate|system/.test(n))
    .sort();
  const all: Record<string, unknown[]> = {};
  for (const name of names) all[name] = await db.collection(name).find().sort({ _id: 1 }).toArray();
  return JSON.stringify(all);
}

beforeAll(async () => {
  spec = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'));
  ajv = contractAjv();
  t = await buildTestApp('contract_properties');
  await waitForDatabase(t.app);
  const s = shop(t.app);
  const products = [];
  for (const sku of ['MUG-RED', 'MUG-BLUE', 'TEE-M']) products.push(await s.product(sku));
  const customers = [await s.customer(), await s.customer()];
  const stock = [];
  for (const p of products) for (const wh of world.warehouses) stock.push(await s.stock(p.sku, wh, 50));
  const orders = [];
  for (const c of customers) orders.push((await s.place(c.id, 'WH-A', [{ sku: 'MUG-RED', quantity: 1 }])).json());
  const spareKey = await t.createKey(['products:read'], { name: 'spare' });
  for (const doc of [...products, ...customers, ...stock]) world.documents.set(doc.id, doc);
  world.skus = products.map((p) => p.sku);
  world.customerIds = customers.map((c) => c.id);
  world.ids = {
    products: products.map((p) => p.id),
    customers: world.customerIds,
    stock: stock.map((x) => x.id),
    orders: orders.map((o) => o.id),
    // The test's own key is never offered: revoking it would end the run.
    keys: [spareKey.id],
    audit: [],
  };
  const audit = await t.app.inject({ method: 'GET', url: '/v1/audit?limit=3' });
  world.ids.audit = (audit.json().items as Json[]).map((e) => e.id as string);
  console.log(`contract properties: seed ${SEED} (replay with CONTRACT_SEED=${SEED})`);
}, 60_000);

afterAll(async () => {
  for (const reason of skipped) console.log(`skipped: ${reason}`);
  const seen = [...statuses]
    .sort(([a], [b]) => a - b)
    .map(([s, n]) => `${s}x${n}`)
    .join(' ');
  console.log(
    `contract properties: seed ${SEED}; ${operations().length} operations; ${validCases} valid and ${invalidCases} invalid cases; statuses ${seen}`,
  );
  await t?.app.close();
});

/** Runs one operation's property; a failure is kept (with its counterexample) so every operation is still tried. */
async function checkEach(failures: string[], op: Operation, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : '';
    failures.push(
      `${op.method.toUpperCase()} ${op.path}: ${(cause || message).split('\n')[0]} [${/\{ seed: [^}]*\}/.exec(message)?.[0] ?? ''}]`,
    );
  }
}

/** An answer that is a stream of events: it ends when the client leaves, so a request for it never completes. */
const streams = (op: Operation) => op.operation.responses?.['200']?.content?.['text/event-stream'] !== undefined;

describe('the service against its contract, property by property', () => {
  it('answers every valid request with a documented, non-5xx, non-400 status and a body of its documented schema', async () => {
    const failures: string[] = [];
    for (const [i, op] of operations().entries()) {
      if (streams(op)) {
        skipped.add(`${op.path} ${op.operation.operationId}: valid requests open a stream (test/api/changes*.test.ts)`);
        continue;
      }
      await checkEach(failures, op, () =>
        fc.assert(
          fc.asyncProperty(requestArbitrary(op), async (request) => {
            const invalid = schemaErrors(op, request);
            // A draw that matches two oneOf alternatives is not a valid request: drawn again. Any
            // other invalid draw is a fault of the generator, not of the service.
            if (invalid.some((e) => !/must match exactly one schema in oneOf/.test(e)))
              throw new Error(`generator drew an invalid request: ${invalid.join('; ')}`);
            fc.pre(invalid.length === 0);
            validCases++;
            const res = await send(op, request);
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            const label = `${describeRequest(op, request)} -> ${res.statusCode} ${res.body.slice(0, 600)}`;
            expect(res.statusCode, label).toBeLessThan(500);
            expect(res.statusCode, label).not.toBe(400);
            if (res.statusCode >= 400) expect(ALLOWED_REFUSALS.has(res.statusCode), label).toBe(true);
            expect(responseProblems(op, res), label).toEqual([]);
          }),
          { seed: SEED + i, numRuns: VALID_RUNS, endOnFailure: true },
        ),
      );
    }
    expect(failures).toEqual([]);
  }, 80_000);

  it('answers a valid request broken in one way with a 400 problem document and changes nothing', async () => {
    const failures: string[] = [];
    for (const [i, op] of operations().entries()) {
      const arb = requestArbitrary(op)
        .filter((r) => schemaErrors(op, r).length === 0)
        .chain((request) => {
          const breaks = breaksOfRequest(op, request);
          return breaks.length === 0
            ? fc.constant(undefined)
            : fc.constantFrom(...breaks).map((b) => ({ what: b.what, request: b.apply(request) }));
        });
      await checkEach(failures, op, () =>
        fc.assert(
          fc.asyncProperty(arb, async (broken) => {
            if (broken === undefined) return;
            // A break that happens to leave the value valid (a wrong value an alternative accepts) is no invalid request.
            fc.pre(schemaErrors(op, broken.request).length > 0);
            invalidCases++;
            const before = await snapshot();
            const res = await send(op, broken.request);
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            const label = `${broken.what}: ${describeRequest(op, broken.request)} -> ${res.statusCode} ${res.body.slice(0, 600)}`;
            expect(res.statusCode, label).toBe(400);
            expect(String(res.headers['content-type']), label).toContain(PROBLEM);
            expect(res.json(), label).toMatchObject({
              type: expect.any(String),
              title: expect.any(String),
              status: 400,
            });
            expect(await snapshot(), label).toBe(before);
          }),
          { seed: SEED + 1000 + i, numRuns: INVALID_RUNS, endOnFailure: true },
        ),
      );
    }
    expect(failures).toEqual([]);
  }, 80_000);
});
