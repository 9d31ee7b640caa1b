// What the logs keep of a request: the usual access fields (route pattern, client address, user
// agent, response size and time), and no personal data: not in URLs' query strings, not in bodies,
// not in what MongoDB's errors echo of a document.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { createLogger, redactUrl, serializeThrown } from '../../src/logger.ts';
import { buildTestApp, LogCapture, waitForDatabase, type TestApp } from '../helpers/app.ts';

const customer = {
  email: 'jane.privacy@example.com',
  name: 'Jane Privacy',
  phone: '+441632960123',
  addresses: [{ line1: '17 Hidden Lane', city: 'Secretville', postalCode: 'SV1 2XY', country: 'GB' }],
};
const PERSONAL = [
  'jane.privacy',
  'Jane Privacy',
  'Jane%20Privacy',
  '441632960123',
  'Hidden Lane',
  'Secretville',
  'SV1 2XY',
];

describe('access lines and personal data in logs', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('log-hygiene');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('a customer created, refused as a duplicate, listed by e-mail and name and refused as malformed leaves none of its data in the logs', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/v1/customers', payload: customer });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id as string;
    expect((await t.app.inject({ method: 'POST', url: '/v1/customers', payload: customer })).statusCode).toBe(409);
    const listed = await t.app.inject(
      `/v1/customers?email=${encodeURIComponent(customer.email)}&name=${encodeURIComponent(customer.name)}&limit=5`,
    );
    expect(listed.statusCode, listed.body).toBe(200);
    expect(listed.json().items).toHaveLength(1);
    const malformed = await t.app.inject({
      method: 'POST',
      url: '/v1/customers',
      payload: { ...customer, email: 'jane.privacy-at-example', phone: 'Secretville' },
    });
    expect(malformed.statusCode).toBe(400);
    expect((await t.app.inject(`/v1/customers/${id}`)).statusCode).toBe(200);

    const text = t.logs.text();
    for (const value of PERSONAL) expect(text).not.toContain(value);
    const access = t.logs.lines.find(
      (line) => line.msg === 'request completed' && line.route === '/v1/customers' && line.method === 'GET',
    );
    expect(access).toMatchObject({
      url: '/v1/customers?email=[redacted]&name=[redacted]&limit=5',
      statusCode: 200,
      remoteAddress: '127.0.0.1',
      userAgent: 'lightMyRequest',
    });
    expect(access!.responseBytes).toBe(Buffer.byteLength(listed.body));
    expect(typeof access!.durationMs).toBe('number');
  });

  it('the access line of a route with parameters names its pattern', async () => {
    const res = await t.app.inject({
      url: '/v1/products/6650f0c2a1b2c3d4e5f60718',
      headers: { 'user-agent': 'probe/1.0' },
    });
    const access = t.logs.lines.find(
      (line) => line.requestId === res.headers['x-request-id'] && line.msg === 'request completed',
    );
    expect(access).toMatchObject({ route: '/v1/products/:id', statusCode: 404, userAgent: 'probe/1.0' });
  });
});

describe('redaction', () => {
  it('replaces the values of personal query parameters and keeps the rest of the URL', () => {
    expect(redactUrl('/v1/customers?email=a%40b.example&limit=5')).toBe('/v1/customers?email=[redacted]&limit=5');
    expect(redactUrl('/v1/customers?name[in]=Ann,Bob&addresses.city=Paris&status=active')).toBe(
      '/v1/customers?name[in]=[redacted]&addresses.city=[redacted]&status=active',
    );
    expect(redactUrl('/v1/customers?e%2Dmail=x&phone')).toBe('/v1/customers?e%2Dmail=[redacted]&phone');
    expect(redactUrl('/v1/products/abc')).toBe('/v1/products/abc');
  });

  it('censors bodies and personal members of a log object', () => {
    const capture = new LogCapture();
    const logger = createLogger({ level: 'info', format: 'json' }, capture);
    logger.info({ body: customer, customer: { email: customer.email, phone: customer.phone } }, 'a line with a body');
    logger.info({ email: customer.email, addresses: customer.addresses }, 'top level');
    const text = capture.text();
    for (const value of PERSONAL) expect(text).not.toContain(value);
  });

  it("removes what MongoDB's errors echo of a document: the duplicate key, a validator's details, the write", () => {
    const error = new mongoose.mongo.MongoServerError({
      message:
        'E11000 duplicate key error collection: shop.customers index: email_1 dup key: { email: "jane.privacy@example.com" }',
      code: 11000,
      keyValue: { email: customer.email },
      errInfo: { details: { consideredValue: customer.phone } },
    });
    const serialized = JSON.stringify(serializeThrown(error));
    for (const value of PERSONAL) expect(serialized).not.toContain(value);
    expect(serialized).toContain('dup key: { [redacted] }');
    expect(serialized).toContain('11000');
  });
});
