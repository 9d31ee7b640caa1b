// The OpenAPI description, generated from the route schemas (the routes are the contract),
// and Swagger UI at /docs when enabled. `npm run openapi` writes the same document to
// openapi/openapi.json.

import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { ENTITIES } from '../../domain/entities/index.ts';
import { SECURITY_SCHEMES } from './authentication.ts';

export interface OpenApiOptions {
  docs: boolean;
  version: string;
}

/**
 * Route schema marker of a body that may be left out. @fastify/swagger marks every request body
 * required (Fastify validates a missing body as null, which the route's schema may allow).
 */
export const OPTIONAL_BODY = 'x-optional-body';

type Operations = Record<string, Record<string, { requestBody?: { required?: boolean }; [OPTIONAL_BODY]?: boolean }>>;

function markOptionalBodies(document: Record<string, unknown>): Record<string, unknown> {
  for (const operations of Object.values((document.paths ?? {}) as Operations)) {
    for (const operation of Object.values(operations)) {
      if (operation[OPTIONAL_BODY] !== true) continue;
      delete operation[OPTIONAL_BODY];
      if (operation.requestBody !== undefined) operation.requestBody.required = false;
    }
  }
  return document;
}

export const OPENAPI_TAGS = [
  { name: 'health', description: 'Liveness and readiness for orchestrators and load balancers.' },
  ...ENTITIES.map((entity) => ({ name: entity.collection, description: entity.description })),
  { name: 'batch', description: 'Several document writes in one transaction: all or nothing.' },
  { name: 'audit', description: 'The audit trail of writes: which API key changed which document, in which request, and when (the audit:read scope).' },
  { name: 'keys', description: 'API keys: create, list and revoke (the keys:admin scope).' },
];

export default fp<OpenApiOptions>(
  async (app, options) => {
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
        tags: OPENAPI_TAGS,
        components: { securitySchemes: SECURITY_SCHEMES },
      },
      transformObject: (document) => ('openapiObject' in document ? markOptionalBodies(document.openapiObject as Record<string, unknown>) : document.swaggerObject),
      // Shared schemas keep their $id as their component name instead of def-0, def-1...
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
    if (options.docs) {
      await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
    }
  },
  { name: 'openapi', fastify: '5.x' },
);
