// Browser-facing protections: helmet's security headers on every answer (a strict Content
// Security Policy for the API's JSON, the docs keeping the one Swagger UI sets for itself), and
// CORS for the origins CORS_ORIGINS lists (none by default: the API is called by services).

import fp from 'fastify-plugin';
import helmet from '@fastify/helmet';
import cors from '@fastify/cors';
import { API_KEY_HEADER } from './authentication.ts';

export interface SecurityHeadersOptions {
  corsOrigins: string[];
}

/** Headers a browser client must be allowed to send, and to read from answers. */
const REQUEST_HEADERS = ['authorization', API_KEY_HEADER, 'content-type', 'if-match', 'if-none-match', 'idempotency-key', 'x-request-id'];
const EXPOSED_HEADERS = [
  'etag',
  'location',
  'link',
  'retry-after',
  'x-request-id',
  'idempotency-replayed',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-policy',
  'www-authenticate',
];

export default fp<SecurityHeadersOptions>(
  async (app, options) => {
    // Swagger UI sets a CSP of its own that lets its scripts and styles run; two policies would
    // both apply, so helmet leaves CSP to it on the docs routes (registered after this plugin).
    app.addHook('onRoute', (route) => {
      if (route.url === '/docs' || route.url.startsWith('/docs/')) {
        route.config = { ...route.config, helmet: { contentSecurityPolicy: false } } as typeof route.config;
      }
    });
    await app.register(helmet, {
      // JSON answers load nothing: the strictest policy costs nothing and stops any sniffed HTML.
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      // Served over plain HTTP behind TLS-terminating proxies too; HSTS belongs to the proxy.
      strictTransportSecurity: false,
      crossOriginResourcePolicy: { policy: 'same-site' },
    });
    if (options.corsOrigins.length > 0) {
      await app.register(cors, {
        origin: options.corsOrigins.includes('*') ? '*' : options.corsOrigins,
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
        allowedHeaders: REQUEST_HEADERS,
        exposedHeaders: EXPOSED_HEADERS,
        maxAge: 600,
        // Keys travel in headers, never in cookies.
        credentials: false,
      });
    }
  },
  { name: 'security-headers', fastify: '5.x' },
);
