// 405 Method Not Allowed, for every path the service serves, present and future: a request whose
// path some route answers, with a method none of them does, gets a 405 problem whose Allow header
// lists the methods the path does answer, instead of a 404 saying there is no such resource. The
// router itself is asked, so the list can never disagree with the routes. Decided when the request
// arrives, before its body is read: the method is wrong whatever the body says.

import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.ts';

/** The order Allow lists methods in; others follow alphabetically. */
const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

const rank = (method: string) => (ORDER.includes(method) ? ORDER.indexOf(method) : ORDER.length);

/** The route answering `method` at `url`, or null: Fastify's types leave out that findRoute may find none. */
const routeAt = (app: FastifyInstance, method: string, url: string): ReturnType<FastifyInstance['findRoute']> | null =>
  app.findRoute({ method, url });

/**
 * The methods some route answers at this path (a concrete path, as requested), in Allow's order;
 * none when only OPTIONS does: CORS answers preflights on every path (OPTIONS *), which makes no
 * path known.
 */
function allowedMethods(app: FastifyInstance, path: string): string[] {
  const allowed = app.supportedMethods
    .filter((method) => routeAt(app, method, path) !== null)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return allowed.some((method) => method !== 'OPTIONS') ? allowed : [];
}

function methodNotAllowed(method: string, path: string, allowed: readonly string[]): AppError {
  return new AppError(405, 'method-not-allowed', 'Method Not Allowed', {
    detail: `${method} is not allowed on ${path}; allowed: ${allowed.join(', ')}.`,
    headers: { allow: allowed.join(', ') },
  });
}

export default fp(
  async (app) => {
    app.addHook('onRequest', async (request) => {
      if (!request.is404) return;
      const [path = ''] = request.url.split('?');
      const allowed = allowedMethods(app, path);
      if (allowed.length > 0) throw methodNotAllowed(request.method, path, allowed);
    });
  },
  // A 405 is authenticated and rate limited as a 404 is.
  { name: 'methods', dependencies: ['problem-details', 'authentication'], fastify: '5.x' },
);
