// API key management under /v1/keys, for holders of the keys:admin scope: the same create,
// list and revoke as `npm run keys`, for back-office tooling. A created key's secret is in the
// 201 answer and nowhere else; listings never carry secrets or hashes. Creations and
// revocations are recorded in the audit trail, in their own transaction.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DATA_RESOURCES, SCOPES } from '../../domain/access.ts';
import { DateTime, ObjectIdString } from '../../domain/types.ts';
import type { ApiKeyInfo } from '../../data/api-keys.ts';
import { writeContextOf } from '../actor.ts';
import { AppError } from '../../errors.ts';
import { kindOf, problemKinds, problemResponses } from '../schemas/problem.ts';
import { byId } from '../schemas/documents.ts';
import { component } from '../schemas/component.ts';

const KEYS_ADMIN = ['keys:admin'] as const;
const tags = ['keys'];

/** What a key may be given: the scopes themselves and the shorthands expandScopes knows. */
const SCOPE_NAMES = [...SCOPES, '*', '*:read', '*:write', ...DATA_RESOURCES.map((collection) => `${collection}:*`)];

const ScopeName = Type.Enum(SCOPE_NAMES, {
  type: 'string',
  description:
    'A scope, or a shorthand: * (every scope), *:read and *:write (every collection), ' +
    '<collection>:* (its read and write).',
});

const keyExample = {
  id: '6650f0c2a1b2c3d4e5f60720',
  prefix: 'k7k2m9q4x1ab',
  name: 'checkout',
  scopes: ['orders:read', 'orders:write', 'products:read'],
  createdAt: '2026-11-25T09:30:00.000Z',
  expiresAt: '2027-06-30T00:00:00.000Z',
};

const ApiKeySchema = Type.Object(
  {
    id: ObjectIdString({ description: 'The key id; the audit trail names keys by it.' }),
    prefix: Type.String({ description: 'Public part of the key (sk_<prefix>_...), safe to show and log.' }),
    name: Type.String(),
    scopes: Type.Array(Type.Enum(SCOPES, { type: 'string' }), {
      description: 'The scopes it holds, shorthands expanded.',
    }),
    rateLimitPerMinute: Type.Optional(
      Type.Integer({ minimum: 0, description: "The key's own rate limit; absent: the service default." }),
    ),
    createdAt: DateTime(),
    expiresAt: Type.Optional(DateTime({ description: 'After this the key is refused.' })),
    revokedAt: Type.Optional(DateTime({ description: 'When it was revoked; a revoked key is refused.' })),
  },
  {
    $id: 'ApiKey',
    additionalProperties: false,
    description: 'An API key, without its secret.',
    examples: [keyExample],
  },
);

const NewApiKeySchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }),
    scopes: Type.Array(ScopeName, { minItems: 1, maxItems: 50 }),
    expiresAt: Type.Optional(DateTime({ description: 'Must be in the future (else 400).' })),
    rateLimitPerMinute: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'Requests per minute; 0: unlimited.' }),
    ),
  },
  {
    additionalProperties: false,
    // An expiry far enough ahead to stay in the future: the service refuses one that has passed.
    examples: [{ name: 'checkout', scopes: ['orders:*', 'products:read'], expiresAt: '2099-12-31T00:00:00.000Z' }],
  },
);

const CreatedApiKeySchema = Type.Object(
  {
    ...ApiKeySchema.properties,
    key: Type.String({ description: 'The key itself. Shown in this answer only: store it now.' }),
  },
  {
    $id: 'CreatedApiKey',
    additionalProperties: false,
    examples: [{ ...keyExample, key: 'sk_k7k2m9q4x1ab_Q2hhbmdlIG1lIGJlZm9yZSB1c2luZyBpbiBwcm9kdWN0aW9uIQ' }],
  },
);

const newApiKey = component(NewApiKeySchema, 'NewApiKey');

const notFound = (id: string) => AppError.notFound(`No API key with id ${id}.`);
const noSuchKey = problemKinds(404, 'No such key.', [kindOf(notFound(keyExample.id), 'no key has this id.')]);

const keyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(ApiKeySchema);
  app.addSchema(newApiKey.schema);
  app.addSchema(CreatedApiKeySchema);
  const store = app.stores.apiKeys;
  const config = { scopes: KEYS_ADMIN };
  const toJson = (key: ApiKeyInfo) => key;

  app.get(
    '',
    {
      config,
      schema: {
        tags,
        operationId: 'listApiKeys',
        summary: 'List API keys',
        description: 'Every key, oldest first, revoked and expired ones included.',
        response: {
          200: {
            description: 'The keys, without secrets.',
            type: 'object',
            properties: { items: { type: 'array', items: Type.Ref('ApiKey') } },
            required: ['items'],
            additionalProperties: false,
          },
          ...problemResponses(500, 503),
        },
      },
    },
    async (request) => ({ items: (await request.deadline.race(store.list())).map(toJson) }),
  );

  app.post(
    '',
    {
      config,
      schema: {
        tags,
        operationId: 'createApiKey',
        summary: 'Create an API key',
        description:
          'Scopes may use the shorthands; they are stored expanded. The answer holds the key: it is never shown again.',
        body: newApiKey.ref,
        response: {
          201: {
            description: 'Created; the answer carries the key once, and Location names it.',
            headers: { location: { type: 'string', description: 'Path of the new key.' } },
            ...Type.Ref('CreatedApiKey'),
          },
          ...problemResponses(400, 413, 415, 500, 503),
        },
      },
    },
    async (request, reply) => {
      const { body } = request;
      const input = { ...body, expiresAt: body.expiresAt === undefined ? undefined : new Date(body.expiresAt) };
      const created = await app.shop.keys.create(input, writeContextOf(request));
      return reply.code(201).header('location', `/v1/keys/${created.id}`).send(created);
    },
  );

  app.get(
    '/:id',
    {
      config,
      schema: {
        tags,
        operationId: 'getApiKey',
        summary: 'Read an API key',
        ...byId({ description: 'The key, without its secret.', ...Type.Ref('ApiKey') }, noSuchKey),
      },
    },
    async (request) => {
      const { id } = request.params;
      const key = await request.deadline.race(store.find(id));
      if (key === null) throw notFound(id);
      return toJson(key);
    },
  );

  app.delete(
    '/:id',
    {
      config,
      schema: {
        tags,
        operationId: 'revokeApiKey',
        summary: 'Revoke an API key',
        description:
          'The key is kept, marked revoked (so the audit trail can still name it), ' +
          "and refused from then on: on every instance within about a second (each follows the keys' changes), " +
          'within AUTH_CACHE_TTL_MS while an instance cannot follow them. ' +
          'Revoking twice keeps the first time.',
        ...byId({ description: 'The key as revoked.', ...Type.Ref('ApiKey') }, noSuchKey),
      },
    },
    async (request) => {
      const { id } = request.params;
      const revoked = await app.shop.keys.revoke(id, writeContextOf(request));
      if (revoked === null) throw notFound(id);
      return toJson(revoked);
    },
  );
};

export default keyRoutes;
