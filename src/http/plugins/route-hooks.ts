// Hooks that concern some routes only are added to those routes, from an onRoute hook, rather
// than to the whole app: a global hook runs (and allocates its promise) on every request,
// including the reads it returns from at once.

import type { RouteOptions } from 'fastify';

type RouteHookName = 'preValidation' | 'preHandler' | 'onSend' | 'onResponse' | 'onRequestAbort';

/**
 * Adds `hook` to one route's `name` hooks: after the route's own, or before them with
 * `first` (app-wide hooks still run before every route-level one).
 */
export function addRouteHook(
  route: RouteOptions,
  name: RouteHookName,
  hook: (...args: any[]) => unknown,
  first = false,
): void {
  const existing = route[name] as unknown;
  const hooks = existing === undefined ? [] : Array.isArray(existing) ? [...existing] : [existing];
  if (first) hooks.unshift(hook);
  else hooks.push(hook);
  (route as unknown as Record<RouteHookName, unknown>)[name] = hooks;
}
