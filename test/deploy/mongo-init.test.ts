// compose.yaml's MongoDB set-up, run as written against a replica set with access control on (a
// keyfile and a root user, as the mongo image's first start leaves mongo1): the mongo-init job's
// script, twice; the role it defines grants what docs/security.md's role grants; and under the
// users it creates, with the connection strings compose.yaml gives them, the migrate job migrates,
// an instance that requires the migrations becomes ready, and the prometheus-key job's key reads
// /metrics. Only the members' addresses and the replica set's name are this test's.
// compose.yaml's first `up` (a set not yet initiated, then rs.initiate) is not run here: the
// embedded replica set is initiated as it starts.

import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { MIGRATION_SETTINGS } from '../../src/data/migrations.ts';
import { API_KEYS_COLLECTION } from '../../src/data/api-keys.ts';
import { AUDIT_COLLECTION } from '../../src/data/audit.ts';
import { POSITIONS_COLLECTION } from '../../src/data/audit-stream.ts';
import { SECRETS_COLLECTION } from '../../src/data/cursor-keys.ts';
import { IDEMPOTENCY_COLLECTION } from '../../src/data/idempotency.ts';
import { RATE_USAGE_COLLECTION } from '../../src/data/rate-usage.ts';
import { ENTITIES } from '../../src/domain/entities/index.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../src/mongod/embedded.ts';
import { getPort } from '../helpers/net.ts';
import { composeService, layOutImage, local, runToEnd, type Image } from './image.ts';

const DB = 'storekeeper';
/** What compose.yaml's hosts and replica set name become here. */
const COMPOSE_MEMBERS = 'mongo1:27017,mongo2:27017,mongo3:27017';
const COMPOSE_SET = 'rs0';

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

describe("compose.yaml's MongoDB users, with access control on", () => {
  const root = { user: 'root', password: randomBytes(16).toString('hex') };
  const secrets = {
    MONGO_ROOT_PASSWORD: root.password,
    STOREKEEPER_DB_PASSWORD: randomBytes(16).toString('hex'),
    MIGRATIONS_DB_PASSWORD: randomBytes(16).toString('hex'),
  };
  let mongo: EmbeddedMongo;
  let image: Image;
  let keys: string;
  let instance: ChildProcess | undefined;
  let members: string;
  let setName: string;

  beforeAll(async () => {
    [mongo, image, keys] = await Promise.all([
      startEmbeddedMongo({ auth: root, log: (message) => console.log(`[mongod] ${message}`) }),
      layOutImage(),
      mkdtemp(join(tmpdir(), 'storekeeper-keys-')),
    ]);
    const uri = new URL(mongo.uri);
    members = uri.host;
    setName = uri.searchParams.get('replicaSet') ?? '';
  });
  afterAll(async () => {
    instance?.kill('SIGKILL');
    await Promise.allSettled([mongo.stop(), image.remove(), rm(keys, { recursive: true, force: true })]);
  });

  /** compose's environment for a service, its ${...} filled from the secrets and its hosts made this replica set. */
  const environment = async (service: string, extra: Record<string, string> = {}): Promise<Record<string, string>> => {
    const here = (value: string) =>
      value
        .replace(/\$\{([A-Z_]+)[^}]*\}/g, (_, name: keyof typeof secrets) => secrets[name])
        .replace(COMPOSE_MEMBERS, members)
        .replace(`replicaSet=${COMPOSE_SET}`, `replicaSet=${setName}`);
    const composed = Object.entries((await composeService(service)).environment ?? {}).map(([name, value]) => [
      name,
      here(value),
    ]);
    return {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...image.runtime.env,
      ...Object.fromEntries(composed),
      ...extra,
    };
  };
  const run = async (service: string, extra: Record<string, string> = {}) =>
    runToEnd(local((await composeService(service)).command ?? []), {
      cwd: image.dir,
      env: await environment(service, extra),
    });

  it('mongo-init defines the role and users, again on a second run, as docs/security.md does', async () => {
    const environment = { REPLICA_SET: setName, MEMBERS: members };
    const first = await run('mongo-init', environment);
    expect(first.code, first.output).toBe(0);
    expect(first.stdout).toMatch(/replica set .* is initiated already/);
    const second = await run('mongo-init', environment);
    expect(second.code, second.output).toBe(0);
    expect(second.stdout).toMatch(/users storekeeper, storekeeper-migrations are as this deployment defines them/);

    const client = await new mongoose.mongo.MongoClient(mongo.uri, {
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
    const migrated = await run('migrate');
    expect(migrated.code, migrated.output).toBe(0);

    const port = await getPort();
    const [file = '', ...args] = local(image.runtime.cmd ?? []);
    const started = spawn(file, args, {
      cwd: image.dir,
      env: await environment('storekeeper-1', { PORT: String(port) }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    instance = started;
    let stderr = '';
    started.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const base = `http://127.0.0.1:${port}`;
    for (let waited = 0; ; waited += 200) {
      const ready = await fetch(`${base}/health/ready`).then(
        (response) => response.status,
        () => 0,
      );
      if (ready === 200) break;
      if (waited > 60_000 || started.exitCode !== null) throw new Error(`not ready (last answer ${ready}): ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const keyFile = join(keys, 'storekeeper');
    const job = await run('prometheus-key', { KEY_FILE: keyFile });
    expect(job.code, job.output).toBe(0);
    const key = (await readFile(keyFile, 'utf8')).trim();
    const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(metrics.status).toBe(200);
    started.kill('SIGTERM');
    expect(await new Promise((resolve) => started.once('exit', resolve))).toBe(0);
    instance = undefined;
  });
});
