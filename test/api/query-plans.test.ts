import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Entity } from '../../src/domain/entity.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import type { FilterClause, ListRequest } from '../../src/data/query.ts';
import { buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { sampleValue } from '../helpers/filter-values.ts';

/** Every query shape the list API accepts: each filter clause alone, and none, under every sort. */
function allowedShapes(entity: Entity): { label: string; request: ListRequest }[] {
  const filterSets: { label: string; filters: FilterClause[]; q?: string }[] = [{ label: 'no filter', filters: [] }];
  for (const [field, ops] of Object.entries(entity.filters)) {
    for (const op of ops)
      filterSets.push({ label: `${field}[${op}]`, filters: [{ field, op, value: sampleValue(entity, field, op) }] });
  }
  if (entity.textSearch) filterSets.push({ label: 'q', filters: [], q: 'sample' });
  return filterSets.flatMap((set) =>
    entity.sorts.flatMap((field) =>
      ([1, -1] as const).map((direction) => ({
        label: `${set.label} sorted by ${direction === 1 ? '' : '-'}${field}`,
        request: { filters: set.filters, q: set.q, sort: { field, direction }, limit: 50, count: false },
      })),
    ),
  );
}

function stages(plan: unknown): string[] {
  const found: string[] = [];
  const walk = (node: unknown) => {
    if (node === null || typeof node !== 'object') return;
    const stage = (node as { stage?: unknown }).stage;
    if (typeof stage === 'string') found.push(stage);
    for (const child of Object.values(node)) walk(child);
  };
  walk(plan);
  return found;
}

describe('every list query the API allows is served by an index', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('query_plans');
    await waitForDatabase(t.app);
  });
  afterAll(() => t.app.close());

  it('the check itself recognises a collection scan (a query on an unindexed field, unsorted)', async () => {
    const products = t.app.stores.repositoryOf('products').model;
    const explained = (await products.find({ description: 'x' }).explain('queryPlanner')) as unknown as {
      queryPlanner: { winningPlan: unknown };
    };
    expect(stages(explained.queryPlanner.winningPlan)).toContain('COLLSCAN');
  });

  for (const entity of ENTITIES as readonly Entity[]) {
    it(`${entity.collection}: no allowed filter and sort combination needs a collection scan`, async () => {
      const repository = t.app.stores.repositoryOf(entity.collection);
      const shapes = allowedShapes(entity);
      const collectionScans: string[] = [];
      for (const { label, request } of shapes) {
        const explained = (await repository.explainList(request)) as { queryPlanner: { winningPlan: unknown } };
        const winning = stages(explained.queryPlanner.winningPlan);
        if (
          winning.includes('COLLSCAN') ||
          !(winning.includes('IXSCAN') || winning.includes('TEXT_MATCH') || winning.includes('TEXT'))
        ) {
          collectionScans.push(`${label}: ${winning.join(' > ')}`);
        }
      }
      expect(collectionScans).toEqual([]);
      expect(shapes.length).toBeGreaterThan(entity.sorts.length * 2);
    });
  }
});
