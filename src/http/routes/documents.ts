// The document API of one entity under /v1/<collection>: list, read, create, replace, merge-patch
// and delete, as the entity's declaration allows, one function per route. Handlers stay thin: they
// translate HTTP (conditional headers, status codes, links) to one call and back. A read by id goes
// through the document cache when there is one (src/data/document-cache.ts), which keeps its answer
// as serialized here, as the UTF-8 bytes it sends; its answers say `Cache-Control: private, no-cache`
// either way.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { documentWrites, type Entity } from '../../domain/entity.ts';
import type { Json } from '../../domain/merge-patch.ts';
import type { DocumentRepository, StoredDocument } from '../../data/documents.ts';
import type { CachedAnswer, LoadedAnswer } from '../../data/document-cache.ts';
import {
  IdParams,
  LIST_MAX_FILTERS,
  LIST_MAX_VALUES,
  documentSchemas,
  withArticle,
  type DocumentSchemas,
} from '../schemas/documents.ts';
import { kindOf, problemKinds, problemResponses, thrownBy } from '../schemas/problem.ts';
import { changedSince, documentNotFound, duplicateOf, keptChanging } from '../../data/documents.ts';
import { customerHasOrders, stockReserved } from '../../domain/deletion.ts';
import {
  ConditionalHeaders,
  cacheControlHeader,
  etagHeader,
  etagOf,
  expectedVersion,
  notModified,
  DOCUMENT_CACHE_CONTROL,
} from '../conditional.ts';
import { describeFilters, listPage, listResponses, prepareListQuery } from '../lists.ts';
import { MERGE_PATCH_MEDIA_TYPE, mergePatchOnly } from '../plugins/json-body.ts';
import { writeContextOf } from '../actor.ts';

export interface DocumentRoutesOptions {
  entity: Entity;
}

type App = Parameters<FastifyPluginAsyncTypebox>[0];
type Write = 'create' | 'replace' | 'patch' | 'delete';

const EXAMPLE_ID = '6650f0c2a1b2c3d4e5f60718';

/** The unique fields of an entity, as its unique indexes list them. */
const uniqueFields = (entity: Entity) =>
  entity.indexes.filter((index) => index.unique).map((index) => Object.keys(index.key));

/** The kinds of 409 and 412 a write of one document can answer, each the error the repository builds. */
function writeRefusals(entity: Entity, write: Write) {
  const label = entity.singular;
  const conflicts = [
    ...(write === 'delete'
      ? []
      : uniqueFields(entity).map((fields) =>
          kindOf(
            duplicateOf(label, fields),
            `another ${label} has this ${fields.join(' and ')}; ` +
              `\`errors\` points at ${fields.length > 1 ? 'them' : 'it'}.`,
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

/** What every route of one entity's document API shares. */
interface Documents {
  entity: Entity;
  schemas: DocumentSchemas;
  tags: string[];
  noun: string;
  repository: () => DocumentRepository;
  /** The document as the answer's body, its version as the ETag. */
  answer: (reply: { header: (name: string, value: string) => unknown }, document: StoredDocument) => unknown;
}

const notFoundOf = ({ entity }: Documents) =>
  problemKinds(404, `No such ${entity.singular}.`, [
    kindOf(documentNotFound(entity.singular, EXAMPLE_ID), `no ${entity.singular} has this id.`),
  ]);

/** The answers of a write to one existing document: it as written, or why not. */
const writeResponses = (documents: Documents, write: Write, description: string) => ({
  200: { description, headers: etagHeader, ...Type.Ref(documents.schemas.resource) },
  ...problemResponses(400, 413, 415, 500, 503),
  ...notFoundOf(documents),
  ...writeRefusals(documents.entity, write),
});

function listRoute(app: App, { entity, schemas, tags, noun, repository }: Documents) {
  const plural = noun.endsWith('y') ? `${noun.slice(0, -1)}ies` : `${noun}s`;
  app.get(
    '',
    {
      config: { expensive: true },
      schema: {
        tags,
        operationId: `list${plural}`,
        summary: `List ${entity.collection}`,
        description:
          describeFilters(entity) +
          'A filter is `field=value` or `field[op]=value`; list operators (in, nin, all) take comma-separated ' +
          'or repeated values. ' +
          `At most ${LIST_MAX_FILTERS} filters per request and ${LIST_MAX_VALUES} values per list; ` +
          '`prefix` matches the start of a value, literally. ' +
          'Pages are keyset-paginated: follow `next` (also in the Link header); a cursor stays valid while ' +
          'documents are added.',
        querystring: schemas.query,
        response: listResponses(`A page of ${entity.collection}.`, schemas.page),
      },
      preValidation: prepareListQuery,
    },
    async (request, reply) => listPage(request, reply, repository(), entity),
  );
}

/** The members every operation on one document starts with: its tag, its id and its summary. */
const operation = ({ tags, noun, entity }: Documents, verb: string, summary: string, after = '') => ({
  tags,
  operationId: `${verb}${noun}`,
  summary: `${summary} ${withArticle(entity.singular)}${after}`,
});

/** The document a conditional write is about: the one the path names, at the version If-Match names. */
const targetOf = ({ entity }: Documents, request: { params: { id: string }; headers: { 'if-match'?: string } }) => ({
  collection: entity.collection,
  id: request.params.id,
  expectedVersion: expectedVersion(request.headers['if-match']),
});

/** Cache-Control of a request that wants the document as stored now, not as remembered. */
const NO_CACHE = /(?:^|,)\s*no-cache\s*(?:,|$)/i;

function readRoute(app: App, documents: Documents) {
  const { entity, schemas, repository } = documents;
  const { cache } = app.stores;
  const headers = { ...etagHeader, ...cacheControlHeader };
  app.get(
    '/:id',
    {
      schema: {
        ...operation(documents, 'get', 'Read'),
        description:
          'Answers carry `Cache-Control: private, no-cache`: a client or private cache may keep one, revalidating ' +
          'with If-None-Match. The service may answer from memory what it read before: a write through this ' +
          "instance is read back at once, another instance's once this instance's change feed has passed it " +
          '(its lag, under a second while MongoDB keeps up); while the feed is down, every read goes to MongoDB. ' +
          '`Cache-Control: no-cache` on the request reads the document from MongoDB.',
        params: IdParams,
        headers: Type.Object({
          'if-none-match': Type.Optional(Type.String({ description: 'Answer 304 if the ETag still matches.' })),
          'cache-control': Type.Optional(
            Type.String({ description: 'no-cache: read the document from MongoDB, not from memory.' }),
          ),
        }),
        response: {
          200: { description: `The ${entity.singular}.`, headers, ...Type.Ref(schemas.resource) },
          304: {
            description: 'Not modified: the ETag in If-None-Match is current.',
            headers,
            type: 'null',
          },
          ...problemResponses(400, 500, 503),
          ...notFoundOf(documents),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      // The body as this route's 200 writes it (whatever this reply's status by then): what the cache keeps.
      const answerOf = (document: StoredDocument | null): LoadedAnswer | null => {
        if (document === null) return null;
        const body = reply.serializeInput(repository().toResource(document), '200');
        if (typeof body !== 'string') throw new Error(`${entity.collection}: the serializer wrote no JSON text`);
        return { body, version: document.version };
      };
      let answer: CachedAnswer | null;
      if (cache === undefined) {
        answer = answerOf(await repository().findById(id, { deadline: request.deadline }));
      } else {
        // The query is shared by concurrent reads of the document: none of their deadlines cuts it.
        // It carries the id of the request that started it.
        const load = async () => answerOf(await repository().findById(id, { requestId: request.id }));
        answer = await cache.read(entity.collection, id, load, {
          refresh: NO_CACHE.test(request.headers['cache-control'] ?? ''),
          deadline: request.deadline,
        });
      }
      if (answer === null) throw repository().notFound(id);
      // The body is the serializer's text, or the stored answer's UTF-8 bytes: either is sent as is.
      reply.header('cache-control', DOCUMENT_CACHE_CONTROL);
      if (notModified(request.headers['if-none-match'], answer.version)) {
        return reply.code(304).header('etag', etagOf(answer.version)).send();
      }
      return reply.header('etag', etagOf(answer.version)).type('application/json; charset=utf-8').send(answer.body);
    },
  );
}

function createRoute(app: App, documents: Documents) {
  const { entity, schemas } = documents;
  app.post(
    '',
    {
      schema: {
        ...operation(documents, 'create', 'Create'),
        body: Type.Unsafe<Record<string, unknown>>(Type.Ref(schemas.input)),
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
      const { collection } = entity;
      const created = await app.shop.documents.create({ collection, document: request.body }, writeContextOf(request));
      reply.code(201).header('location', `/v1/${collection}/${created._id.toHexString()}`);
      return documents.answer(reply, created);
    },
  );
}

function replaceRoute(app: App, documents: Documents) {
  const { entity, schemas } = documents;
  const immutable = entity.immutable.length > 0 ? ` (${entity.immutable.join(', ')} cannot change)` : '';
  app.put(
    '/:id',
    {
      schema: {
        ...operation(documents, 'replace', 'Replace'),
        description: `Replaces every writable field${immutable}; server-maintained fields stay.`,
        params: IdParams,
        headers: ConditionalHeaders,
        body: Type.Unsafe<Record<string, unknown>>(Type.Ref(schemas.input)),
        response: writeResponses(documents, 'replace', `The ${entity.singular} as replaced.`),
      },
    },
    async (request, reply) => {
      const replaced = await app.shop.documents.replace(
        { ...targetOf(documents, request), document: request.body },
        writeContextOf(request),
      );
      return documents.answer(reply, replaced);
    },
  );
}

function patchRoute(app: App, documents: Documents) {
  app.patch(
    '/:id',
    {
      schema: {
        ...operation(documents, 'patch', 'Change some fields of', ' (JSON Merge Patch)'),
        params: IdParams,
        headers: ConditionalHeaders,
        body: Type.Unsafe<Record<string, Json>>({
          content: { [MERGE_PATCH_MEDIA_TYPE]: { schema: Type.Ref(documents.schemas.patch) } },
        }),
        response: writeResponses(documents, 'patch', `The ${documents.entity.singular} as patched.`),
      },
      preValidation: mergePatchOnly,
    },
    async (request, reply) => {
      const target = targetOf(documents, request);
      const patched = await app.shop.documents.patch({ ...target, patch: request.body }, writeContextOf(request));
      return documents.answer(reply, patched);
    },
  );
}

function deleteRoute(app: App, documents: Documents, rule: string) {
  const { entity, schemas } = documents;
  app.delete(
    '/:id',
    {
      schema: {
        ...operation(documents, 'delete', 'Delete'),
        description: `Rule: ${rule}.`,
        params: IdParams,
        headers: ConditionalHeaders,
        response: {
          200: {
            description: `Not deleted but archived: the ${entity.singular} as it is now.`,
            headers: etagHeader,
            ...Type.Ref(schemas.resource),
          },
          204: { description: 'Deleted.', type: 'null' },
          ...problemResponses(400, 500, 503),
          ...notFoundOf(documents),
          ...writeRefusals(entity, 'delete'),
        },
      },
    },
    async (request, reply) => {
      const removal = await app.shop.documents.remove(targetOf(documents, request), writeContextOf(request));
      return removal.action === 'deleted' ? reply.code(204).send(null) : documents.answer(reply, removal.document);
    },
  );
}

const documentRoutes: FastifyPluginAsyncTypebox<DocumentRoutesOptions> = async (app, { entity }) => {
  // Its shared schemas (resource, input, page...) are registered at the root by the app, so that
  // workflow routes can refer to them too.
  const repository = (): DocumentRepository => app.stores.repositoryOf(entity.collection);
  const documents: Documents = {
    entity,
    schemas: documentSchemas(entity),
    tags: [entity.collection],
    noun: entity.schemaName,
    repository,
    answer: (reply, document) => {
      reply.header('etag', etagOf(document.version));
      return repository().toResource(document);
    },
  };
  listRoute(app, documents);
  readRoute(app, documents);
  const allowed = documentWrites(entity);
  if (allowed.create) createRoute(app, documents);
  if (allowed.replace) replaceRoute(app, documents);
  if (allowed.patch) patchRoute(app, documents);
  if (entity.operations.delete !== false) deleteRoute(app, documents, entity.operations.delete.rule);
};

export default documentRoutes;
