// One check for "every error answer is a problem document carrying its request id", shared by
// the API suites: sends each request and returns the statuses, for the caller to compare.

import { expect } from 'vitest';
import type { InjectOptions } from 'fastify';
import type { App } from '../../src/app.ts';

export const PROBLEM_CONTENT_TYPE = /^application\/problem\+json/;

export async function expectProblemAnswers(app: App, requests: (InjectOptions & { url: string })[]): Promise<number[]> {
  const statuses: number[] = [];
  for (const request of requests) {
    const res = await app.inject(request);
    const label = `${request.method} ${request.url}`;
    statuses.push(res.statusCode);
    expect(res.headers['content-type'], label).toMatch(PROBLEM_CONTENT_TYPE);
    const body = res.json();
    expect(body.status, label).toBe(res.statusCode);
    expect(body.requestId, label).toBe(res.headers['x-request-id']);
    expect(body.type, label).toMatch(/^urn:storekeeper:problem:/);
  }
  return statuses;
}
