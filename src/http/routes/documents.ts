// The document API of one entity under /v1/<collection>: create, read, replace, merge-patch,
// delete and list, as the entity's declaration allows. Handlers stay thin: they translate
// HTTP (conditional headers, status codes, links) to repository calls and back.

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Entity, FilterOp } from '../../domain/entity.ts';
import { DELETION_RULES } from '../../domain/deletion.ts';
import type { Json } from '../../domain/merge-patch.ts';
import type { ListRequest, FilterClause } from '../../data/query.ts';
import type { DocumentRepository, StoredDocument } from '../../data/documents.ts';
import { AppError } from '../../errors.ts';
import {
  CONTROL_PARAMS,
  LIST_MAX_FILTERS,
  LIST_MAX_VALUES,
  LIST_OPERATORS,
  documentSchemas,
} from '../schemas/documents.ts';
import {
  invalidCursorKind,
  kindOf,
  problemKinds,
  problemResponses,
  thrownBy,
  validationKind,
} from '../schemas/problem.ts';
import { withArticle } from '../schemas/documents.ts';
import { changedSince, documentNotFound, duplicateOf, keptChanging } from '../../data/documents.ts';
import { customerHasOrders, stockReserved } from '../../domain/deletion.ts';
import { ObjectIdString } from '../../domain/types.ts';
import { actorOf } from '../actor.ts';

export const MERGE_PATCH_MEDIA_TYPE = 'application/merge-patch+json';

export interface DocumentRoutesOptions {
  entity: Entity;
}

export const etagOf = (version: number) => `"${version}"`;

/** If-Match as the version it names: undefined when absent or `*` (any current version). */
export function expectedVersion(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^\s*"(\d{1,15})"\s*$/.exec(header);
  if (match === null) {
    throw new AppError(412, 'precondition-failed', 'Precondition Failed', {
      detail: 'If-Match must be one strong entity tag from an ETag header, such as "3", or *.',
    });
  }
  return Number(match[1]);
}

/** True when If-None-Match names the current version (or is *). */
function notModified(header: string | undefined, version: number): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etagOf(version));
}

export const IdParams = Type.Object(
  { id: ObjectIdString({ description: 'The document id.' }) },
  { additionalProperties: false },
);
export const ConditionalHeaders = Type.Object({
  'if-match': Type.Optional(
    Type.String({ description: 'Write only if the document is still at this ETag (else 412).' }),
  ),
});
export const etagHeader = {
  etag: { type: 'string', description: 'Version of the document, for If-Match and If-None-Match.' },
};
export const linkHeader = {
  link: { type: 'string', description: 'The next page, as `<url>; rel="next"`; absent on the last page.' },
};

const EXAMPLE_ID = '6650f0c2a1b2c3d4e5f60718';

/** The unique fields of an entity, as its unique indexes list them. */
const uniqueFields = (entity: Entity) =>
  entity.indexes.filter((index) => index.unique).map((index) => Object.keys(index.key));

/** The kinds of 409 and 412 a write of one document can answer, each the error the repository builds. */
function writeRefusals(entity: Entity, write: 'create' | 'replace' | 'patch' | 'delete') {
  const label = entity.singular;
  const conflicts = [
    ...(write === 'delete'
      ? []
      : uniqueFields(entity).map((fields) =>
          kindOf(
            duplicateOf(label, fields),
            `another ${label} has this ${fields.join(' and ')}; \`errors\` points at ${fields.length > 1 ? 'them' : 'it'}.`,
          ),
        )),
    ...(write === 'create'
      ? []
      : [
          kindOf(
            keptChanging(label, EXAMPLE_ID),
            'without If-Match, the document kept changing while the write was applied; retry.',
          ),
        ]),
    ...(write === 'delete' && entity.collection === 'customers'
      ? [kindOf(customerHasOrders(), 'the customer has orders.')]
      : []),
    ...(write === 'delete' && entity.collection === 'stock'
      ? [kindOf(stockReserved(4), 'open orders hold units of this item.')]
      : []),
  ];
  return {
    ...problemKinds(409, 'Refused; nothing was written.', conflicts),
    ...(write !== 'create' &&
      problemKinds(412, 'If-Match does not hold; nothing was written.', [
        kindOf(changedSince(label, EXAMPLE_ID, 3), 'the document is no longer at the version If-Match names.'),
        kindOf(
          thrownBy(() => expectedVersion('3')),
          'If-Match is not one strong entity tag, such as "3", or *.',
        ),
      ])),
  };
}

/** Turns the validated query string into a list request. */
function toListRequest(query: Record<string, unknown>, entity: Entity): ListRequest {
  const filters: FilterClause[] = [];
  for (const [key, value] of Object.entries(query)) {
    if ((CONTROL_PARAMS as readonly string[]).includes(key)) continue;
    const match = /^(.+?)(?:\[([a-z]+)\])?$/.exec(key)!;
    filters.push({ field: match[1]!, op: (match[2] ?? 'eq') as FilterOp, value });
  }
  const sort = String(query.sort ?? `-${entity.defaultSort}`);
  return {
    filters,
    q: query.q as string | undefined,
    sort: sort.startsWith('-') ? { field: sort.slice(1), direction: -1 } : { field: sort, direction: 1 },
    fields: typeof query.fields === 'string' ? query.fields.split(',') : undefined,
    limit: query.limit as number,
    cursor: query.cursor as string | undefined,
    count: query.count === true,
  };
}

/**
 * The preValidation of every list route: caps the number of filters, and turns comma-separated
 * values of list operators into arrays before validation types them.
 */
export async function prepareListQuery(request: FastifyRequest): Promise<void> {
  const query = request.query as Record<string, unknown>;
  const filters = Object.keys(query).filter((key) => !(CONTROL_PARAMS as readonly string[]).includes(key));
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

/** The handler of every list route: one page of the repository's list, with its `next` link. */
export async function listPage(
  request: FastifyRequest,
  reply: FastifyReply,
  repository: DocumentRepository,
  entity: Entity,
) {
  const page = await repository.list(toListRequest(request.query as Record<string, unknown>, entity), request.deadline);
  const next = page.next === undefined ? null : linkWithCursor(request, page.next);
  if (next !== null) reply.header('link', `<${next}>; rel="next"`);
  return {
    items: page.items.map((item) => repository.toResource(item)),
    next,
    ...(page.total !== undefined && { total: page.total }),
  };
}

/** The same request with another cursor: the `next` link. */
function linkWithCursor(request: FastifyRequest, cursor: string): string {
  const url = new URL(request.url, 'http://storekeeper.invalid');
  url.searchParams.set('cursor', cursor);
  return `${url.pathname}${url.search}`;
}

const documentRoutes: FastifyPluginAsync<DocumentRoutesOptions> = async (app, { entity }) => {
  // Its shared schemas (resource, input, page...) are registered at the root by the app, so that
  // workflow routes can refer to them too.
  const schemas = documentSchemas(entity);
  const repository = (): DocumentRepository => app.repositories.documents.get(entity.collection)!;
  const tags = [entity.collection];
  const noun = entity.schemaName;
  const notFound = problemKinds(404, `No such ${entity.singular}.`, [
    kindOf(documentNotFound(entity.singular, EXAMPLE_ID), `no ${entity.singular} has this id.`),
  ]);
  const plural = noun.endsWith('y') ? `${noun.slice(0, -1)}ies` : `${noun}s`;
  const withId = { params: IdParams };

  const sendDocument = (reply: FastifyReply, document: StoredDocument, status = 200) =>
    reply.code(status).header('etag', etagOf(document.version)).send(repository().toResource(document));

  app.get(
    '',
    {
      config: { expensive: true },
      schema: {
        tags,
        operationId: `list${plural}`,
        summary: `List ${entity.collection}`,
        description:
          `Filters: ${Object.entries(entity.filters)
            .map(([f, ops]) => `${f} (${ops.join(', ')})`)
            .join('; ')}. ` +
          'A filter is `field=value` or `field[op]=value`; list operators (in, nin, all) take comma-separated or repeated values. ' +
          `At most ${LIST_MAX_FILTERS} filters per request and ${LIST_MAX_VALUES} values per list; \`prefix\` matches the start of a value, literally. ` +
          'Pages are keyset-paginated: follow `next` (also in the Link header); a cursor stays valid while documents are added.',
        querystring: schemas.query,
        response: {
          200: { description: `A page of ${entity.collection}.`, headers: linkHeader, ...Type.Ref(schemas.page) },
          ...problemResponses(500, 503),
          ...problemKinds(400, 'The query is not one this list answers:', [
            validationKind('a parameter is unknown or its value invalid.'),
            invalidCursorKind,
          ]),
        },
      },
      preValidation: prepareListQuery,
    },
    async (request, reply) => listPage(request, reply, repository(), entity),
  );

  app.get(
    '/:id',
    {
      schema: {
        tags,
        operationId: `get${noun}`,
        summary: `Read ${withArticle(entity.singular)}`,
        ...withId,
        headers: Type.Object({
          'if-none-match': Type.Optional(Type.String({ description: 'Answer 304 if the ETag still matches.' })),
        }),
        response: {
          200: { description: `The ${entity.singular}.`, headers: etagHeader, ...Type.Ref(schemas.resource) },
          304: {
            description: 'Not modified: the ETag in If-None-Match is current.',
            headers: etagHeader,
            type: 'null',
          },
          ...problemResponses(400, 500, 503),
          ...notFound,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const document = await repository().findById(id, { deadline: request.deadline });
      if (document === null) throw repository().notFound(id);
      if (notModified(request.headers['if-none-match'], document.version)) {
        return reply.code(304).header('etag', etagOf(document.version)).send();
      }
      return sendDocument(reply, document);
    },
  );

  if (entity.operations.create === true) {
    app.post(
      '',
      {
        schema: {
          tags,
          operationId: `create${noun}`,
          summary: `Create ${withArticle(entity.singular)}`,
          body: Type.Ref(schemas.input),
          response: {
            201: {
              description: `Created; Location names the new ${entity.singular}.`,
              headers: { ...etagHeader, location: { type: 'string', description: 'Path of the new document.' } },
              ...Type.Ref(schemas.resource),
            },
            ...problemResponses(400, 413, 415, 500, 503),
            ...writeRefusals(entity, 'create'),
          },
        },
      },
      async (request, reply) => {
        const created = await repository().create(
          request.body as Record<string, unknown>,
          actorOf(request),
          request.log,
        );
        reply.header('location', `/v1/${entity.collection}/${created._id.toHexString()}`);
        return sendDocument(reply, created, 201);
      },
    );
  }

  if (entity.operations.replace) {
    app.put(
      '/:id',
      {
        schema: {
          tags,
          operationId: `replace${noun}`,
          summary: `Replace ${withArticle(entity.singular)}`,
          description: `Replaces every writable field${entity.immutable.length ? ` (${entity.immutable.join(', ')} cannot change)` : ''}; server-maintained fields stay.`,
          ...withId,
          headers: ConditionalHeaders,
          body: Type.Ref(schemas.input),
          response: {
            200: {
              description: `The ${entity.singular} as replaced.`,
              headers: etagHeader,
              ...Type.Ref(schemas.resource),
            },
            ...problemResponses(400, 413, 415, 500, 503),
            ...notFound,
            ...writeRefusals(entity, 'replace'),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params as { id: string };
        const replaced = await repository().replace(
          id,
          request.body as Record<string, unknown>,
          expectedVersion(request.headers['if-match']),
          actorOf(request),
          request.log,
        );
        return sendDocument(reply, replaced);
      },
    );
  }

  if (entity.operations.patch) {
    app.patch(
      '/:id',
      {
        schema: {
          tags,
          operationId: `patch${noun}`,
          summary: `Change some fields of ${withArticle(entity.singular)} (JSON Merge Patch)`,
          ...withId,
          headers: ConditionalHeaders,
          body: { content: { [MERGE_PATCH_MEDIA_TYPE]: { schema: Type.Ref(schemas.patch) } } },
          response: {
            200: {
              description: `The ${entity.singular} as patched.`,
              headers: etagHeader,
              ...Type.Ref(schemas.resource),
            },
            ...problemResponses(400, 413, 415, 500, 503),
            ...notFound,
            ...writeRefusals(entity, 'patch'),
          },
        },
        // The body must say it is a merge patch: plain JSON would be ambiguous about null.
        preValidation: async (request) => {
          const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
          if (type !== MERGE_PATCH_MEDIA_TYPE) {
            throw new AppError(415, 'unsupported-media-type', 'Unsupported Media Type', {
              detail: `PATCH takes ${MERGE_PATCH_MEDIA_TYPE} (RFC 7396), not ${type ?? 'a body without Content-Type'}.`,
            });
          }
        },
      },
      async (request, reply) => {
        const { id } = request.params as { id: string };
        const patched = await repository().patch(
          id,
          request.body as Record<string, Json>,
          expectedVersion(request.headers['if-match']),
          actorOf(request),
          request.log,
        );
        return sendDocument(reply, patched);
      },
    );
  }

  const deletion = entity.operations.delete;
  if (deletion !== false) {
    const rule = DELETION_RULES[entity.collection]!;
    app.delete(
      '/:id',
      {
        schema: {
          tags,
          operationId: `delete${noun}`,
          summary: `Delete ${withArticle(entity.singular)}`,
          description: `Rule: ${deletion.rule}.`,
          ...withId,
          headers: ConditionalHeaders,
          response: {
            200: {
              description: `Not deleted but archived: the ${entity.singular} as it is now.`,
              headers: etagHeader,
              ...Type.Ref(schemas.resource),
            },
            204: { description: 'Deleted.', type: 'null' },
            ...problemResponses(400, 500, 503),
            ...notFound,
            ...writeRefusals(entity, 'delete'),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params as { id: string };
        const archived = await repository().remove(
          id,
          rule,
          app.repositories.referencesIn,
          expectedVersion(request.headers['if-match']),
          actorOf(request),
          request.log,
        );
        return archived === null ? reply.code(204).send() : sendDocument(reply, archived);
      },
    );
  }
};

export default documentRoutes;
