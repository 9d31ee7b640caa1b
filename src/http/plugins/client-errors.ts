// Requests refused below the app: what Node's HTTP parser cannot read (Transfer-Encoding with
// Content-Length, a bad Content-Length, CR, LF or NUL in a header, a method or version that is
// none, headers past the size limit), a client too slow to send its request within
// REQUEST_TIMEOUT_MS, an Expect the server cannot meet, and what the parser lets through but
// HTTP/1.1 does not allow (no Host, a version other than 1.x). Each is answered with a problem
// document where the connection still allows an answer, and the connection is then closed: after
// a parse error nothing else on it can be trusted to be where it seems. No request exists yet
// when the parser fails, so these answers carry a request id generated for them, logged with the
// refusal. A request in another HTTP version is the client's mistake like any other malformed
// request: a 400 (http-version-not-supported), not a 505, so that nothing a client sends can
// make the service answer 5xx.

import { randomUUID } from 'node:crypto';
import { STATUS_CODES, maxHeaderSize, type IncomingMessage, type ServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import fp from 'fastify-plugin';
import type { ConnectionError, FastifyInstance } from 'fastify';
import { AppError } from '../../errors.ts';
import { PROBLEM_MEDIA_TYPE, problemJson } from '../schemas/problem.ts';
import { REQUEST_ID_HEADER } from './request-context.ts';

/** How long a refused connection may take to read its answer before it is destroyed anyway. */
const LINGER_MS = 1_000;

interface Refusal {
  status: number;
  code: string;
  detail: string;
}

/** What the parser's error means for the client, by its code. */
function refusalOf(error: ConnectionError & { reason?: string }, requestTimeoutMs: number): Refusal {
  const reason = typeof error.reason === 'string' ? error.reason : 'unreadable request';
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        code: 'request-timeout',
        detail:
          `The request was not received in full within ${requestTimeoutMs} ms (REQUEST_TIMEOUT_MS); ` +
          'the connection is closed.',
      };
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        code: 'headers-too-large',
        detail: `The request headers are larger than this server reads (${maxHeaderSize} bytes in all).`,
      };
    case 'HPE_INVALID_VERSION':
    case 'HPE_PAUSED_H2_UPGRADE':
      return {
        status: 400,
        code: 'http-version-not-supported',
        detail: `This server speaks HTTP/1.1 (and 1.0) in clear text: ${reason}.`,
      };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return {
        status: 413,
        code: 'payload-too-large',
        detail: 'The chunk extensions of the body are larger than this server reads.',
      };
    default:
      return { status: 400, code: 'malformed-request', detail: `The request is not well-formed HTTP/1.1: ${reason}.` };
  }
}

/** A whole HTTP/1.1 response carrying a problem document, written to a socket as it is. */
function rawProblemResponse(refusal: Refusal, requestId: string, extensions: Record<string, unknown> = {}): string {
  const title = STATUS_CODES[refusal.status] ?? 'Bad Request';
  const body = problemJson({
    code: refusal.code,
    title,
    status: refusal.status,
    detail: refusal.detail,
    requestId,
    extensions,
  });
  return [
    `HTTP/1.1 ${refusal.status} ${title}`,
    `Content-Type: ${PROBLEM_MEDIA_TYPE}; charset=utf-8`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    `${REQUEST_ID_HEADER}: ${requestId}`,
    'Cache-Control: no-store',
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * Fastify's clientErrorHandler (bound to the instance). Writes only when no answer to an earlier
 * request on the connection has begun (as Node's own handler does): bytes after a started
 * response would corrupt it.
 */
export function clientErrorHandler(requestTimeoutMs: number) {
  return function handleClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
    try {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const refusal = refusalOf(error, requestTimeoutMs);
      const requestId = randomUUID();
      try {
        this.log.info(
          {
            requestId,
            code: refusal.code,
            status: refusal.status,
            parserCode: error.code,
            remoteAddress: socket.remoteAddress,
          },
          'request refused before routing',
        );
      } catch {
        // The answer matters more than the line.
      }
      const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (socket.writable && (inFlight === undefined || inFlight === null || !inFlight.headersSent)) {
        const parserCode =
          typeof error.code === 'string' && error.code.startsWith('HPE_') ? { parserCode: error.code } : {};
        socket.end(rawProblemResponse(refusal, requestId, parserCode), () => socket.destroy());
        setTimeout(() => socket.destroy(), LINGER_MS).unref();
      } else {
        socket.destroy();
      }
    } catch {
      socket.destroy();
    }
  };
}

/**
 * Node's own limits on slow clients, honoured to within a check interval: Node looks for expired
 * requests only every connectionsCheckingInterval (30 s by default, which let a 30 s timeout run
 * to a minute), so the interval is a fraction of the timeout, at most 1 s. Headers and body share
 * the one timeout. Missing Host is left to the app (Node would answer a bare 400).
 */
export function serverTimeouts(requestTimeoutMs: number): { requestTimeout: number; http: ServerOptions } {
  // requestTimeout twice: Fastify sets it on the server only after creating it, while Node checks
  // headersTimeout <= requestTimeout when the server is created (its own default is 300 s).
  return {
    requestTimeout: requestTimeoutMs,
    http: {
      requestTimeout: requestTimeoutMs,
      headersTimeout: requestTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(requestTimeoutMs / 4))),
      requireHostHeader: false,
    },
  };
}

export default fp(
  async (app) => {
    // Any Expect but 100-continue (which Node answers itself): Node's default 417 has no body.
    app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
      const requestId = randomUUID();
      const refusal = {
        status: 417,
        code: 'expectation-failed',
        detail: 'This server meets no expectation but 100-continue.',
      };
      app.log.info(
        { requestId, code: refusal.code, status: 417, method: request.method, url: request.url },
        'request refused before routing',
      );
      const instance = request.url?.split('?')[0];
      const body = problemJson({
        code: refusal.code,
        title: STATUS_CODES[417] ?? 'Expectation Failed',
        status: 417,
        detail: refusal.detail,
        requestId,
        ...(instance !== undefined && { instance }),
      });
      response.writeHead(417, {
        'content-type': `${PROBLEM_MEDIA_TYPE}; charset=utf-8`,
        'content-length': Buffer.byteLength(body),
        [REQUEST_ID_HEADER]: requestId,
        connection: 'close',
      });
      response.end(body);
    });

    // What the parser accepts and HTTP/1.1 refuses. Before authentication: such a request is no request of any route.
    app.addHook('onRequest', async (request) => {
      const { httpVersionMajor, httpVersion } = request.raw;
      if (httpVersionMajor !== 1) {
        throw new AppError(400, 'http-version-not-supported', 'Bad Request', {
          detail: `This server speaks HTTP/1.1 (and 1.0) in clear text, not HTTP/${httpVersion}.`,
          headers: { connection: 'close' },
        });
      }
      if (httpVersion === '1.1' && request.headers.host === undefined) {
        throw new AppError(400, 'missing-host', 'Bad Request', {
          detail: 'An HTTP/1.1 request must carry a Host header.',
          headers: { connection: 'close' },
        });
      }
    });
  },
  { name: 'client-errors', dependencies: ['problem-details', 'security-headers'], fastify: '5.x' },
);
