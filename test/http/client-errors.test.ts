// Requests refused below the app, over raw sockets against a listening app: what Node's HTTP
// parser cannot read, what HTTP/1.1 does not allow, expectations the server cannot meet, and
// clients too slow to send their request within REQUEST_TIMEOUT_MS. Each answer is a problem
// document with a request id of its own, and the connection is closed after it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { rawRequest, type RawAnswer } from '../helpers/raw-http.ts';

const REQUEST_TIMEOUT_MS = 2_000;
/** Generous: the setting plus the check interval is what the server promises; the rest is a loaded machine's slack. */
const CUT_BEFORE_MS = 8_000;

function expectProblem(answer: RawAnswer, status: number, code: string): Record<string, unknown> {
  expect(answer.status, answer.raw.slice(0, 300)).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(problem).toMatchObject({
    type: `urn:storekeeper:problem:${code}`,
    status,
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(problem.requestId).toEqual(expect.any(String));
  expect(answer.headers['x-request-id']).toBe(problem.requestId);
  expect(JSON.stringify(problem)).not.toMatch(/Client Error|statusCode/);
  return problem;
}

describe('requests refused below the app', () => {
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    t = await buildTestApp('client_errors', { REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
    await waitForDatabase(t.app);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as { port: number }).port;
  });
  afterAll(() => t.app.close());

  const get = (head: string) => `${head}\r\n\r\n`;

  it.each([
    [
      'Transfer-Encoding with Content-Length',
      'POST /v1/products HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
    ],
    ['a Content-Length that is no number', 'POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['a negative Content-Length', 'POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'],
    [
      'two Content-Lengths',
      'POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    ],
    ['a CR inside a header value', get('GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\rb')],
    ['a LF inside a header value', get('GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\nb')],
    ['a NUL inside a header value', get('GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b')],
    ['a NUL inside a header name', get('GET /health/live HTTP/1.1\r\nHost: x\r\nX\u0000A: b')],
    ['a header folded over two lines', get('GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b')],
    ['a space before a header colon', get('GET /health/live HTTP/1.1\r\nHost : x')],
    ['a method that is no token', get('G@T /health/live HTTP/1.1\r\nHost: x')],
    ['an unknown method', get('FOO /health/live HTTP/1.1\r\nHost: x')],
    ['a lower-case method', get('get /health/live HTTP/1.1\r\nHost: x')],
    ['a space inside the target', get('GET /health/ live HTTP/1.1\r\nHost: x')],
    ['a protocol that is not HTTP', get('GET /health/live HTTX/1.1\r\nHost: x')],
    [
      'a chunk size that is no number',
      'POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n',
    ],
    [
      'a Transfer-Encoding other than chunked',
      'POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\nab',
    ],
  ])('%s: 400 malformed-request problem naming the parser error, and the connection closed', async (_case, request) => {
    const answer = await rawRequest(port, request);
    const problem = expectProblem(answer, 400, 'malformed-request');
    expect(problem.parserCode).toMatch(/^HPE_/);
    expect(answer.headers.connection).toBe('close');
    expect(answer.closed).toBe(true);
  });

  it.each([
    ['HTTP/1.2', get('GET /health/live HTTP/1.2\r\nHost: x')],
    ['HTTP/9.9', get('GET /health/live HTTP/9.9\r\nHost: x')],
    ['HTTP/2.0 in clear text', get('GET /health/live HTTP/2.0\r\nHost: x')],
    ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['HTTP/0.9', 'GET /health/live\r\n\r\n'],
  ])('%s: 400 http-version-not-supported problem, and the connection closed', async (_case, request) => {
    const answer = await rawRequest(port, request);
    expectProblem(answer, 400, 'http-version-not-supported');
    expect(answer.closed).toBe(true);
  });

  it('headers past the size limit: 431 problem', async () => {
    const answer = await rawRequest(port, get(`GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20_000)}`));
    expectProblem(answer, 431, 'headers-too-large');
    expect(answer.closed).toBe(true);
  });

  it('an HTTP/1.1 request without Host: 400 missing-host problem (HTTP/1.0 needs none)', async () => {
    const answer = await rawRequest(port, get('GET /health/live HTTP/1.1'));
    expectProblem(answer, 400, 'missing-host');
    expect(answer.closed).toBe(true);
    const old = await rawRequest(port, get('GET /health/live HTTP/1.0'));
    expect(old.status).toBe(200);
  });

  it('an Expect other than 100-continue: 417 problem; 100-continue is met', async () => {
    const answer = await rawRequest(port, get('GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 200-ok'));
    expectProblem(answer, 417, 'expectation-failed');
    const continued = await rawRequest(
      port,
      get('GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close'),
    );
    expect(continued.raw).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
  });

  it('each refusal is logged once with the request id its answer carries, never as an error', async () => {
    const answer = await rawRequest(port, get('G@T / HTTP/1.1\r\nHost: x'));
    const { requestId } = JSON.parse(answer.body) as { requestId: string };
    const lines = t.logs.lines.filter((line) => line.requestId === requestId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'request refused before routing',
      code: 'malformed-request',
      parserCode: 'HPE_INVALID_METHOD',
    });
    expect(t.logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });

  describe(`clients slower than REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms) are cut before ${CUT_BEFORE_MS} ms with a 408 problem`, () => {
    it('a client that connects and sends nothing', async () => {
      const answer = await rawRequest(port, '', { waitMs: 20_000 });
      expect(answer.closed).toBe(true);
      expect(answer.elapsedMs).toBeLessThan(CUT_BEFORE_MS);
      expectProblem(answer, 408, 'request-timeout');
    });

    it('headers dripped a byte at a time', async () => {
      const head = 'GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ';
      const answer = await rawRequest(port, '', {
        pieces: [head, ...'abcdefghijklmnopqrstuvwxyz'.split('')],
        pauseMs: 500,
        waitMs: 20_000,
      });
      expect(answer.closed).toBe(true);
      expect(answer.elapsedMs).toBeLessThan(CUT_BEFORE_MS);
      const problem = expectProblem(answer, 408, 'request-timeout');
      expect(problem.detail).toContain(`${REQUEST_TIMEOUT_MS} ms`);
    });

    it('a body that never arrives in full', async () => {
      const head = `POST /v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sku":`;
      const answer = await rawRequest(port, '', { pieces: [head, '"A', 'B'], pauseMs: 300, waitMs: 20_000 });
      expect(answer.closed).toBe(true);
      expect(answer.elapsedMs).toBeLessThan(CUT_BEFORE_MS);
      expectProblem(answer, 408, 'request-timeout');
    });

    it('a client that sends its request in time is answered', async () => {
      const answer = await rawRequest(port, '', {
        pieces: ['GET /health/live HTTP/1.1\r\n', 'Host: x\r\n', 'Connection: close\r\n\r\n'],
        pauseMs: 200,
      });
      expect(answer.status).toBe(200);
    });
  });

  it('the server still answers normally afterwards, and logged none of it as its own failure', async () => {
    const answer = await rawRequest(port, get('GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close'));
    expect(answer.status).toBe(200);
    expect(t.logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});
