// Browser-facing protections: helmet's security headers on every answer (a strict Content
// Security Policy for the API's JSON, the docs keeping the one Swagger UI sets for itself), and
// CORS for the origins CORS_ORIGINS lists (none by default: the API is called by services).
//
// helmet computes its headers from its options alone, so they are computed once here and then
// set on each answer as they are: running its middleware chain per request was about 4 % of a
// read's CPU in the benchmark.

import type { IncomingMessage, ServerResponse } from 'node:http';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import cors from '@fastify/cors';
import { API_KEY_HEADER } from './authentication.ts';

export interface SecurityHeadersOptions {
  corsOrigins: string[];
}

/** Headers a browser client must be allowed to send, and to read from answers. */
const REQUEST_HEADERS = [
  'authorization',
  API_KEY_HEADER,
  'content-type',
  'if-match',
  'if-none-match',
  'idempotency-key',
  'x-request-id',
];
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

const HELMET_OPTIONS: HelmetOptions = {
  // JSON answers load nothing: the strictest policy costs nothing and stops any sniffed HTML.
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  // Served over plain HTTP behind TLS-terminating proxies too; HSTS belongs to the proxy.
  strictTransportSecurity: false,
  crossOriginResourcePolicy: { policy: 'same-site' },
};

/** The headers helmet sets for these options, captured from one run of its middleware. */
export function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers = new Map<string, string>();
  const response = {
    setHeader(name: string, value: unknown) {
      headers.set(name.toLowerCase(), String(value));
    },
    removeHeader(name: string) {
      headers.delete(name.toLowerCase());
    },
  };
  // A member, not a variable: the compiler cannot see the callback set it.
  const run = { done: false };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error instanceof Error ? error : new Error('helmet failed', { cause: error });
    run.done = true;
  });
  if (!run.done) throw new Error('helmet did not finish synchronously: its headers depend on the request');
  return Object.fromEntries(headers);
}

const isDocs = (url: string) => url === '/docs' || url.startsWith('/docs/');

export default fp<SecurityHeadersOptions>(
  async (app, options) => {
    const apiHeaders = helmetHeaders(HELMET_OPTIONS);
    // Swagger UI sets a CSP of its own that lets its scripts and styles run; two policies would
    // both apply, so the docs routes get helmet's other headers only.
    const docsHeaders = helmetHeaders({ ...HELMET_OPTIONS, contentSecurityPolicy: false });
    app.addHook('onRequest', (request, reply, done) => {
      const url = request.routeOptions.url;
      reply.headers(url !== undefined && isDocs(url) ? docsHeaders : apiHeaders);
      done();
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
