// The application as a Fastify plugin, and the one factory that builds the server around it.
// Production (src/server.ts), the tests and the OpenAPI generator all call buildApp, so what
// is tested is what runs.

import { readFileSync } from 'node:fs';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import database from './data/database.ts';
import openapi from './http/plugins/openapi.ts';
import problemDetails from './http/plugins/problem-details.ts';
import requestContext, { AccessLog, requestIdFrom } from './http/plugins/request-context.ts';
import health from './http/routes/health.ts';

export interface AppOptions {
  config: Config & { mongo: { uri: string } };
  /** false: build the routes without opening a MongoDB connection. */
  connect?: boolean;
}

export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

const app = fp<AppOptions>(async (fastify, { config, connect }) => {
  // Bodies are JSON (more JSON media types join per route); text/plain is not an input here.
  fastify.removeContentTypeParser('text/plain');
  await fastify.register(requestContext);
  await fastify.register(problemDetails, { retryAfterSeconds: config.mongo.retryAfterSeconds });
  await fastify.register(openapi, { docs: config.http.docs, version: VERSION });
  await fastify.register(database, { ...config.mongo, connect });

  await fastify.register(health, { prefix: '/health', readinessTimeoutMs: config.mongo.readinessTimeoutMs });
}, { name: 'storekeeper', fastify: '5.x' });

export default app;

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
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await fastify.register(app, options);
  return fastify;
}
