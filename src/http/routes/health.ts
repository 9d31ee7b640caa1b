// Liveness (the process answers) and readiness (MongoDB answers a ping in time): what an
// orchestrator or load balancer polls. Both stay open without credentials.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { kindOf, problemKinds, problemResponses } from '../schemas/problem.ts';
import { AppError } from '../../errors.ts';
import { Deadline } from '../../data/deadline.ts';

const Live = Type.Object(
  { status: Type.Literal('ok'), uptimeSeconds: Type.Number({ minimum: 0 }) },
  { description: 'The process is up.', additionalProperties: false, examples: [{ status: 'ok', uptimeSeconds: 42.1 }] },
);

const Ready = Type.Object(
  {
    status: Type.Literal('ready'),
    checks: Type.Object({
      mongodb: Type.Object({ status: Type.Literal('up'), latencyMs: Type.Number({ minimum: 0 }) }),
      migrations: Type.Object({ status: Type.Literal('up-to-date') }),
    }),
  },
  {
    description: 'MongoDB answered the ping and every migration is applied.',
    additionalProperties: false,
    examples: [
      { status: 'ready', checks: { mongodb: { status: 'up', latencyMs: 0.8 }, migrations: { status: 'up-to-date' } } },
    ],
  },
);

const migrationsPending = (pending: string[], retryAfterSeconds: number) =>
  new AppError(503, 'migrations-pending', 'Service Unavailable', {
    detail: `Migrations pending: ${pending.join(', ')}. Apply them with \`npm run migrate:up\`.`,
    extensions: { pendingMigrations: pending },
    headers: { 'retry-after': String(retryAfterSeconds) },
  });

export interface HealthOptions {
  readinessTimeoutMs: number;
  retryAfterSeconds: number;
}

const health: FastifyPluginAsyncTypebox<HealthOptions> = async (app, options) => {
  app.get(
    '/live',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        description:
          'Answers 200 while the process runs, whatever MongoDB does: restart the process when it does not answer.',
        operationId: 'getLiveness',
        response: { 200: Live, ...problemResponses(500) },
      },
    },
    async () => ({ status: 'ok' as const, uptimeSeconds: Math.round(process.uptime() * 10) / 10 }),
  );

  app.get(
    '/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: MongoDB answers a ping in time and the schema is migrated',
        description:
          '200 when MongoDB answers a ping and the migrations check within READINESS_TIMEOUT_MS ' +
          'and no migration is pending; ' +
          'otherwise 503 with Retry-After (and, for pending migrations, their file names in `pendingMigrations`). ' +
          'It answers within READINESS_TIMEOUT_MS whatever MongoDB does.',
        operationId: 'getReadiness',
        response: {
          200: Ready,
          ...problemResponses(500),
          ...problemKinds(503, 'Not ready; retry after Retry-After:', [
            kindOf(
              AppError.unavailable(5, 'MongoDB did not answer a ping in time (connection disconnected).'),
              'MongoDB did not answer the ping or the migrations check within READINESS_TIMEOUT_MS.',
            ),
            kindOf(
              migrationsPending(['20261206120000-validators-read-values-as-the-api-does.js'], 5),
              'migrations are not applied; `pendingMigrations` names them.',
            ),
          ]),
        },
      },
    },
    async () => {
      const deadline = Deadline.after(options.readinessTimeoutMs);
      const { latencyMs } = await app.db.ping(deadline);
      const pending = await app.db.pendingMigrations(deadline);
      if (pending.length > 0) throw migrationsPending(pending, options.retryAfterSeconds);
      return {
        status: 'ready' as const,
        checks: { mongodb: { status: 'up' as const, latencyMs }, migrations: { status: 'up-to-date' as const } },
      };
    },
  );
};

export default health;
