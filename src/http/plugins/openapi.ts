// The OpenAPI description, generated from the route schemas (the routes are the contract),
// and Swagger UI at /docs when enabled. `npm run openapi` writes the same document to
// openapi/openapi.json.
//
// What the route schemas cannot say for themselves is added here, from what the service does:
// each route's own examples of its validation and scope refusals, the response headers every
// answer carries (X-Request-Id, RateLimit-*) and those some carry (Retry-After,
// Idempotency-Replayed, ETag, Location, Link, a change-feed stream's Cache-Control and
// X-Accel-Buffering), `security: []` on the open routes, the schema of each kind of problem an
// answer may be, and the attribute-name patterns that @fastify/swagger drops when it writes
// patternProperties as additionalProperties.

import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { RouteOptions } from 'fastify';
import { ENTITIES } from '../../domain/entities/index.ts';
import { writeScope } from '../../domain/access.ts';
import type { FieldError } from '../../errors.ts';
import { SECURITY_SCHEMES } from './authentication.ts';
import { PROBLEM_MEDIA_TYPE, problemType } from '../schemas/problem.ts';
import { BATCH_FAILURE_SCHEMA, problemSchemaOf, problemTypeSchemas } from '../schemas/problem-types.ts';

export interface OpenApiOptions {
  docs: boolean;
  version: string;
}

/**
 * Route schema marker of a body that may be left out. @fastify/swagger marks every request body
 * required (Fastify validates a missing body as null, which the route's schema may allow).
 */
export const OPTIONAL_BODY = 'x-optional-body';

/**
 * Route schema marker naming the component that documents the body, where the route validates
 * the same requests in steps of its own (the batch: see src/http/routes/batch.ts).
 */
export const DOCUMENTED_BODY = 'x-documented-body';

/** A JSON Schema as route schemas and the OpenAPI document write it: the keywords walked here. */
interface JsonSchema {
  [keyword: string]: unknown;
  $ref?: string;
  type?: unknown;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  required?: string[];
  minLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  enum?: unknown[];
}

/** A problem example: the document an answer would carry. */
type Example = Record<string, unknown>;

interface Media {
  schema?: unknown;
  example?: Example;
  examples?: Record<string, { summary?: string; value: Example }>;
}

/** A response, in a route schema and in the OpenAPI document alike. */
interface Response {
  headers?: Record<string, unknown>;
  content?: Record<string, Media>;
}

/** The parts of a route schema the examples are drawn from. */
interface RouteSchema {
  [keyword: string]: unknown;
  /** A schema, or (where the route names its media type) a schema per media type. */
  body?: JsonSchema & { content?: Record<string, { schema: JsonSchema }> };
  params?: JsonSchema;
  querystring?: JsonSchema;
  response?: Record<string, Response>;
}

/** An operation of the OpenAPI document, as @fastify/swagger writes it from a route. */
interface Operation {
  [member: string]: unknown;
  operationId?: string;
  parameters?: { in: string; name: string }[];
  requestBody?: { required?: boolean; content: Record<string, Media> };
  responses: Record<string, Response>;
  security?: unknown[];
  [OPTIONAL_BODY]?: boolean;
  [DOCUMENTED_BODY]?: string;
}

interface Document {
  paths?: Record<string, Record<string, Operation>>;
  components: { schemas?: Record<string, JsonSchema>; headers?: Record<string, unknown> };
}

const ref = (section: string, name: string) => ({ $ref: `#/components/${section}/${name}` });

const header = (description: string, schema: JsonSchema, required = false) => ({
  description,
  ...(required && { required }),
  schema,
});

/** Headers the service sends, declared once and referred to from every response that carries them. */
const HEADERS: Record<string, ReturnType<typeof header>> = {
  'X-Request-Id': header(
    "The request's id: the caller's X-Request-Id when well-formed (1-128 of A-Za-z0-9._:-), a UUID otherwise. " +
      "Also the problem document's requestId and on every log line of the request.",
    { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
    true,
  ),
  'RateLimit-Limit': header(
    "Requests per minute allowed to this caller (the API key's limit, or the client IP's on open routes and " +
      'refused keys). Absent when the limit is off (0).',
    { type: 'integer', minimum: 1 },
  ),
  'RateLimit-Remaining': header('Requests left in the current window.', { type: 'integer', minimum: 0 }),
  'RateLimit-Reset': header('Seconds until the allowance is whole again.', { type: 'integer', minimum: 0 }),
  'RateLimit-Policy': header('The limit as `<requests>;w=60` (per 60 seconds).', {
    type: 'string',
    pattern: '^[0-9]+;w=60$',
  }),
  'Retry-After': header(
    'Seconds to wait before retrying: on a 429, on the 503s of this service, and on a 409 idempotency-in-progress.',
    { type: 'integer', minimum: 0 },
  ),
  'Idempotency-Replayed': header(
    'true on an answer given again to a retry with the same Idempotency-Key and body; absent on a first answer.',
    { type: 'string', enum: ['true'] },
  ),
  ETag: header(
    'Version of the document, for If-Match and If-None-Match.',
    { type: 'string', pattern: '^"[0-9]+"$' },
    true,
  ),
  Location: header('Path of the resource created.', { type: 'string' }, true),
  Link: header('The next page, as `<url>; rel="next"`; absent on the last page.', { type: 'string' }),
  'WWW-Authenticate': header(
    'The authentication scheme (Bearer) and, for a key that was refused, why.',
    { type: 'string' },
    true,
  ),
  'Cache-Control': header(
    'no-cache on a change-feed stream, never stored by caches; private, no-cache on a document read by id: a ' +
      'client or private cache may keep it and must revalidate it with its ETag.',
    { type: 'string' },
    true,
  ),
  'X-Accel-Buffering': header('no: proxies that buffer answers (nginx) pass a change-feed stream on as it comes.', {
    type: 'string',
    enum: ['no'],
  }),
};
const RATE_LIMIT_HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy'];
const CANONICAL_HEADER = new Map(Object.keys(HEADERS).map((name) => [name.toLowerCase(), name]));
/** Answers an idempotent request may replay: stored answers are 2xx and 4xx that say something about the request. */
const REPLAYABLE = /^(2..|400|404|409|412)$/;

export const OPENAPI_TAGS = [
  { name: 'health', description: 'Liveness and readiness for orchestrators and load balancers.' },
  ...ENTITIES.map((entity) => ({ name: entity.collection, description: entity.description })),
  { name: 'batch', description: 'Several document writes in one transaction: all or nothing.' },
  {
    name: 'audit',
    description:
      'The audit trail of writes: which API key changed which document, in which request, and when ' +
      '(the audit:read scope).',
  },
  { name: 'keys', description: 'API keys: create, list and revoke (the keys:admin scope).' },
];

// --- one route's examples ----------------------------------------------------------------------

/** The branch of a nullable schema (anyOf with null) that holds the value, or the schema itself. */
const nonNull = (schema: JsonSchema): JsonSchema => schema.anyOf?.find((branch) => branch.type !== 'null') ?? schema;

/** The first value that one of the schema's rules would refuse, as Ajv words it. */
function firstRuleOf(schema: JsonSchema): string | undefined {
  const value = nonNull(schema);
  if (value.minLength !== undefined) return `must NOT have fewer than ${value.minLength} characters`;
  if (value.pattern !== undefined) return `must match pattern "${value.pattern}"`;
  if (value.format !== undefined) return `must match format "${value.format}"`;
  if (value.minimum !== undefined) return `must be >= ${value.minimum}`;
  if (value.maximum !== undefined) return `must be <= ${value.maximum}`;
  if (value.minItems !== undefined) return `must NOT have fewer than ${value.minItems} items`;
  if (value.enum !== undefined) return `must be one of: ${value.enum.join(', ')}`;
  return undefined;
}

/** The first member of an object schema that has a rule, with Ajv's message for breaking it. */
function firstRuleIn(schema: JsonSchema | undefined): { pointer: string; message: string } | undefined {
  for (const [name, member] of Object.entries(schema?.properties ?? {})) {
    const message = firstRuleOf(member);
    if (message !== undefined) return { pointer: `/${name}`, message };
  }
  const [required] = schema?.required ?? [];
  return required !== undefined ? { pointer: `/${required}`, message: 'is required' } : undefined;
}

type Resolve = (schema: JsonSchema | undefined) => JsonSchema | undefined;

/** A validation error this route would really give: from its body, else its path, else its query. */
function validationErrorOf(schema: RouteSchema, resolve: Resolve): FieldError {
  const bodySchema = schema.body?.content ? Object.values(schema.body.content)[0]?.schema : schema.body;
  const candidates: [string, JsonSchema | undefined][] = [
    ['body', resolve(bodySchema && nonNull(bodySchema))],
    ['params', resolve(schema.params)],
    ['query', resolve(schema.querystring)],
  ];
  for (const [part, candidate] of candidates) {
    const found = firstRuleIn(candidate);
    if (found !== undefined) return { in: part, ...found };
  }
  return { in: 'query', pointer: '/x', message: 'is not a parameter of this route' };
}

/** Every problem example of a response, whether it has one or several. */
function problemExamples(response: Response | undefined): Example[] {
  const media = response?.content?.[PROBLEM_MEDIA_TYPE];
  if (media === undefined) return [];
  return media.example !== undefined
    ? [media.example]
    : Object.values(media.examples ?? {}).map((named) => named.value);
}

/**
 * The route's schema with examples of its own: the scopes its 403 names and the value its 400
 * points at. A copy: Fastify serializes with the route's response schemas.
 */
function withOwnExamples(schema: RouteSchema, route: RouteOptions, resolve: Resolve): RouteSchema {
  const responses = structuredClone(schema.response ?? {});
  // A batch needs each collection's write scope: the first one stands for them.
  const missing = route.config?.scopes?.[0] ?? writeScope(ENTITIES[0].collection);
  for (const example of problemExamples(responses[403])) {
    Object.assign(example, { detail: `This API key lacks the scope ${missing}.`, missingScopes: [missing] });
  }
  for (const example of problemExamples(responses[400])) {
    if (example.type !== problemType('validation-failed')) continue;
    example.errors = [validationErrorOf(schema, resolve)];
  }
  return { ...schema, response: responses };
}

// --- the whole document ------------------------------------------------------------------------

/** Hands each operation of the document to `visit`, and puts the operation it returns in its place. */
function eachOperation(document: Document, visit: (operation: Operation) => Operation): void {
  for (const methods of Object.values(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(methods)) methods[method] = visit(operation);
  }
}

/** The operation without the route schema's body markers, its request body as they say. */
function markBodies({ [OPTIONAL_BODY]: optional, [DOCUMENTED_BODY]: documented, ...operation }: Operation): Operation {
  if (optional === true && operation.requestBody !== undefined) operation.requestBody.required = false;
  if (documented !== undefined && operation.requestBody !== undefined) {
    for (const media of Object.values(operation.requestBody.content)) media.schema = ref('schemas', documented);
  }
  return operation;
}

/** Every header a response carries, canonically named and declared once in components. */
function declareHeaders(operation: Operation): void {
  const idempotent = (operation.parameters ?? []).some((p) => p.in === 'header' && p.name === 'idempotency-key');
  for (const [status, response] of Object.entries(operation.responses)) {
    const own = Object.keys(response.headers ?? {}).map((name) => {
      const canonical = CANONICAL_HEADER.get(name.toLowerCase());
      if (canonical === undefined)
        throw new Error(`${String(operation.operationId)} ${status}: header ${name} is not declared in HEADERS`);
      return canonical;
    });
    const names = [
      'X-Request-Id',
      ...RATE_LIMIT_HEADERS,
      ...own,
      ...(status === '429' || status === '503' ? ['Retry-After'] : []),
      ...(status === '401' ? ['WWW-Authenticate'] : []),
      ...(idempotent && REPLAYABLE.test(status) ? ['Idempotency-Replayed'] : []),
    ];
    response.headers = Object.fromEntries([...new Set(names)].map((name) => [name, ref('headers', name)]));
  }
}

/** The code of a problem type URN: its last segment. */
const codeOf = (type: unknown) => String(type).split(':').at(-1) ?? '';

/** A problem response's schema: any of the kinds its examples show, each with its members, or the base Problem. */
function typeProblems(operation: Operation): void {
  for (const response of Object.values(operation.responses)) {
    const media = response.content?.[PROBLEM_MEDIA_TYPE];
    if (media === undefined) continue;
    const examples = problemExamples(response);
    const kinds = examples.map((example) => problemSchemaOf(codeOf(example.type)));
    if (examples.some((example) => example.failedOperation !== undefined)) kinds.push(BATCH_FAILURE_SCHEMA);
    const specific = [...new Set(kinds.filter((kind): kind is string => kind !== undefined))];
    if (specific.length > 0)
      media.schema = { anyOf: [...specific.map((kind) => ref('schemas', kind)), ref('schemas', 'Problem')] };
  }
}

/**
 * Restores what @fastify/swagger drops from a record: it writes patternProperties as
 * additionalProperties (an OpenAPI 3.0 habit), losing the pattern member names must match.
 * Walks the registered schema and its OpenAPI rendering side by side.
 */
function restoreNamePatterns(source: JsonSchema | boolean | undefined, target: JsonSchema | boolean | undefined): void {
  if (typeof source !== 'object' || typeof target !== 'object') return;
  const patterns = Object.entries(source.patternProperties ?? {});
  const [only] = patterns;
  if (patterns.length === 1 && only && target.patternProperties === undefined && target.propertyNames === undefined) {
    const [pattern, member] = only;
    target.propertyNames = { pattern };
    restoreNamePatterns(member, target.additionalProperties);
  }
  for (const [name, member] of Object.entries(source.properties ?? {})) {
    restoreNamePatterns(member, target.properties?.[name]);
  }
  restoreNamePatterns(source.items, target.items);
  for (const keyword of ['anyOf', 'oneOf', 'allOf'] as const) {
    source[keyword]?.forEach((branch, i) => {
      restoreNamePatterns(branch, target[keyword]?.[i]);
    });
  }
}

export default fp<OpenApiOptions>(
  async (app, options) => {
    for (const schema of problemTypeSchemas(problemType)) app.addSchema(schema);

    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'storekeeper',
          version: options.version,
          description:
            "The online shop's data service: catalog, customers, stock and orders on MongoDB. " +
            'Every /v1 route needs an API key (`Authorization: Bearer sk_...`) ' +
            'holding the scopes its description names; ' +
            'answers carry RateLimit-* headers, and 429 with Retry-After past the limit. ' +
            'Every error is an RFC 9457 problem document (application/problem+json) carrying the request id; ' +
            'send X-Request-Id to choose it.',
          license: { name: 'MIT', identifier: 'MIT' },
        },
        // Relative: the paths are served where this document is (Swagger UI calls the instance it came from).
        servers: [{ url: '/', description: 'The instance serving this document.' }],
        tags: OPENAPI_TAGS,
        components: { securitySchemes: SECURITY_SCHEMES },
      },
      transform: (argument) => {
        const { schema, url, route } = argument;
        // A schema, or the component it refers to (routes' own schemas included, which the root cannot see).
        const { openapiObject } = argument as unknown as { openapiObject?: Partial<Document> };
        const components = openapiObject?.components?.schemas ?? {};
        const resolve = (given: JsonSchema | undefined): JsonSchema | undefined =>
          typeof given?.$ref === 'string'
            ? (components[given.$ref] ?? (app.getSchema(given.$ref) as JsonSchema | undefined))
            : given;
        return { schema: withOwnExamples(schema as RouteSchema, route, resolve), url };
      },
      transformObject: (document) => {
        if (!('openapiObject' in document)) return document.swaggerObject;
        const openapi = document.openapiObject as Document;
        eachOperation(openapi, (given) => {
          const operation = markBodies(given);
          declareHeaders(operation);
          typeProblems(operation);
          // Open routes say so: no security requirement rather than none stated.
          operation.security ??= [];
          return operation;
        });
        openapi.components.headers = { ...HEADERS };
        for (const [name, component] of Object.entries(openapi.components.schemas ?? {})) {
          restoreNamePatterns(app.getSchema(name) as JsonSchema | undefined, component);
        }
        return openapi;
      },
      // Shared schemas keep their $id as their component name instead of def-0, def-1...
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
    if (options.docs) {
      await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
    }
  },
  // The docs routes carry the security headers.
  { name: 'openapi', dependencies: ['security-headers'], fastify: '5.x' },
);
