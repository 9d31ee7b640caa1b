// The application as a Fastify plugin, and the one factory that builds the server around it.
// Production (src/server.ts), the tests and the OpenAPI generator all call buildApp, so what
// is tested is what runs.

import { readFileSync } from 'node:fs';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import database from './data/database.ts';
import { AJV_OPTIONS } from './domain/validation.ts';
import metrics from './http/plugins/metrics.ts';
import openapi from './http/plugins/openapi.ts';
import idempotency from './http/plugins/idempotency.ts';
import problemDetails from './http/plugins/problem-details.ts';
import requestContext, { AccessLog, requestIdFrom } from './http/plugins/request-context.ts';
import health from './http/routes/health.ts';
import batchRoutes from './http/routes/batch.ts';
import documentRoutes, { MERGE_PATCH_MEDIA_TYPE } from './http/routes/documents.ts';
import orderRoutes from './http/routes/orders.ts';
import stockMovementRoutes from './http/routes/stock-movements.ts';
import { documentSchemas } from './http/schemas/documents.ts';
import repositories from './data/repositories.ts';
import { ENTITIES } from './domain/entities/index.ts';

export interface AppOptions {
  config: Config & { mongo: { uri: string } };
  /** false: build the routes without opening a MongoDB connection. */
  connect?: boolean;
}

export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

const app = fp<AppOptions>(async (fastify, { config, connect }) => {
  // Bodies are JSON, or JSON Merge Patch on PATCH; text/plain is not an input here.
  fastify.removeContentTypeParser('text/plain');
  fastify.addContentTypeParser(MERGE_PATCH_MEDIA_TYPE, { parseAs: 'string' }, fastify.getDefaultJsonParser('error', 'error'));
  await fastify.register(requestContext);
  await fastify.register(problemDetails, { retryAfterSeconds: config.mongo.retryAfterSeconds });
  await fastify.register(openapi, { docs: config.http.docs, version: VERSION });
  await fastify.register(database, { ...config.mongo, connect });
  await fastify.register(metrics);

  await fastify.register(repositories, { countTimeoutMs: config.mongo.countTimeoutMs });
  // Before the routes: it hooks every POST route registered after it.
  await fastify.register(idempotency, { ttlHours: config.idempotency.ttlHours });

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
}, { name: 'storekeeper', fastify: '5.x' });

export default app;

const ajvCompiler = AjvCompiler();

/**
 * Query strings, params and headers arrive as text and are coerced to their schema's types;
 * JSON bodies are not: a string where a number belongs is a client error, never a silent fix.
 */
const buildValidatorPerPart: typeof ajvCompiler = (externalSchemas, options) => {
  const coercing = ajvCompiler(externalSchemas, options);
  const strictOptions = { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } } as typeof options;
  const strict = ajvCompiler(externalSchemas, strictOptions);
  return (route) => (route.httpPart === 'body' ? strict(route) : coercing(route));
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
    logController: new AccessLog(),
    bodyLimit: http.bodyLimit,
    trustProxy: http.trustProxy,
    // Keep-alive connections that are idle are closed at shutdown; busy ones finish first.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // allErrors lists every invalid field in one 400; bodies are bounded (BODY_LIMIT_BYTES and
    // maxItems/maxLength in every schema), which keeps its cost bounded too.
    ajv: { customOptions: { ...AJV_OPTIONS, formats: { ...AJV_OPTIONS.formats } } },
    schemaController: { compilersFactory: { buildValidator: buildValidatorPerPart } },
    // The serializer picks between union members with Ajv too; it must know the same formats.
    serializerOpts: { ajv: { formats: { ...AJV_OPTIONS.formats } } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await fastify.register(app, options);
  return fastify;
}
