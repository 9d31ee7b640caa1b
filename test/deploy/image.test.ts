// What compose.yaml runs in the storekeeper image, run the same way outside Docker (./image.ts), from
// one layout of the image:
// - on the test replica set: the migrate job's command, then the image's CMD with the image's ENV
//   and an instance's environment from compose.yaml (migrations required) until /health/ready
//   answers; the image's HEALTHCHECK command exits 0; the prometheus-key job's script writes a key
//   that /metrics takes, and keeps it on its next run; SIGTERM ends the instance with status 0 and
//   nothing on stderr. Only the database (one of this file's own) and the port are the test's.
// - on a replica set with access control on (a keyfile and a root user, as the mongo image's first
//   start leaves mongo1): the mongo-init job's script, twice; the role it defines grants exactly
//   what docs/security.md's role grants; and under the users it creates, with the connection
//   strings compose.yaml gives them, the migrate job migrates, an instance becomes ready and the
//   prometheus-key job's key reads /metrics. Only the members' addresses and the set's name are
//   the test's. compose.yaml's first `up` (rs.initiate on a set not initiated yet) is not run: the
//   embedded replica set is initiated as it starts.

import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import mongoose from 'mongoose';
import { API_KEYS_COLLECTION } from '../../src/data/api-keys.ts';
import { AUDIT_COLLECTION } from '../../src/data/audit.ts';
import { POSITIONS_COLLECTION } from '../../src/data/audit-stream.ts';
import { SECRETS_COLLECTION } from '../../src/data/cursor-keys.ts';
import { IDEMPOTENCY_COLLECTION } from '../../src/data/idempotency.ts';
import { MIGRATION_SETTINGS } from '../../src/data/migrations.ts';
import { RATE_USAGE_COLLECTION } from '../../src/data/rate-usage.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../src/mongod/embedded.ts';
import { testDatabaseName } from '../helpers/app.ts';
import { getPort } from '../helpers/net.ts';
import { composeService, layOutImage, local, runToEnd, startInstance, type Image, type Instance } from './image.ts';

/** docs/security.md's role, from the names the code gives its collections. */
const EXPECTED_PRIVILEGES = [
  ...[...ENTITIES.map((entity) => entity.collection), API_KEYS_COLLECTION, IDEMPOTENCY_COLLECTION].map(
    (collection) => `${collection}: find insert remove update`,
  ),
  `${AUDIT_COLLECTION}: find insert`,
  `${MIGRATION_SETTINGS.changelogCollectionName}: find`,
  `${SECRETS_COLLECTION}: find`,
  `${POSITIONS_COLLECTION}: find insert update`,
  `${RATE_USAGE_COLLECTION}: find insert update`,
  ': changeStream find',
].sort();
/** compose.yaml's members and replica set name, which become the test replica set's. */
const COMPOSE_MEMBERS = 'mongo1:27017,mongo2:27017,mongo3:27017';
const COMPOSE_SET = 'rs0';

const root = { user: 'root', password: randomBytes(16).toString('hex') };
const secrets: Record<string, string> = {
  MONGO_ROOT_PASSWORD: root.password,
  STOREKEEPER_DB_PASSWORD: randomBytes(16).toString('hex'),
  MIGRATIONS_DB_PASSWORD: randomBytes(16).toString('hex'),
};

let image: Image;
let secured: EmbeddedMongo;
let keys: string;
const instances: Instance[] = [];

beforeAll(async () => {
  [image, secured, keys] = await Promise.all([
    layOutImage(),
    startEmbeddedMongo({ auth: root, log: (message) => console.log(`[mongod] ${message}`) }),
    mkdtemp(join(tmpdir(), 'storekeeper-keys-')),
  ]);
});
afterAll(async () => {
  for (const instance of instances) instance.child.kill('SIGKILL');
  await Promise.allSettled([image.remove(), secured.stop(), rm(keys, { recursive: true, force: true })]);
});

/** What the image and compose.yaml give a service, with the base environment and `extra` last. */
async function environment(
  service: string,
  rewrite: (value: string) => string,
  extra: Record<string, string>,
): Promise<Record<string, string>> {
  const composed = Object.entries((await composeService(service)).environment ?? {});
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    ...image.runtime.env,
    ...Object.fromEntries(composed.map(([name, value]) => [name, rewrite(value)])),
    ...extra,
  };
}

async function runJob(service: string, env: Record<string, string>) {
  return runToEnd(local((await composeService(service)).command ?? []), { cwd: image.dir, env });
}

async function stop(instance: Instance): Promise<number | null> {
  instance.child.kill('SIGTERM');
  const code = await instance.exited;
  instances.splice(instances.indexOf(instance), 1);
  return code;
}

describe('the storekeeper image as compose.yaml runs it, on the test replica set', () => {
  const database = testDatabaseName('deploy');
  const env = (service: string, extra: Record<string, string> = {}) =>
    environment(service, (value) => value, { MONGODB_URI: inject('mongoUri'), MONGODB_DB: database, ...extra });

  it('migrates, serves until SIGTERM ends it cleanly, answers its HEALTHCHECK, and the prometheus-key job reads /metrics', async () => {
    const migrated = await runJob('migrate', await env('migrate'));
    expect(migrated.code, migrated.output).toBe(0);
    expect(migrated.stdout).toMatch(/MIGRATED UP/);

    const instanceEnv = await env('storekeeper-1', { PORT: String(await getPort()) });
    expect(instanceEnv.MIGRATIONS_ON_START, 'the instance refuses to start with migrations pending').toBe('require');
    const instance = await startInstance(image, instanceEnv);
    instances.push(instance);

    const healthcheck = await runToEnd(local(image.runtime.healthcheck ?? []), { cwd: image.dir, env: instanceEnv });
    expect(healthcheck.code, healthcheck.output).toBe(0);

    const keyFile = join(keys, 'on-test-replica-set');
    const created = await runJob('prometheus-key', await env('prometheus-key', { KEY_FILE: keyFile }));
    expect(created.code, created.output).toBe(0);
    expect(created.stdout).toMatch(/created key/);
    const key = (await readFile(keyFile, 'utf8')).trim();
    const metrics = await fetch(`${instance.base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^storekeeper_http_requests_total/m);
    const again = await runJob('prometheus-key', await env('prometheus-key', { KEY_FILE: keyFile }));
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toMatch(/is active, kept/);
    expect((await readFile(keyFile, 'utf8')).trim()).toBe(key);

    expect(await stop(instance)).toBe(0);
    expect(instance.stderr()).toBe('');
  });
});

describe("compose.yaml's MongoDB set-up, with access control on", () => {
  const DB = 'storekeeper';
  /** compose's values with its ${...} filled from the secrets, on this replica set. */
  const env = (service: string, extra: Record<string, string> = {}) => {
    const uri = new URL(secured.uri);
    return environment(
      service,
      (value) =>
        value
          .replace(/\$\{([A-Z_]+)[^}]*\}/g, (_, name: string) => secrets[name] ?? '')
          .replace(COMPOSE_MEMBERS, uri.host)
          .replace(`replicaSet=${COMPOSE_SET}`, `replicaSet=${uri.searchParams.get('replicaSet') ?? ''}`),
      extra,
    );
  };

  it('mongo-init defines the role and users, again on a second run, as docs/security.md does', async () => {
    const uri = new URL(secured.uri);
    const topology = { REPLICA_SET: uri.searchParams.get('replicaSet') ?? '', MEMBERS: uri.host };
    const first = await runJob('mongo-init', await env('mongo-init', topology));
    expect(first.code, first.output).toBe(0);
    expect(first.stdout).toMatch(/replica set .* is initiated already/);
    const second = await runJob('mongo-init', await env('mongo-init', topology));
    expect(second.code, second.output).toBe(0);
    expect(second.stdout).toMatch(/users storekeeper, storekeeper-migrations are as this deployment defines them/);

    const client = await new mongoose.mongo.MongoClient(secured.uri, {
      auth: { username: root.user, password: root.password },
      authSource: 'admin',
    }).connect();
    try {
      const { roles } = (await client.db(DB).command({ rolesInfo: 'storekeeperService', showPrivileges: true })) as {
        roles: { privileges: { resource: { db: string; collection: string }; actions: string[] }[] }[];
      };
      const privileges = (roles[0]?.privileges ?? []).map(({ resource, actions }) => {
        expect(resource.db).toBe(DB);
        return `${resource.collection}: ${[...actions].sort().join(' ')}`;
      });
      expect(privileges.sort()).toEqual(EXPECTED_PRIVILEGES);
    } finally {
      await client.close();
    }
  });

  it('under those users, the migrate job migrates, an instance becomes ready and the prometheus-key job reads /metrics', async () => {
    const migrated = await runJob('migrate', await env('migrate'));
    expect(migrated.code, migrated.output).toBe(0);

    const instance = await startInstance(image, await env('storekeeper-1', { PORT: String(await getPort()) }));
    instances.push(instance);
    const keyFile = join(keys, 'with-access-control');
    const job = await runJob('prometheus-key', await env('prometheus-key', { KEY_FILE: keyFile }));
    expect(job.code, job.output).toBe(0);
    const key = (await readFile(keyFile, 'utf8')).trim();
    const metrics = await fetch(`${instance.base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(metrics.status).toBe(200);
    expect(await stop(instance)).toBe(0);
  });
});
