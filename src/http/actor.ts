// Who makes a write, as the audit trail records it (the API key the request authenticated with and
// the request's id), on what terms (the request's deadline and its Idempotency-Key's guard), and
// where it logs. Every write route passes writeContextOf(request) to the shop, so none builds it by
// hand.

import type { FastifyRequest } from 'fastify';
import type { WriteContext } from '../data/unit-of-work.ts';

export function writeContextOf(request: FastifyRequest): WriteContext {
  const { principal } = request;
  // Write routes all need a scope, so the authentication plugin has refused a request without a
  // key before this runs; getting here without one is a bug, and nothing must be written.
  if (principal === null)
    throw new Error(`${request.method} ${request.routeOptions.url}: a write without an authenticated API key`);
  return {
    actor: {
      keyId: principal.keyId,
      keyName: principal.name,
      requestId: request.id,
      deadline: request.deadline,
      ...(request.writeGuard !== undefined && { guard: request.writeGuard }),
    },
    log: request.log,
  };
}
