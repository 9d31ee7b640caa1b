// The OpenAPI description, generated from the route schemas (the routes are the contract),
// and Swagger UI at /docs when enabled. `npm run openapi` writes the same document to
// openapi/openapi.json.
//
// What the route schemas cannot say for themselves is added here, from what the service does:
// each route's own examples of its validation and scope refusals, the response headers every
// answer carries (X-Request-Id, RateLimit-*) and those some carry (Retry-After,
// Idempotency-Replayed, ETag, Location, Link), `security: []` on the open routes, the schema of
// each kind of problem an answer may be, and the attribute-name patterns that @fastify/swagger
// drops when it writes patternProperties as additionalProperties.

import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { RouteOptions } from 'fastify';
import { ENTITIES } from '../../domain/entities/index.ts';
import { SCOPES } from '../../domain/access.ts';
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

type JsonSchema = Record<string, any>;
type Operation = Record<string, any>;

const ref = (section: string, name: string) => ({ $ref: `#/components/${section}/${name}` });

/** Headers the service sends, declared once and referred to from every response that carries them. */
const HEADERS: Record<string, JsonSchema> = {
  'X-Request-Id': {
    description:
      "The request's id: the caller's X-Request-Id when well-formed (1-128 of A-Za-z0-9._:-), a UUID otherwise. Also the problem document's requestId and on every log line of the request.",
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
  },
  'RateLimit-Limit': {
    description:
      "Requests per minute allowed to this caller (the API key's limit, or the client IP's on open routes and refused keys). Absent when the limit is off (0).",
    schema: { type: 'integer', minimum: 1 },
  },
  'RateLimit-Remaining': {
    description: 'Requests left in the current window.',
    schema: { type: 'integer', minimum: 0 },
  },
  'RateLimit-Reset': {
    description: 'Seconds until the allowance is whole again.',
    schema: { type: 'integer', minimum: 0 },
  },
  'RateLimit-Policy': {
    description: 'The limit as `<requests>;w=60` (per 60 seconds).',
    schema: { type: 'string', pattern: '^[0-9]+;w=60$' },
  },
  'Retry-After': {
    description:
      'Seconds to wait before retrying: on a 429, on the 503s of this service, and on a 409 idempotency-in-progress.',
    schema: { type: 'integer', minimum: 0 },
  },
  'Idempotency-Replayed': {
    description:
      'true on an answer given again to a retry with the same Idempotency-Key and body; absent on a first answer.',
    schema: { type: 'string', enum: ['true'] },
  },
  ETag: {
    description: 'Version of the document, for If-Match and If-None-Match.',
    required: true,
    schema: { type: 'string', pattern: '^"[0-9]+"$' },
  },
  Location: { description: 'Path of the resource created.', required: true, schema: { type: 'string' } },
  Link: { description: 'The next page, as `<url>; rel="next"`; absent on the last page.', schema: { type: 'string' } },
  'WWW-Authenticate': {
    description: 'The authentication scheme (Bearer) and, for a key that was refused, why.',
    required: true,
    schema: { type: 'string' },
  },
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
      'The audit trail of writes: which API key changed which document, in which request, and when (the audit:read scope).',
  },
  { name: 'keys', description: 'API keys: create, list and revoke (the keys:admin scope).' },
];

// --- one route's examples ----------------------------------------------------------------------

/** The first value that one of the schema's rules would refuse, as Ajv words it. */
function firstRuleOf(schema: JsonSchema): string | undefined {
  const value = schema.anyOf?.find((branch: JsonSchema) => branch.type !== 'null') ?? schema;
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
  for (const [name, member] of Object.entries((schema?.properties ?? {}) as Record<string, JsonSchema>)) {
    const message = firstRuleOf(member);
    if (message !== undefined) return { pointer: `/${name}`, message };
  }
  const required = (schema?.required ?? []) as string[];
  return required.length > 0 ? { pointer: `/${required[0]}`, message: 'is required' } : undefined;
}

/** A validation error this route would really give: from its body, else its path, else its query. */
function validationErrorOf(
  schema: JsonSchema,
  resolve: (schema: JsonSchema | undefined) => JsonSchema | undefined,
): FieldError {
  const bodySchema = schema.body?.content
    ? Object.values(schema.body.content as Record<string, { schema: JsonSchema }>)[0]!.schema
    : schema.body;
  const body = resolve(bodySchema?.anyOf?.find((branch: JsonSchema) => branch.type !== 'null') ?? bodySchema);
  const candidates: [string, JsonSchema | undefined][] = [
    ['body', body],
    ['params', resolve(schema.params)],
    ['query', resolve(schema.querystring)],
  ];
  for (const [part, candidate] of candidates) {
    const found = firstRuleIn(candidate);
    if (found !== undefined) return { in: part, ...found };
  }
  return { in: 'query', pointer: '/x', message: 'is not a parameter of this route' };
}

type Media = {
  schema?: unknown;
  example?: JsonSchema;
  examples?: Record<string, { summary?: string; value: JsonSchema }>;
};

/** Every problem example of a response, whether it has one or several. */
function problemExamples(response: JsonSchema | undefined): JsonSchema[] {
  const media = response?.content?.[PROBLEM_MEDIA_TYPE] as Media | undefined;
  if (media === undefined) return [];
  return media.example !== undefined
    ? [media.example]
    : Object.values(media.examples ?? {}).map((named) => named.value);
}

/**
 * The route's schema with examples of its own: the scopes its 403 names and the value its 400
 * points at. A copy: Fastify serializes with the route's response schemas.
 */
function withOwnExamples(
  schema: JsonSchema,
  route: RouteOptions,
  resolve: (schema: JsonSchema | undefined) => JsonSchema | undefined,
): JsonSchema {
  const responses = structuredClone(schema.response ?? {}) as Record<string, JsonSchema>;
  for (const example of problemExamples(responses[403])) {
    const scopes = route.config?.scopes ?? [];
    // A batch needs each collection's write scope: the first one stands for them.
    const missing = scopes.length > 0 ? [scopes[0]!] : [SCOPES.find((scope) => scope.endsWith(':write'))!];
    Object.assign(example, { detail: `This API key lacks the scope ${missing[0]}.`, missingScopes: missing });
  }
  for (const example of problemExamples(responses[400])) {
    if (example.type !== problemType('validation-failed')) continue;
    example.errors = [validationErrorOf(schema, resolve)];
  }
  return { ...schema, response: responses };
}

// --- the whole document ------------------------------------------------------------------------

function eachOperation(document: JsonSchema, visit: (operation: Operation) => void): void {
  for (const methods of Object.values((document.paths ?? {}) as Record<string, Record<string, Operation>>)) {
    for (const operation of Object.values(methods)) visit(operation);
  }
}

function markBodies(operation: Operation): void {
  if (operation[OPTIONAL_BODY] === true && operation.requestBody !== undefined) operation.requestBody.required = false;
  delete operation[OPTIONAL_BODY];
  const documented = operation[DOCUMENTED_BODY];
  if (typeof documented === 'string') {
    for (const media of Object.values(operation.requestBody.content as Record<string, { schema: unknown }>))
      media.schema = ref('schemas', documented);
  }
  delete operation[DOCUMENTED_BODY];
}

/** Every header a response carries, canonically named and declared once in components. */
function declareHeaders(operation: Operation): void {
  const idempotent = ((operation.parameters ?? []) as { in: string; name: string }[]).some(
    (p) => p.in === 'header' && p.name === 'idempotency-key',
  );
  for (const [status, response] of Object.entries(operation.responses as Record<string, JsonSchema>)) {
    const own = Object.keys(response.headers ?? {}).map((name) => {
      const canonical = CANONICAL_HEADER.get(name.toLowerCase());
      if (canonical === undefined)
        throw new Error(`${operation.operationId} ${status}: header ${name} is not declared in HEADERS`);
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

/** A problem response's schema: any of the kinds its examples show, each with its members, or the base Problem. */
function typeProblems(operation: Operation): void {
  for (const response of Object.values(operation.responses as Record<string, JsonSchema>)) {
    const media = response.content?.[PROBLEM_MEDIA_TYPE];
    if (media === undefined) continue;
    const examples = problemExamples(response);
    const kinds = examples.map((example) => problemSchemaOf(String(example.type).split(':').pop()!));
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
function restoreNamePatterns(source: JsonSchema | undefined, target: JsonSchema | undefined): void {
  if (source === undefined || target === undefined || typeof source !== 'object' || typeof target !== 'object') return;
  const patterns = Object.keys(source.patternProperties ?? {});
  if (patterns.length === 1 && target.patternProperties === undefined && target.propertyNames === undefined) {
    target.propertyNames = { pattern: patterns[0] };
    restoreNamePatterns(source.patternProperties[patterns[0]!], target.additionalProperties);
  }
  for (const [name, member] of Object.entries((source.properties ?? {}) as Record<string, JsonSchema>))
    restoreNamePatterns(member, target.properties?.[name]);
  restoreNamePatterns(source.items, target.items);
  for (const keyword of ['anyOf', 'oneOf', 'allOf']) {
    (source[keyword] as JsonSchema[] | undefined)?.forEach((branch, i) =>
      restoreNamePatterns(branch, target[keyword]?.[i]),
    );
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
            'Every /v1 route needs an API key (`Authorization: Bearer sk_...`) holding the scopes its description names; ' +
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
        const { openapiObject } = argument as unknown as { openapiObject?: JsonSchema };
        const components = (openapiObject?.components?.schemas ?? {}) as Record<string, JsonSchema>;
        const resolve = (given: JsonSchema | undefined): JsonSchema | undefined =>
          typeof given?.$ref === 'string'
            ? (components[given.$ref] ?? (app.getSchema(given.$ref) as JsonSchema | undefined))
            : given;
        return { schema: withOwnExamples(schema as JsonSchema, route as RouteOptions, resolve) as typeof schema, url };
      },
      transformObject: (document) => {
        if (!('openapiObject' in document)) return document.swaggerObject;
        const openapi = document.openapiObject as JsonSchema;
        eachOperation(openapi, (operation) => {
          markBodies(operation);
          declareHeaders(operation);
          typeProblems(operation);
          // Open routes say so: no security requirement rather than none stated.
          operation.security ??= [];
        });
        openapi.components.headers = Object.fromEntries(Object.keys(HEADERS).map((name) => [name, HEADERS[name]]));
        for (const [name, component] of Object.entries(openapi.components.schemas as Record<string, JsonSchema>)) {
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
