// Lists: the query language every list route speaks (filters as `field` or `field[op]`, sort,
// fields, limit, cursor, count, q) turned into a list request, and a page turned into the answer
// with its `next` link. The document lists and the audit trail's list are these, with their own
// query-string schema (src/http/schemas/documents.ts) and repository; the change feed's filters
// are the lists' too (src/http/routes/changes.ts).

import { Type } from 'typebox';
import type { Entity, FilterOp } from '../domain/entity.ts';
import type { Deadline } from '../data/deadline.ts';
import type { DocumentRepository } from '../data/documents.ts';
import type { FilterClause, ListRequest } from '../data/query.ts';
import { AppError } from '../errors.ts';
import { CONTROL_PARAMS, LIST_DEFAULT_LIMIT, LIST_MAX_FILTERS, LIST_OPERATORS } from './schemas/documents.ts';
import { invalidCursorKind, problemKinds, problemResponses, validationKind } from './schemas/problem.ts';

/** A list's query string as its schema validated it (or, before validation, as parsed). */
export type ListQuery = Record<string, unknown>;

export const linkHeader = {
  link: { type: 'string', description: 'The next page, as `<url>; rel="next"`; absent on the last page.' },
};

const isControlParam = (key: string) => (CONTROL_PARAMS as readonly string[]).includes(key);

/** The filters an entity's list takes, as its description names them. */
export const describeFilters = (entity: Entity) =>
  `Filters: ${Object.entries(entity.filters)
    .map(([f, ops]) => `${f} (${ops.join(', ')})`)
    .join('; ')}. `;

/** What every list answers: a page, with its Link header, or a 400 for a query it does not answer. */
export function listResponses(description: string, page: string) {
  return {
    200: { description, headers: linkHeader, ...Type.Ref(page) },
    ...problemResponses(500, 503),
    ...problemKinds(400, 'The query is not one this list answers:', [
      validationKind('a parameter is unknown or its value invalid.'),
      invalidCursorKind,
    ]),
  };
}

/** The filters of a validated query string (`field` or `field[op]`), as clauses to compile. */
export function filterClauses(query: ListQuery): FilterClause[] {
  const filters: FilterClause[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (isControlParam(key)) continue;
    const match = /^(.+?)(?:\[([a-z]+)\])?$/.exec(key);
    filters.push({ field: match?.[1] ?? key, op: (match?.[2] ?? 'eq') as FilterOp, value });
  }
  return filters;
}

/** Turns the validated query string into a list request. */
function toListRequest(query: ListQuery, entity: Entity): ListRequest {
  const filters = filterClauses(query);
  const sort = typeof query.sort === 'string' ? query.sort : `-${entity.defaultSort}`;
  return {
    filters,
    q: typeof query.q === 'string' ? query.q : undefined,
    sort: sort.startsWith('-') ? { field: sort.slice(1), direction: -1 } : { field: sort, direction: 1 },
    fields: typeof query.fields === 'string' ? query.fields.split(',') : undefined,
    limit: typeof query.limit === 'number' ? query.limit : LIST_DEFAULT_LIMIT,
    cursor: typeof query.cursor === 'string' ? query.cursor : undefined,
    count: query.count === true,
  };
}

/**
 * The preValidation of every list route: caps the number of filters, and turns comma-separated
 * values of list operators into arrays before validation types them.
 */
export async function prepareListQuery(request: { query: ListQuery }): Promise<void> {
  const { query } = request;
  const filters = Object.keys(query).filter((key) => !isControlParam(key));
  if (filters.length > LIST_MAX_FILTERS) {
    throw AppError.validation([
      { in: 'query', pointer: '', message: `has ${filters.length} filters; at most ${LIST_MAX_FILTERS} are allowed` },
    ]);
  }
  for (const [key, value] of Object.entries(query)) {
    if (typeof value === 'string' && LIST_OPERATORS.some((op) => key.endsWith(`[${op}]`)))
      query[key] = value.split(',');
  }
}

interface ListedRequest {
  query: ListQuery;
  url: string;
  deadline: Deadline;
}

/** The handler of every list route: one page of the repository's list, with its `next` link. */
export async function listPage(
  request: ListedRequest,
  reply: { header: (name: string, value: string) => unknown },
  repository: DocumentRepository,
  entity: Entity,
) {
  const page = await repository.list(toListRequest(request.query, entity), request.deadline);
  const next = page.next === undefined ? null : linkWithCursor(request.url, page.next);
  if (next !== null) reply.header('link', `<${next}>; rel="next"`);
  return {
    items: page.items.map((item) => repository.toResource(item)),
    next,
    ...(page.total !== undefined && { total: page.total }),
  };
}

/** The same request with another cursor: the `next` link. */
function linkWithCursor(requestUrl: string, cursor: string): string {
  const url = new URL(requestUrl, 'http://storekeeper.invalid');
  url.searchParams.set('cursor', cursor);
  return `${url.pathname}${url.search}`;
}
