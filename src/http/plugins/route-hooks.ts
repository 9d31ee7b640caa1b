// Hooks that concern some routes only are added to those routes, from an onRoute hook, rather
// than to the whole app: a global hook runs (and allocates its promise) on every request,
// including the reads it returns from at once.

import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';

type RouteHookName = 'preValidation' | 'preHandler' | 'onSend' | 'onResponse' | 'onRequestAbort';

/** A hook of any of those: each takes the request, most the reply, onSend the payload too. */
type RouteHook = (request: FastifyRequest, reply: FastifyReply, payload: unknown) => unknown;

/**
 * Adds `hook` to one route's `name` hooks: after the route's own, or before them with
 * `first` (app-wide hooks still run before every route-level one).
 */
export function addRouteHook(route: RouteOptions, name: RouteHookName, hook: RouteHook, first = false): void {
  const existing: unknown = route[name];
  const hooks = existing === undefined ? [] : [existing].flat();
  if (first) hooks.unshift(hook);
  else hooks.push(hook);
  (route as unknown as Record<RouteHookName, unknown>)[name] = hooks;
}
