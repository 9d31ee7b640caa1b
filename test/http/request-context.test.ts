import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, redactSecrets } from '../../src/logger.ts';
import { buildTestApp, LogCapture, type TestApp } from '../helpers/app.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('request_ids');
    t.app.get('/test/log', async (request) => {
      request.log.info({ step: 'inside handler' }, 'handler ran');
      return { ok: true };
    });
    await t.app.ready();
  });
  afterAll(() => t.app.close());

  it('when the caller sends none, a UUID is generated, returned in X-Request-Id and on every log line of the request', async () => {
    const res = await t.app.inject('/test/log');
    const id = res.headers['x-request-id'];
    expect(id).toMatch(UUID);
    const lines = t.logs.lines.filter((line) => line.requestId === id);
    expect(lines.map((line) => line.msg)).toEqual(['handler ran', 'request completed']);
    expect(lines[1]).toMatchObject({ method: 'GET', url: '/test/log', statusCode: 200 });
  });

  it('when the caller sends a well-formed X-Request-Id, it is kept and echoed', async () => {
    const res = await t.app.inject({ url: '/test/log', headers: { 'x-request-id': 'checkout-7f3a:42' } });
    expect(res.headers['x-request-id']).toBe('checkout-7f3a:42');
    expect(t.logs.lines.some((line) => line.requestId === 'checkout-7f3a:42' && line.msg === 'handler ran')).toBe(true);
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['log injection', 'x\n{"level":60}'],
    ['spaces', 'two words'],
    ['empty', ''],
  ])('when the X-Request-Id is malformed (%s), a fresh UUID replaces it', async (_case, given) => {
    const res = await t.app.inject({ url: '/test/log', headers: { 'x-request-id': given } });
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('error responses carry the request id too', async () => {
    const res = await t.app.inject({ url: '/nowhere', headers: { 'x-request-id': 'err-1' } });
    expect(res.headers['x-request-id']).toBe('err-1');
    expect(res.json().requestId).toBe('err-1');
  });
});

describe('redaction of secrets in logs', () => {
  it('censors authorization headers, API keys, passwords and tokens wherever they appear', () => {
    const capture = new LogCapture();
    const logger = createLogger({ level: 'info', format: 'json' }, capture);
    logger.info(
      { req: { headers: { authorization: 'Bearer sk_live_abc', 'x-api-key': 'sk_live_def', cookie: 'session=ghi' } } },
      'request',
    );
    logger.info(
      { user: { password: 'p4ssw0rd' }, key: { apiKey: 'sk_live_jkl', token: 'tok_mno', secret: 'shh' } },
      'objects',
    );
    logger.info({ password: 'top-level-pw' }, 'top level');
    const text = capture.text();
    for (const secret of [
      'sk_live_abc',
      'sk_live_def',
      'session=ghi',
      'p4ssw0rd',
      'sk_live_jkl',
      'tok_mno',
      'shh',
      'top-level-pw',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(capture.lines[0]).toMatchObject({ req: { headers: { authorization: '[redacted]' } } });
  });

  it('removes the credentials of MongoDB connection strings in messages and errors', () => {
    const capture = new LogCapture();
    const logger = createLogger({ level: 'info', format: 'json' }, capture);
    logger.warn('cannot reach mongodb://svc:s3cr3t@db1:27017,db2:27017/shop?replicaSet=rs0');
    logger.error({ err: new Error('auth failed for mongodb+srv://ops:pa55@cluster0.example.net/x') }, 'failed');
    const text = capture.text();
    expect(text).not.toContain('s3cr3t');
    expect(text).not.toContain('pa55');
    expect(text).toContain('db1:27017');
    expect(redactSecrets('mongodb://u:p@h/x')).toBe('mongodb://<credentials>@h/x');
  });

  it('the service never logs the password of its own MONGODB_URI', async () => {
    const mongoUri = 'mongodb://storekeeper:Sup3rS3cret@127.0.0.1:1/?replicaSet=rs0';
    const t = await buildTestApp('redaction', {
      MONGODB_URI: mongoUri,
      MONGODB_SERVER_SELECTION_TIMEOUT_MS: '100',
      MONGODB_CONNECT_TIMEOUT_MS: '100',
    });
    await t.app.ready();
    // Let at least one failed connection attempt be logged.
    await new Promise<void>((resolve) => {
      const check = () =>
        t.logs.lines.some((line) => line.msg === 'MongoDB unreachable; retrying') ? resolve() : setTimeout(check, 50);
      check();
    });
    await t.app.close();
    expect(t.logs.text()).toContain('127.0.0.1:1');
    expect(t.logs.text()).not.toContain('Sup3rS3cret');
  });
});
