import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CONTENT_TYPE as PROBLEM } from '../helpers/problems.ts';
import { Type } from 'typebox';
import mongoose from 'mongoose';
import { problemResponses } from '../../src/http/schemas/problem.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

describe('problem documents', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp('problems', { BODY_LIMIT_BYTES: '2048' });
    // Routes shaped like the real ones, to drive each failure through the shared pipeline.
    t.app.post(
      '/test/widgets',
      {
        schema: {
          body: Type.Object(
            {
              name: Type.String({ minLength: 1 }),
              price: Type.Integer({ minimum: 0 }),
              colour: Type.Optional(Type.Union([Type.Literal('red'), Type.Literal('blue')])),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Object({ ok: Type.Boolean() }), ...problemResponses(400, 413, 415, 500) },
        },
      },
      async (_request, reply) => reply.code(201).send({ ok: true }),
    );
    t.app.get('/test/crash', async () => {
      throw new Error('secret internals: mongodb://admin:hunter2@db.internal:27017');
    });
    t.app.get('/test/database-down', async () => {
      throw new mongoose.mongo.MongoNetworkError('connect ECONNREFUSED 127.0.0.1:27017');
    });
    await t.app.ready();
  });

  afterAll(async () => {
    await t.app.close();
  });

  it('when the route does not exist, answers 404 with a problem naming the route and the request id', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/nothing?x=1', headers: { 'x-request-id': 'trace-404' } });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(PROBLEM);
    expect(res.json()).toEqual({
      type: 'urn:storekeeper:problem:not-found',
      title: 'Not Found',
      status: 404,
      detail: 'Route GET /v1/nothing not found.',
      instance: '/v1/nothing',
      requestId: 'trace-404',
    });
  });

  it('when the body breaks the schema, answers 400 listing every invalid field with a pointer to it', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/widgets',
      payload: { price: -1, colour: 'green', extra: true },
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(PROBLEM);
    const body = res.json();
    expect(body).toMatchObject({
      type: 'urn:storekeeper:problem:validation-failed',
      status: 400,
      requestId: res.headers['x-request-id'],
    });
    const byPointer = Object.fromEntries(
      body.errors.map((e: { pointer: string; message: string }) => [e.pointer, e.message]),
    );
    expect(byPointer['/name']).toBe('is required');
    expect(byPointer['/price']).toBe('must be >= 0');
    expect(byPointer['/extra']).toBe('is not an allowed property');
    expect(body.errors.every((e: { in: string }) => e.in === 'body')).toBe(true);
    expect(Object.keys(byPointer)).toContain('/colour');
  });

  it('when the body is not valid JSON, answers 400 malformed-body', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/widgets',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": "x",',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:malformed-body', status: 400 });
  });

  it('when the content type is not JSON, answers 415', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/widgets',
      headers: { 'content-type': 'text/plain' },
      payload: 'name=x',
    });
    expect(res.statusCode).toBe(415);
    expect(res.headers['content-type']).toMatch(PROBLEM);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:unsupported-media-type', status: 415 });
  });

  it('when the body is larger than BODY_LIMIT_BYTES, answers 413', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/widgets',
      payload: { name: 'x'.repeat(4096), price: 1 },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:payload-too-large', status: 413 });
  });

  it('when a handler fails unexpectedly, answers a bare 500 and logs the error with the request id', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/test/crash', headers: { 'x-request-id': 'trace-500' } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      type: 'urn:storekeeper:problem:internal-error',
      title: 'Internal Server Error',
      status: 500,
      detail: 'An unexpected error occurred.',
      instance: '/test/crash',
      requestId: 'trace-500',
    });
    expect(res.body).not.toContain('secret internals');
    const logged = t.logs.lines.find((line) => line.requestId === 'trace-500' && line.msg === 'request failed');
    expect(logged).toBeDefined();
    expect(JSON.stringify(logged)).toContain('secret internals');
    // Even in the log, the connection string's password is gone.
    expect(t.logs.text()).not.toContain('hunter2');
  });

  it('when MongoDB cannot be reached, answers 503 with Retry-After', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/test/database-down',
      headers: { 'x-request-id': 'trace-503' },
    });
    expect(res.statusCode).toBe(503);
    // An outage is logged as a warning with its cause, not as an error like a bug.
    const logged = t.logs.lines.find((line) => line.requestId === 'trace-503' && line.msg === 'request failed');
    expect(logged?.level).toBe(40);
    expect(JSON.stringify(logged)).toContain('ECONNREFUSED');
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:service-unavailable', status: 503 });
  });
});
