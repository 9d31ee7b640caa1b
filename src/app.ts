// The application as a Fastify plugin, and the one factory that builds the server around it.
// Production (src/server.ts), the tests and the OpenAPI generator all call buildApp, so what
// is tested is what runs.

import Fastify, { type FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import { SERVICE } from './version.ts';
import database from './data/database.ts';
import { AJV_OPTIONS, readingNumbersStrictly } from './domain/validation.ts';
import authentication from './http/plugins/authentication.ts';
import loadShedding from './http/plugins/load-shedding.ts';
import methods from './http/plugins/methods.ts';
import metrics from './http/plugins/metrics.ts';
import rateLimit from './http/plugins/rate-limit.ts';
import securityHeaders from './http/plugins/security-headers.ts';
import openapi from './http/plugins/openapi.ts';
import idempotency from './http/plugins/idempotency.ts';
import problemDetails from './http/plugins/problem-details.ts';
import requestContext, { AccessLog, requestIdFrom } from './http/plugins/request-context.ts';
import inputGuard, { frameworkErrors } from './http/plugins/input-guard.ts';
import clientErrors, { clientErrorHandler, serverTimeouts } from './http/plugins/client-errors.ts';
import jsonBody from './http/plugins/json-body.ts';
import health from './http/routes/health.ts';
import batchRoutes from './http/routes/batch.ts';
import auditRoutes from './http/routes/audit.ts';
import keyRoutes from './http/routes/keys.ts';
import documentRoutes from './http/routes/documents.ts';
import orderRoutes from './http/routes/orders.ts';
import stockMovementRoutes from './http/routes/stock-movements.ts';
import changeRoutes from './http/routes/changes.ts';
import { documentSchemas } from './http/schemas/documents.ts';
import { buildSerializer } from './http/schemas/serialization.ts';
import stores from './data/stores.ts';
import shop from './shop/index.ts';
import { ENTITIES } from './domain/entities/index.ts';

export interface AppOptions {
  config: Config & { mongo: { uri: string } };
  /** false: build the routes without opening a MongoDB connection. */
  connect?: boolean;
}

type Options = Pick<AppOptions, 'config'>;

/**
 * What requests are served with: the body parser, the database and what is built on it. These
 * plugins add no request hooks, so the groups after them may take their decorators in any order.
 */
const infrastructure = fp<AppOptions>(
  async (fastify, { config, connect }) => {
    await fastify.register(jsonBody);
    await fastify.register(database, { ...config.mongo, connect });
    await fastify.register(stores, {
      countTimeoutMs: config.mongo.countTimeoutMs,
      queryTimeoutMs: config.security.queryTimeoutMs,
      retentionDays: config.audit.retentionDays,
      cursorSecret: config.security.cursorSecret,
      idempotencyTtlHours: config.idempotency.ttlHours,
      cacheMaxMb: config.cache.maxMb,
      ...(connect !== false && {
        streams: { uri: config.mongo.uri, appName: config.mongo.appName, feedReplayEvents: config.feed.replayEvents },
      }),
    });
    await fastify.register(shop);
  },
  { name: 'infrastructure', fastify: '5.x' },
);

/**
 * The hooks every request passes through, and the routes that are no resource's (docs, metrics).
 * Each plugin names the plugins it must follow, so an order that breaks a rule fails at boot.
 */
const crossCutting = fp<Options>(
  async (fastify, { config }) => {
    const { security } = config;
    await fastify.register(requestContext, { deadlineMs: config.http.deadlineMs });
    await fastify.register(inputGuard);
    await fastify.register(problemDetails, { retryAfterSeconds: config.mongo.retryAfterSeconds });
    await fastify.register(securityHeaders, { corsOrigins: security.corsOrigins });
    await fastify.register(clientErrors);
    await fastify.register(openapi, { docs: config.http.docs, version: SERVICE.version });
    await fastify.register(rateLimit, {
      perKeyPerMinute: security.rateLimitPerMinute,
      anonymousPerMinute: security.anonymousRateLimitPerMinute,
    });
    await fastify.register(authentication, {
      cacheTtlMs: security.authCacheTtlMs,
      rateLimitPerMinute: security.rateLimitPerMinute,
    });
    await fastify.register(methods);
    await fastify.register(loadShedding, { maxConcurrent: security.maxConcurrentQueries });
    await fastify.register(metrics);
    await fastify.register(idempotency);
  },
  { name: 'cross-cutting', dependencies: ['infrastructure'], fastify: '5.x' },
);

/** The resources, each behind every hook above. */
const resources = fp<Options>(
  async (fastify, { config }) => {
    await fastify.register(health, {
      prefix: '/health',
      readinessTimeoutMs: config.mongo.readinessTimeoutMs,
      retryAfterSeconds: config.mongo.retryAfterSeconds,
    });
    // Registered at the root: the generic routes and the workflow routes share them.
    for (const entity of ENTITIES) {
      for (const schema of documentSchemas(entity).shared) fastify.addSchema(schema);
    }
    for (const entity of ENTITIES) {
      await fastify.register(documentRoutes, { prefix: `/v1/${entity.collection}`, entity });
    }
    await fastify.register(orderRoutes, { prefix: '/v1/orders' });
    await fastify.register(stockMovementRoutes, { prefix: '/v1/stock' });
    await fastify.register(batchRoutes, { prefix: '/v1/batch' });
    // /v1/<collection>/changes and /v1/changes: the change feed as server-sent events.
    await fastify.register(changeRoutes, {
      prefix: '/v1',
      ...config.feed,
      authCacheTtlMs: config.security.authCacheTtlMs,
      retryAfterSeconds: config.mongo.retryAfterSeconds,
    });
    // Not an entity of ENTITIES: read-only, behind audit:read rather than a collection's scopes.
    await fastify.register(auditRoutes, { prefix: '/v1/audit' });
    await fastify.register(keyRoutes, { prefix: '/v1/keys' });
  },
  { name: 'resources', dependencies: ['cross-cutting'], fastify: '5.x' },
);

const app = fp<AppOptions>(
  async (fastify, options) => {
    await fastify.register(infrastructure, options);
    await fastify.register(crossCutting, options);
    await fastify.register(resources, options);
  },
  { name: 'storekeeper', fastify: '5.x' },
);

export default app;

const ajvCompiler = AjvCompiler();

/**
 * Query strings, params and headers arrive as text and are coerced to their schema's types, their
 * numbers by the one strict grammar (readNumber); JSON bodies are not: a string where a number
 * belongs is a client error, never a silent fix.
 */
const buildValidatorPerPart: typeof ajvCompiler = (externalSchemas, options) => {
  const coercing = ajvCompiler(externalSchemas, options);
  const strictOptions = {
    ...options,
    customOptions: { ...options?.customOptions, coerceTypes: false },
  } as typeof options;
  const strict = ajvCompiler(externalSchemas, strictOptions);
  return (route) => (route.httpPart === 'body' ? strict(route) : readingNumbersStrictly(route.schema, coercing(route)));
};

export interface BuildOptions extends AppOptions {
  logger: FastifyBaseLogger;
}

export type App = Awaited<ReturnType<typeof buildApp>>;

export async function buildApp({ logger, ...options }: BuildOptions) {
  const { http } = options.config;
  const fastify = Fastify({
    loggerInstance: logger,
    genReqId: requestIdFrom,
    // URLs refused before routing (bad percent-encoding in the path) answer with problem documents too.
    frameworkErrors,
    logController: new AccessLog(),
    bodyLimit: http.bodyLimit,
    // A client must send its whole request within this time (slow-loris protection), cut within
    // a second of it; what Node's parser refuses is answered with a problem document.
    ...serverTimeouts(options.config.security.requestTimeoutMs),
    clientErrorHandler: clientErrorHandler(options.config.security.requestTimeoutMs),
    trustProxy: http.trustProxy,
    // Keep-alive connections that are idle are closed at shutdown; busy ones finish first.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // allErrors lists every invalid field in one 400; bodies are bounded (BODY_LIMIT_BYTES and
    // maxItems/maxLength in every schema), which keeps its cost bounded too.
    ajv: { customOptions: { ...AJV_OPTIONS, formats: { ...AJV_OPTIONS.formats } } },
    // Responses are written by fast-json-stringify from schemas that drop its per-value union checks
    // where JSON.stringify writes the same (src/http/schemas/serialization.ts).
    schemaController: {
      compilersFactory: { buildValidator: buildValidatorPerPart, buildSerializer: buildSerializer() },
    },
    // The serializer picks between union members with Ajv too; it must know the same formats.
    serializerOpts: { ajv: { formats: { ...AJV_OPTIONS.formats } } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await fastify.register(app, options);
  return fastify;
}
