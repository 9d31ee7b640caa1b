// The audit trail under /v1/audit, read-only, for keys holding audit:read: the list (filters by
// key, action, collection, document, request and time; newest first; keyset pages) and one entry
// by id. The list speaks the document lists' query language (its query-string schema, list
// request and `next` link are theirs, the repository's list does the rest); entries are written
// only by the writes themselves (src/data/audit.ts).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUDIT_EVENT_EXAMPLE, AUDIT_READ_SCOPE, AuditEvent } from '../../domain/audit.ts';
import { LIST_MAX_FILTERS, byId, documentSchemas } from '../schemas/documents.ts';
import { kindOf, problemKinds } from '../schemas/problem.ts';
import { describeFilters, listPage, listResponses, prepareListQuery } from '../lists.ts';
import { documentNotFound } from '../../data/documents.ts';

const tags = ['audit'];
const scopes = [AUDIT_READ_SCOPE];

const resourceSchema = { ...AuditEvent.resource, $id: 'AuditEvent', examples: [AUDIT_EVENT_EXAMPLE] };

const fieldsSchema = {
  ...Type.Partial(AuditEvent.resource),
  required: ['id'],
  additionalProperties: false,
  $id: 'AuditEventFields',
  description: 'An audit event as listed: the fields requested with `fields`, or all of them.',
};

const pageSchema = {
  ...Type.Object(
    {
      items: Type.Array(Type.Ref('AuditEventFields'), { description: 'Newest first unless sort=at.' }),
      next: Type.Union([Type.String(), Type.Null()], { description: 'Link to the next page, null on the last one.' }),
      total: Type.Optional(
        Type.Integer({ minimum: 0, description: 'All matches, when count=true and counting finished in time.' }),
      ),
    },
    { additionalProperties: false },
  ),
  $id: 'AuditEventPage',
  examples: [
    {
      items: [
        AUDIT_EVENT_EXAMPLE,
        {
          ...AUDIT_EVENT_EXAMPLE,
          id: '6650f0c2a1b2c3d4e5f60731',
          collection: 'stock',
          documentId: '6650f0c2a1b2c3d4e5f60740',
          documentVersion: 7,
        },
      ],
      next: '/v1/audit?requestId=a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d&limit=2&cursor=eyJoIjoi...',
    },
  ],
};

const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(resourceSchema);
  app.addSchema(fieldsSchema);
  app.addSchema(pageSchema);
  const { query } = documentSchemas(AuditEvent);
  const events = () => app.stores.audit.events;

  app.get(
    '',
    {
      config: { scopes, expensive: true },
      schema: {
        tags,
        operationId: 'listAuditEvents',
        summary: 'List the audit trail',
        description:
          'One entry per document changed by a successful write: the API key (`keyId`, `keyName`), ' +
          'the `action`, the `collection`, the `documentId` and its version after the write, ' +
          'the `requestId` and the time (`at`); never the document contents. ' +
          'A failed write leaves none; a request that changed several documents (a batch, an order placement) ' +
          "leaves one per document, with the request's id. " +
          describeFilters(AuditEvent) +
          `At most ${LIST_MAX_FILTERS} filters per request. Newest first (\`sort=at\` for oldest first). ` +
          'Pages are keyset-paginated: follow `next` (also in the Link header). ' +
          'Entries are kept AUDIT_RETENTION_DAYS days. ' +
          'A list shows the entries of every write answered before it was asked for: the entry of a ' +
          'write of one document is stored from the change stream, and the list waits until it is.',
        querystring: query,
        response: listResponses('A page of audit entries.', 'AuditEventPage'),
      },
      preValidation: prepareListQuery,
    },
    async (request, reply) => {
      await app.stores.audit.settled(request.deadline);
      return listPage(request, reply, events(), AuditEvent);
    },
  );

  app.get(
    '/:id',
    {
      config: { scopes },
      schema: {
        tags,
        operationId: 'getAuditEvent',
        summary: 'Read an audit entry',
        ...byId(
          { description: 'The entry. Entries never change.', ...Type.Ref('AuditEvent') },
          problemKinds(404, 'No such entry.', [
            kindOf(
              documentNotFound(AuditEvent.singular, AUDIT_EVENT_EXAMPLE.id),
              'no entry has this id, or it expired.',
            ),
          ]),
        ),
      },
    },
    async (request) => {
      const { id } = request.params;
      const entry = await events().findById(id, { deadline: request.deadline });
      if (entry === null) throw events().notFound(id);
      return events().toResource(entry);
    },
  );
};

export default auditRoutes;
