import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileErrors, validate } from '@readme/openapi-parser';
import { OPENAPI_FILE, renderOpenApi } from '../../src/cli/openapi.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

describe('the OpenAPI contract', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('openapi');
    await t.app.ready();
  });
  afterAll(() => t.app.close());

  it('the committed openapi/openapi.json is exactly what the code generates (run `npm run openapi` when this fails)', async () => {
    expect(await readFile(OPENAPI_FILE, 'utf8')).toBe(await renderOpenApi());
  });

  it('is a valid OpenAPI document', async () => {
    const spec = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'));
    const result = await validate(spec);
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
  });

  it('documents every route with an operationId, a summary and its error responses as problem documents', async () => {
    const spec = JSON.parse(await readFile(OPENAPI_FILE, 'utf8'));
    const operations = Object.entries(spec.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ route: `${method.toUpperCase()} ${path}`, operation })),
    );
    expect(operations.length).toBeGreaterThan(0);
    for (const { route, operation } of operations) {
      expect(operation.operationId, route).toBeTruthy();
      expect(operation.summary, route).toBeTruthy();
      const errors = Object.entries(operation.responses as Record<string, any>).filter(
        ([status]) => Number(status) >= 400,
      );
      expect(errors.length, `${route} documents no error response`).toBeGreaterThan(0);
      for (const [status, response] of errors) {
        expect(Object.keys(response.content), `${route} ${status}`).toEqual(['application/problem+json']);
        // One example, or named ones when a status comes in several kinds (each a problem document).
        const media = response.content['application/problem+json'];
        expect(media.example ?? media.examples, `${route} ${status} example`).toBeDefined();
        for (const named of Object.values(
          (media.examples ?? {}) as Record<string, { value: { type: string; status: number } }>,
        )) {
          expect(named.value.type, `${route} ${status}`).toMatch(/^urn:storekeeper:problem:/);
          expect(named.value.status, `${route} ${status}`).toBe(Number(status));
        }
      }
    }
  });

  it('serves Swagger UI at /docs and the document at /docs/json', async () => {
    const ui = await t.app.inject('/docs/');
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    expect(ui.body).toContain('swagger-ui');
    const json = await t.app.inject('/docs/json');
    expect(json.statusCode).toBe(200);
    expect(json.json().openapi).toBe('3.1.0');
  });

  it('with DOCS_ENABLED=false, /docs is not served', async () => {
    const closed = await buildTestApp('openapi_off', { DOCS_ENABLED: 'false' });
    try {
      expect((await closed.app.inject('/docs/')).statusCode).toBe(404);
    } finally {
      await closed.app.close();
    }
  });
});
