// Request ids, deadlines and the access log: every request gets an id (the caller's X-Request-Id
// when it is well-formed, a fresh UUID otherwise), echoed in the response and on every log line of
// the request; a deadline (REQUEST_DEADLINE_MS from its arrival) that bounds everything it waits
// for in MongoDB and carries the request's id to the MongoDB commands it runs (the slow-operation
// log names them by it: src/data/served-requests.ts); and exactly one access line when the
// response is sent (method, URL with the values of personal query parameters redacted, route
// pattern, status, duration, response size, client address and user agent). At shutdown,
// in-flight responses close their connections.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fp from 'fastify-plugin';
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { Deadline } from '../../data/deadline.ts';
import { redactUrl } from '../../logger.ts';

export interface RequestContextOptions {
  /** How long after its arrival a request's answer must leave (REQUEST_DEADLINE_MS). */
  deadlineMs: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** When this request's answer must leave, whatever MongoDB does. */
    deadline: Deadline;
  }
}

export const REQUEST_ID_HEADER = 'x-request-id';
const WELL_FORMED_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Fastify's genReqId: trust the caller's id only when it cannot smuggle anything into logs. */
export function requestIdFrom(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && WELL_FORMED_ID.test(given) ? given : randomUUID();
}

/** Longest user agent a line keeps: the header is the client's to fill. */
const MAX_USER_AGENT = 256;

/** One line per request, on completion, instead of Fastify's two. */
export class AccessLog extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const size = reply.getHeader('content-length');
    const userAgent = request.headers['user-agent'];
    const line = {
      method: request.method,
      url: redactUrl(request.url),
      route: request.routeOptions.url,
      statusCode: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      // Absent for a stream (a change feed), whose length no header says.
      responseBytes: size === undefined ? undefined : Number(size),
      remoteAddress: request.ip,
      userAgent: userAgent?.slice(0, MAX_USER_AGENT),
    };
    if (error) request.log.error({ ...line, err: error }, 'request completed with error');
    else request.log.info(line, 'request completed');
  }
}

export default fp<RequestContextOptions>(
  async (app, options) => {
    app.decorateRequest('deadline', undefined as unknown as Deadline);
    app.addHook('onRequest', (request, reply, done) => {
      request.deadline = Deadline.after(options.deadlineMs, request.id);
      reply.header(REQUEST_ID_HEADER, request.id);
      done();
    });

    // Once shutdown begins, responses still in flight tell their clients to close the
    // connection: a kept-alive socket would otherwise hold the server open past the grace period.
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (closing) reply.header('connection', 'close');
      done(null, payload);
    });
  },
  { name: 'request-context', fastify: '5.x' },
);
