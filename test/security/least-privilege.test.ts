// The MongoDB users docs/security.md tells operators to create, on a replica set with access control on:
// the migrations user applies every migration, the service user (documents read and written in
// the service's own collections, the audit trail appended to, the changelog and the cursor secret
// read, the rate-limit counts shared, nothing else)
// runs the whole API, and whatever reshapes the schema, rewrites history or leaves its own
// collections is refused to it. The snippet of docs/security.md is checked against the commands run here, so
// the two cannot drift apart.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { API_KEYS_COLLECTION, ApiKeyStore } from '../../src/data/api-keys.ts';
import { AUDIT_COLLECTION } from '../../src/data/audit.ts';
import { SECRETS_COLLECTION } from '../../src/data/cursor-keys.ts';
import { POSITIONS_COLLECTION } from '../../src/data/audit-stream.ts';
import { IDEMPOTENCY_COLLECTION } from '../../src/data/idempotency.ts';
import { RATE_USAGE_COLLECTION } from '../../src/data/rate-usage.ts';
import { MIGRATION_SETTINGS, migrateUp, migrationStatus, prepareSchemaAtStart } from '../../src/data/migrations.ts';
import { ENTITIES, Product } from '../../src/domain/entities/index.ts';
import { createLogger } from '../../src/logger.ts';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../src/mongod/embedded.ts';
import { LogCapture, MIGRATION_FILES, waitFor } from '../helpers/app.ts';

const { MongoClient } = mongoose.mongo;
type Client = InstanceType<typeof MongoClient>;

const UNAUTHORIZED = 13;
const MERGE_PATCH = 'application/merge-patch+json';

// With characters a connection string must percent-encode around a random core: a leak shows
// up in the logs as the core, whichever form it takes.
const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}/@:%`;
const coreOf = (password: string) => /[0-9a-f]{24}/.exec(password)![0];
const ROOT = { user: 'storekeeper-root', password: secret('root') };

// The snippet of docs/security.md, as commands: its database, role and users. The role names collections one
// by one: MongoDB lets `insert` create the collection it names (implicitly, or with `create`), so a
// grant on the whole database would let the service create collections.
const DB = 'storekeeper';
const DOCUMENT_COLLECTIONS = [
  ...ENTITIES.map((entity) => entity.collection),
  API_KEYS_COLLECTION,
  IDEMPOTENCY_COLLECTION,
];
const DOCUMENT_ACTIONS = ['find', 'insert', 'update', 'remove'];
/** Appended to and read, never changed: entries expire through their TTL index, which needs no privilege. */
const AUDIT = { collection: AUDIT_COLLECTION, actions: ['find', 'insert'] };
/** Read for `require`, `check` and readiness; only the migrations user writes it (and takes the lock). */
const CHANGELOG = { collection: MIGRATION_SETTINGS.changelogCollectionName, actions: ['find'] };
/** The secret that signs list cursors: stored by its migration, only read by the service. */
const SECRETS = { collection: SECRETS_COLLECTION, actions: ['find'] };
/** The audit stream's resume position and barrier: created with the first position by their migration. */
const POSITIONS = { collection: POSITIONS_COLLECTION, actions: ['find', 'insert', 'update'] };
/** Rate-limit counts the instances share: upserted and read back; created by its migration, expired by TTL. */
const RATE_USAGE = { collection: RATE_USAGE_COLLECTION, actions: ['find', 'insert', 'update'] };
/** The audit stream follows the database's changes: MongoDB grants that on the database as a whole. */
const CHANGES = { collection: '', actions: ['find', 'changeStream'] };
const SERVICE_ROLE = {
  role: 'storekeeperService',
  roles: [] as string[],
  privileges: [
    ...DOCUMENT_COLLECTIONS.map((collection) => ({ resource: { db: DB, collection }, actions: DOCUMENT_ACTIONS })),
    ...[AUDIT, CHANGELOG, SECRETS, POSITIONS, RATE_USAGE, CHANGES].map(({ collection, actions }) => ({
      resource: { db: DB, collection },
      actions,
    })),
  ],
};
const SERVICE_USER = { user: 'storekeeper', password: secret('service'), roles: [SERVICE_ROLE.role] };
const MIGRATIONS_USER = {
  user: 'storekeeper-migrations',
  password: secret('migrations'),
  roles: ['readWrite', 'dbAdmin'],
};
/** A database of something else on the same deployment, which the service must not reach. */
const OTHER_DB = 'billing';

const quoted = (values: readonly string[]) => `[${values.map((value) => `'${value}'`).join(', ')}]`;

/** The snippet's lines that carry a privilege, as docs/security.md must still show them. */
function snippetLines(): string[] {
  const createUser = (user: { user: string; roles: string[] }) =>
    `db.createUser({ user: '${user.user}', pwd: passwordPrompt(), roles: ${quoted(user.roles)} })`;
  const one = ({ collection, actions }: { collection: string; actions: string[] }) =>
    `  { resource: { db: '${DB}', collection: '${collection}' }, actions: ${quoted(actions)} },`;
  return [
    `use ${DB}`,
    `const documents = ${quoted(DOCUMENT_COLLECTIONS)}`,
    `db.createRole({ role: '${SERVICE_ROLE.role}', roles: ${quoted(SERVICE_ROLE.roles)}, privileges: [`,
    `  ...documents.map((collection) => ({ resource: { db: '${DB}', collection }, actions: ${quoted(DOCUMENT_ACTIONS)} })),`,
    one(AUDIT),
    one(CHANGELOG),
    one(SECRETS),
    one(POSITIONS),
    one(RATE_USAGE),
    one(CHANGES),
    '] })',
    createUser(SERVICE_USER),
    createUser(MIGRATIONS_USER),
  ];
}

/** The "MongoDB users" paragraph of docs/security.md, up to the end of its example connection string. */
function readmeParagraph(): string {
  const readme = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  const start = readme.indexOf('**MongoDB users.**');
  const end = readme.indexOf('Passwords are never logged', start);
  expect(start, 'docs/security.md has a "MongoDB users" paragraph').toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  return readme.slice(start, end);
}

/** The deployment's connection string with a user's credentials, authenticating against DB as docs/security.md's example does. */
function uriFor(base: string, user: { user: string; password: string }): string {
  const uri = new URL(base);
  uri.username = encodeURIComponent(user.user);
  uri.password = encodeURIComponent(user.password);
  uri.searchParams.set('authSource', DB);
  return uri.toString();
}

async function refusal(operation: () => Promise<unknown>): Promise<unknown> {
  try {
    await operation();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('least-privilege MongoDB users, as docs/security.md sets them up', () => {
  let mongo: EmbeddedMongo | undefined;
  let root: Client | undefined;
  let migrator: Client | undefined;
  let service: Client | undefined;
  let serviceUri: string;
  let app: App | undefined;
  const logs = new LogCapture();
  let key: string;

  /** The app as src/server.ts builds it, logging into `logs`, connected as the service user. */
  const serviceApp = async (mode: 'require' | 'check'): Promise<App> => {
    const env = {
      MONGODB_URI: serviceUri,
      MONGODB_DB: DB,
      MIGRATIONS_ON_START: mode,
      LOG_LEVEL: 'debug',
      LOG_FORMAT: 'json',
      RATE_LIMIT_PER_MINUTE: '0',
    };
    const config = loadConfig(env);
    const logger = createLogger(config.log, logs);
    await prepareSchemaAtStart(serviceUri, DB, mode, { info: (m) => logger.info(m), warn: (m) => logger.warn(m) });
    const built = await buildApp({ config: { ...config, mongo: { ...config.mongo, uri: serviceUri } }, logger });
    await waitFor(() => built.db.state === 'connected', 30_000, 'the service user to connect');
    return built;
  };
  const request = (options: InjectOptions) =>
    app!.inject({ ...options, headers: { authorization: `Bearer ${key}`, ...options.headers } });
  const expectStatus = (res: LightMyRequestResponse, status: number) =>
    expect(res.statusCode, `${res.statusCode} ${res.body}`).toBe(status);

  beforeAll(async () => {
    mongo = await startEmbeddedMongo({ auth: ROOT, log: (message) => console.log(`[mongod] ${message}`) });
    root = await new MongoClient(mongo.uri, {
      auth: { username: ROOT.user, password: ROOT.password },
      authSource: 'admin',
    }).connect();
    await root.db(OTHER_DB).collection('invoices').insertOne({ number: 'INV-1', amount: 4200 });

    // As an administrator, what the snippet does.
    const db = root.db(DB);
    await db.command({ createRole: SERVICE_ROLE.role, roles: SERVICE_ROLE.roles, privileges: SERVICE_ROLE.privileges });
    for (const user of [SERVICE_USER, MIGRATIONS_USER]) {
      await db.command({ createUser: user.user, pwd: user.password, roles: user.roles });
    }

    serviceUri = uriFor(mongo.uri, SERVICE_USER);
    migrator = await new MongoClient(uriFor(mongo.uri, MIGRATIONS_USER)).connect();
    service = await new MongoClient(serviceUri).connect();
  });

  afterAll(async () => {
    await app?.close();
    await Promise.allSettled([migrator?.close(), service?.close(), root?.close()]);
    await mongo?.stop();
  });

  it('access control is on: a client without credentials is refused', async () => {
    const anonymous = await new MongoClient(mongo!.uri).connect();
    try {
      expect(await refusal(() => anonymous.db(DB).collection('products').findOne({}))).toMatchObject({
        code: UNAUTHORIZED,
      });
    } finally {
      await anonymous.close();
    }
  });

  it('docs/security.md shows the role, the users, authSource and the start-up modes this file runs', () => {
    const paragraph = readmeParagraph();
    for (const line of snippetLines()) expect(paragraph).toContain(line);
    expect(paragraph).toContain(`authSource=${DB}`);
    expect(paragraph).toContain('`MIGRATIONS_ON_START=require`');
    expect(paragraph).toContain('`check`');
  });

  it('before the migrations, the service user reads the changelog: require refuses naming them, check serves; apply is refused', async () => {
    const log = { info: () => undefined, warn: () => undefined };
    await expect(prepareSchemaAtStart(serviceUri, DB, 'require', log)).rejects.toThrow(
      `migrations pending: ${MIGRATION_FILES.join(', ')}`,
    );
    // Why docs/security.md says require or check: applying needs privileges the service does not hold.
    await expect(prepareSchemaAtStart(serviceUri, DB, 'apply', log)).rejects.toMatchObject({ code: UNAUTHORIZED });

    const checking = await serviceApp('check');
    try {
      const ready = await checking.inject({ url: '/health/ready' });
      expectStatus(ready, 503);
      expect(ready.json()).toMatchObject({
        type: 'urn:storekeeper:problem:migrations-pending',
        pendingMigrations: MIGRATION_FILES,
      });
    } finally {
      await checking.close();
    }
    expect(await root!.db(DB).listCollections().toArray()).toEqual([]);
  });

  it('the migrations user applies every migration', async () => {
    expect(await migrateUp(migrator!.db(DB), migrator!)).toEqual(MIGRATION_FILES);
    const status = await migrationStatus(root!.db(DB));
    expect(status.filter((item) => item.appliedAt === 'PENDING')).toEqual([]);
  });

  it('the role names every collection the migrations created but the migration lock, and nothing else', async () => {
    const created = (await root!.db(DB).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    // The database-wide grant (CHANGES) names no collection.
    const granted = SERVICE_ROLE.privileges
      .map((privilege) => privilege.resource.collection)
      .filter((collection) => collection !== '');
    expect(granted.toSorted()).toEqual(
      created.filter((name) => name !== MIGRATION_SETTINGS.lockCollectionName).toSorted(),
    );
  });

  it('with MIGRATIONS_ON_START=require the service user starts, and runs the whole API', async () => {
    key = (
      await ApiKeyStore.of(service!.db(DB)).create({ name: 'least-privilege', scopes: ['*'], rateLimitPerMinute: 0 })
    ).key;
    app = await serviceApp('require');

    const ready = await app.inject({ url: '/health/ready' });
    expectStatus(ready, 200);
    expect(ready.json().checks.migrations).toEqual({ status: 'up-to-date' });

    const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
      request({ method: 'POST', url, payload, headers });
    const product = await post('/v1/products', {
      ...Product.example,
      sku: 'LP-LAMP',
      name: 'Brass reading lamp',
      price: { amount: 5900, currency: 'EUR' },
      category: 'home',
      status: 'active',
    });
    expectStatus(product, 201);
    const customer = await post('/v1/customers', { email: 'least-privilege@example.com', name: 'Ada Lovelace' });
    expectStatus(customer, 201);
    expectStatus(await post('/v1/stock', { sku: 'LP-LAMP', warehouse: 'AMS-1', available: 10 }), 201);

    // A transaction across orders, stock and customers.
    const order = await post('/v1/orders', {
      customerId: customer.json().id,
      warehouse: 'AMS-1',
      lines: [{ sku: 'LP-LAMP', quantity: 2 }],
    });
    expectStatus(order, 201);
    const paid = await request({ method: 'POST', url: `/v1/orders/${order.json().id}/pay` });
    expectStatus(paid, 200);
    expect(paid.json().status).toBe('paid');

    const listed = await request({ url: '/v1/products?category=home&status=active&sort=-price.amount&count=true' });
    expectStatus(listed, 200);
    expect(listed.json()).toMatchObject({ total: 1, items: [{ sku: 'LP-LAMP' }] });
    const searched = await request({ url: '/v1/products?q=brass' });
    expectStatus(searched, 200);
    expect(searched.json().items.map((p: { sku: string }) => p.sku)).toEqual(['LP-LAMP']);

    // Placing the order counted it in the customer's stats: the current version is a new one.
    const current = await request({ url: `/v1/customers/${customer.json().id}` });
    expectStatus(current, 200);
    const patched = await request({
      method: 'PATCH',
      url: `/v1/customers/${customer.json().id}`,
      headers: { 'content-type': MERGE_PATCH, 'if-match': current.headers.etag as string },
      payload: { name: 'Ada King' },
    });
    expectStatus(patched, 200);
    expect(patched.json().name).toBe('Ada King');

    const spare = await post('/v1/products', { ...Product.example, sku: 'LP-SPARE' });
    expectStatus(spare, 201);
    expectStatus(await request({ method: 'DELETE', url: `/v1/products/${spare.json().id}` }), 204);

    const retried = { ...Product.example, sku: 'LP-RETRY' };
    const first = await post('/v1/products', retried, { 'idempotency-key': 'least-privilege-1' });
    expectStatus(first, 201);
    const replay = await post('/v1/products', retried, { 'idempotency-key': 'least-privilege-1' });
    expectStatus(replay, 201);
    expect(replay.headers['idempotency-replayed']).toBe('true');
    expect(replay.json().id).toBe(first.json().id);

    const batch = await post('/v1/batch', {
      operations: [
        { op: 'insert', collection: 'products', document: { ...Product.example, sku: 'LP-BATCH' } },
        { op: 'insert', collection: 'stock', document: { sku: 'LP-BATCH', warehouse: 'AMS-1', available: 3 } },
        { op: 'patch', collection: 'customers', id: customer.json().id, patch: { name: 'Ada Byron' } },
      ],
    });
    expectStatus(batch, 200);
    expect(batch.json().results.map((result: { status: number }) => result.status)).toEqual([201, 201, 200]);

    const audit = await request({ url: '/v1/audit?limit=200' });
    expectStatus(audit, 200);
    const actions = audit
      .json()
      .items.map((entry: { action: string; collection: string }) => `${entry.action} ${entry.collection}`);
    expect(actions).toEqual(
      expect.arrayContaining(['create products', 'place orders', 'pay orders', 'patch customers', 'delete products']),
    );
  });

  describe('the service user is refused (13, Unauthorized)', () => {
    const db = () => service!.db(DB);
    it.each([
      ['dropping a collection', () => db().collection('products').drop()],
      ['dropping the database', () => db().dropDatabase()],
      ['creating an index', () => db().collection('products').createIndex({ description: 1 }, {}, {})],
      ['dropping an index', () => db().collection('products').dropIndex('sku_unique')],
      ['changing a validator (collMod)', () => db().command({ collMod: 'products', validator: {} })],
      ['creating a collection', () => db().createCollection('scratch')],
      ['creating a collection by inserting into it', () => db().collection('scratch').insertOne({ note: 'implicit' })],
      [
        'marking a migration applied',
        () => db().collection(CHANGELOG.collection).insertOne({ fileName: 'forged.js', appliedAt: new Date() }),
      ],
      [
        'taking the migration lock',
        () => db().collection(MIGRATION_SETTINGS.lockCollectionName).insertOne({ createdAt: new Date() }),
      ],
      ['deleting audit entries', () => db().collection(AUDIT.collection).deleteMany({})],
      [
        'rewriting an audit entry',
        () =>
          db()
            .collection(AUDIT.collection)
            .updateOne({}, { $set: { keyName: 'someone else' } }),
      ],
      ['listing the collections', () => db().listCollections().toArray()],
      ['reading another database', () => service!.db(OTHER_DB).collection('invoices').findOne({})],
      [
        'writing to another database',
        () => service!.db(OTHER_DB).collection('invoices').insertOne({ number: 'INV-2' }),
      ],
      ['granting itself a role', () => db().command({ grantRolesToUser: SERVICE_USER.user, roles: ['readWrite'] })],
    ])('%s', async (_case, operation) => {
      expect(await refusal(operation)).toMatchObject({ code: UNAUTHORIZED, codeName: 'Unauthorized' });
    });

    it('and nothing the attempts aimed at changed', async () => {
      const db = root!.db(DB);
      const indexes = await db.collection('products').indexes();
      expect(indexes.some((index) => index.key.description !== undefined)).toBe(false);
      const [products] = await db.listCollections({ name: 'products' }).toArray();
      expect((products as { options: { validator?: object } }).options.validator).toBeDefined();
      expect(await db.listCollections({ name: 'scratch' }).toArray()).toEqual([]);
      expect(await db.collection(CHANGELOG.collection).countDocuments()).toBe(MIGRATION_FILES.length);
      expect(await db.collection(MIGRATION_SETTINGS.lockCollectionName).countDocuments()).toBe(0);
      expect(await db.collection(AUDIT.collection).countDocuments({ keyName: 'someone else' })).toBe(0);
      expect(await db.collection(AUDIT.collection).countDocuments()).toBeGreaterThan(0);
      expect(await root!.db(OTHER_DB).collection('invoices').countDocuments()).toBe(1);
    });
  });

  it('no log line of the service carries a password, even when the login fails', async () => {
    const failing = new LogCapture();
    const wrong = secret('wrong');
    const config = loadConfig({
      MONGODB_URI: uriFor(mongo!.uri, { ...SERVICE_USER, password: wrong }),
      MONGODB_DB: DB,
      LOG_LEVEL: 'debug',
      LOG_FORMAT: 'json',
    });
    const wrongLogin = await buildApp({
      config: { ...config, mongo: { ...config.mongo, uri: config.mongo.uri! } },
      logger: createLogger(config.log, failing),
    });
    try {
      await waitFor(
        () => failing.lines.some((line) => line.msg === 'MongoDB unreachable; retrying'),
        30_000,
        'the failed login to be logged',
      );
    } finally {
      await wrongLogin.close();
    }

    const written = `${logs.text()}\n${failing.text()}`;
    expect(logs.lines.length).toBeGreaterThan(10);
    expect(written).toContain('Authentication failed');
    expect(written).not.toContain(coreOf(SERVICE_USER.password));
    expect(written).not.toContain(coreOf(wrong));
  });
});
