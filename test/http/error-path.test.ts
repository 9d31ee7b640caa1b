// The error path cannot fail: whatever a route throws (an Error, a plain object, null, an error
// whose properties throw when read, a problem JSON cannot write) and whatever breaks while it is
// handled (the logger itself), the client gets a problem document and never Fastify's own body.

import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.ts';
import { createLogger, redactSecrets, serializeThrown } from '../../src/logger.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { PROBLEM_CONTENT_TYPE } from '../helpers/problems.ts';

/** An Error whose every property read throws, as a hostile or broken library's might. */
function unreadableError(): Error {
  const error = Object.create(Error.prototype) as Error;
  for (const name of ['message', 'stack', 'statusCode', 'validation', 'code', 'name', 'cause', 'errorResponse']) {
    Object.defineProperty(error, name, {
      enumerable: true,
      get() {
        throw new Error(`reading ${name} fails`);
      },
    });
  }
  return error;
}

describe('the error path', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('error_path');
    const thrower = (value: () => unknown) => async () => {
      throw value();
    };
    t.app.get(
      '/test/throws/plain-object',
      thrower(() => ({ code: 121, keyPattern: undefined })),
    );
    t.app.get(
      '/test/throws/null',
      thrower(() => null),
    );
    t.app.get(
      '/test/throws/string',
      thrower(() => 'mongodb://admin:hunter2@db.internal:27017 failed'),
    );
    t.app.get('/test/throws/unreadable', thrower(unreadableError));
    t.app.get(
      '/test/throws/bad-status',
      thrower(() => Object.assign(new Error('odd'), { statusCode: 450.5 })),
    );
    t.app.get(
      '/test/throws/unserializable-problem',
      thrower(() => new AppError(409, 'odd', 'Conflict', { detail: 'carries a BigInt', extensions: { big: 10n } })),
    );
    t.app.get(
      '/test/throws/with-a-broken-logger',
      {
        preHandler: async (request) => {
          const broken = () => {
            throw new Error('the log destination is gone');
          };
          request.log = new Proxy(request.log, {
            get: (target, name) =>
              ['info', 'warn', 'error', 'child'].includes(String(name)) ? broken : Reflect.get(target, name),
          });
        },
      },
      thrower(() => new Error('boom')),
    );
    await t.app.ready();
  });
  afterAll(() => t.app.close());

  it.each([
    ['a plain object (a driver error that lost its class)', '/test/throws/plain-object'],
    ['null', '/test/throws/null'],
    ['a string', '/test/throws/string'],
    ['an Error whose properties throw when read', '/test/throws/unreadable'],
    ['an error with a status code that is not one', '/test/throws/bad-status'],
    ['any error while the logger throws', '/test/throws/with-a-broken-logger'],
  ])('a route that throws %s answers 500 with a problem document that reveals nothing', async (_case, url) => {
    const res = await t.app.inject({ url, headers: { 'x-request-id': 'error-path-1' } });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.json()).toMatchObject({
      type: 'urn:storekeeper:problem:internal-error',
      title: 'Internal Server Error',
      status: 500,
      detail: 'An unexpected error occurred.',
      requestId: 'error-path-1',
    });
    expect(res.body).not.toContain('hunter2');
    expect(res.body).not.toContain('statusCode');
  });

  it('logs what was thrown, with credentials redacted, when it is not an Error', async () => {
    await t.app.inject({ url: '/test/throws/string', headers: { 'x-request-id': 'error-path-string' } });
    const line = t.logs.lines.find((l) => l.requestId === 'error-path-string' && l.msg === 'request failed');
    expect(line).toBeDefined();
    expect(JSON.stringify(line)).not.toContain('hunter2');
    expect((line!.err as { message: string }).message).toContain('failed');
  });

  it('a problem whose members JSON cannot write keeps its status and type, without the members', async () => {
    const res = await t.app.inject({ url: '/test/throws/unserializable-problem' });
    expect(res.statusCode).toBe(409);
    expect(res.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(res.json()).toMatchObject({
      type: 'urn:storekeeper:problem:odd',
      title: 'Conflict',
      status: 409,
      detail: 'carries a BigInt',
    });
    expect(res.json().big).toBeUndefined();
  });

  it('the service still answers normally afterwards', async () => {
    expect((await t.app.inject({ url: '/health/live' })).statusCode).toBe(200);
  });
});

describe('the logger never throws on what it is given to serialize', () => {
  const lines: string[] = [];
  const logger = createLogger(
    { level: 'info', format: 'json' },
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );

  it.each([
    ['a plain object without a message', () => ({ code: 121 })],
    ['null', () => null],
    ['undefined', () => undefined],
    ['a number', () => 42],
    [
      'a cyclic object',
      () => {
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        return cyclic;
      },
    ],
    ['an Error whose properties throw when read', unreadableError],
    ['an object whose message is not a string', () => ({ message: { nested: true } })],
  ])('logs %s as a line', (_case, thrown) => {
    const before = lines.length;
    expect(() => logger.error({ err: thrown() }, 'failed')).not.toThrow();
    expect(lines.length).toBe(before + 1);
    expect(() => JSON.parse(lines.at(-1)!)).not.toThrow();
  });

  it('redacts connection strings in what is not an Error too', () => {
    expect(JSON.stringify(serializeThrown({ uri: 'mongodb://admin:hunter2@db:27017' }))).not.toContain('hunter2');
    expect(redactSecrets(undefined as unknown as string)).toBeUndefined();
  });
});
