// The service's configuration: one declaration of every environment variable (type, default,
// meaning), validated once at start. `.env.example` and the table of docs/configuration.md are
// generated from the same declaration, so documentation cannot drift from what the code reads.

import { isAbsolute, resolve } from 'node:path';
import { ConnectionString } from 'mongodb-connection-string-url';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

interface Variable<T> {
  description: string;
  /** The default as it would be written in the environment; absent means optional/unset. */
  default?: string;
  parse(raw: string): T;
}

const integer =
  (min: number, max: number) =>
  (raw: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`must be an integer, got "${raw}"`);
    const value = Number(raw);
    if (value < min || value > max) throw new Error(`must be between ${min} and ${max}, got ${value}`);
    return value;
  };

const decimal =
  (min: number, max: number) =>
  (raw: string): number => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new Error(`must be a number, got "${raw}"`);
    if (value < min || value > max) throw new Error(`must be between ${min} and ${max}, got ${value}`);
    return value;
  };

const oneOf =
  <const T extends string>(...values: T[]) =>
  (raw: string): T => {
    if (!(values as string[]).includes(raw)) throw new Error(`must be one of ${values.join(', ')}, got "${raw}"`);
    return raw as T;
  };

const boolean = (raw: string): boolean => {
  if (/^(true|1|yes|on)$/i.test(raw)) return true;
  if (/^(false|0|no|off)$/i.test(raw)) return false;
  throw new Error(`must be true or false, got "${raw}"`);
};

const text = (raw: string): string => {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw;
};

const mongodbUri = (raw: string): string => {
  // The driver's own parser, so what passes here is what the driver will accept.
  let parsed: ConnectionString;
  try {
    parsed = new ConnectionString(raw);
  } catch (error) {
    throw new Error(
      `must be a MongoDB connection string such as mongodb://host:27017/?replicaSet=rs0 (${(error as Error).message})`,
    );
  }
  for (const host of parsed.hosts) {
    const port = /:(\d+)$/.exec(host)?.[1];
    if (port !== undefined && Number(port) > 65535) throw new Error(`has an invalid port in host "${host}"`);
  }
  return raw;
};

const databaseName = (raw: string): string => {
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(raw)) {
    throw new Error('must be 1-63 characters of letters, digits, "_" or "-"');
  }
  return raw;
};

/** Every variable the service reads, in the order the documentation lists them. */
export const variables = {
  HOST: { description: 'Interface the HTTP server binds to.', default: '127.0.0.1', parse: text },
  PORT: { description: 'TCP port of the HTTP server.', default: '3000', parse: integer(0, 65535) },
  LOG_LEVEL: {
    description: 'Minimum log level.',
    default: 'info',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  },
  LOG_FORMAT: {
    description: 'json, pretty, or auto (pretty on a terminal when pino-pretty is installed, JSON otherwise).',
    default: 'auto',
    parse: oneOf('auto', 'json', 'pretty'),
  },
  MONGODB_URI: {
    description: 'Connection string of a MongoDB replica set. Unset: start the embedded single-node replica set.',
    parse: mongodbUri,
  },
  MONGODB_DB: { description: 'Database name.', default: 'storekeeper', parse: databaseName },
  MONGODB_APP_NAME: {
    description:
      "The name this instance gives MongoDB, shown in MongoDB's logs, currentOp and profiler " +
      "(e.g. storekeeper-eu-1); its audit stream's connections add -audit, its change feed's -feed.",
    default: 'storekeeper',
    parse: (raw: string): string => {
      if (!/^[\x21-\x7E]{1,128}$/.test(raw)) throw new Error('must be 1-128 visible ASCII characters');
      return raw;
    },
  },
  MONGODB_MAX_POOL_SIZE: {
    description:
      "Most connections per MongoDB server in the app's pool (the audit stream keeps 2 of its own, the change feed " +
      'up to 5).',
    default: '50',
    parse: integer(1, 1000),
  },
  MONGODB_MIN_POOL_SIZE: { description: 'Connections kept open per server.', default: '2', parse: integer(0, 1000) },
  MONGODB_MAX_IDLE_TIME_MS: {
    description: 'Idle time before a pooled connection closes.',
    default: '60000',
    parse: integer(0, 86_400_000),
  },
  MONGODB_WAIT_QUEUE_TIMEOUT_MS: {
    description: 'Longest wait for a free pooled connection.',
    default: '2000',
    parse: integer(1, 600_000),
  },
  MONGODB_SERVER_SELECTION_TIMEOUT_MS: {
    description: 'Longest wait for a usable server before an operation fails (and the request gets 503).',
    default: '5000',
    parse: integer(1, 600_000),
  },
  MONGODB_CONNECT_TIMEOUT_MS: { description: 'TCP connect timeout.', default: '5000', parse: integer(1, 600_000) },
  MONGODB_SOCKET_TIMEOUT_MS: {
    description: 'Socket inactivity timeout (0: none).',
    default: '30000',
    parse: integer(0, 3_600_000),
  },
  DATA_DIR: {
    description: 'Directory of the embedded database (relative paths are taken from the working directory).',
    default: '.data',
    parse: text,
  },
  EMBEDDED_MONGODB_PORT: {
    description: 'Port of the embedded mongod (fixed: the replica set configuration stores it).',
    default: '27117',
    parse: integer(1, 65535),
  },
  EMBEDDED_MONGODB_CACHE_GB: {
    description: 'WiredTiger cache of the embedded mongod.',
    default: '0.25',
    parse: decimal(0.25, 64),
  },
  MONGOD_BINARY: {
    description:
      'Path of a mongod binary for the embedded database (MONGOMS_SYSTEM_BINARY also works). Unset: download, or ' +
      'provision offline.',
    parse: text,
  },
  SLOW_OPERATION_MS: {
    description:
      'MongoDB commands that take at least this long are logged at warn with their request id, collection, ' +
      'query shape (every value replaced by its type) and the documents the reply returned. 0: none logged.',
    default: '100',
    parse: integer(0, 3_600_000),
  },
  MONGODB_COMMAND_MONITORING: {
    description:
      "Follow every command of the main MongoDB client (the driver's command events): the command duration and " +
      'failure metrics and the slow-operation log. false: none of these; pool, topology and request metrics stay.',
    default: 'true',
    parse: boolean,
  },
  LIST_COUNT_TIMEOUT_MS: {
    description: 'Longest a list may spend counting all matches (count=true); past it the total is left out.',
    default: '2000',
    parse: integer(10, 60_000),
  },
  MIGRATIONS_ON_START: {
    description:
      'Pending migrations at start: apply (under the migration lock), require (refuse to start), check (serve; ' +
      '/health/ready answers 503 naming them), or auto (apply on the embedded database, check otherwise).',
    default: 'auto',
    parse: oneOf('auto', 'apply', 'require', 'check'),
  },
  REQUEST_DEADLINE_MS: {
    description:
      'How long after a request arrives its answer must leave, whatever MongoDB does: ' +
      'everything the request waits for is bounded by the time left. ' +
      'Past it a read answers 503 service-unavailable, and a write 503 service-unavailable when nothing was written ' +
      'or 503 outcome-unknown when its commit was sent and not confirmed.',
    default: '10000',
    parse: integer(500, 600_000),
  },
  READINESS_TIMEOUT_MS: {
    description:
      'How long /health/ready waits for MongoDB to answer (a ping and the migrations check); it answers within this ' +
      'time whatever MongoDB does.',
    default: '1000',
    parse: integer(50, 60_000),
  },
  RETRY_AFTER_SECONDS: {
    description: 'Retry-After sent with 503 responses while MongoDB is unavailable.',
    default: '5',
    parse: integer(1, 3600),
  },
  IDEMPOTENCY_TTL_HOURS: {
    description: 'How long the answer to a request with an Idempotency-Key is kept for retries to replay.',
    default: '24',
    parse: integer(1, 24 * 365),
  },
  AUDIT_RETENTION_DAYS: {
    description:
      'How long audit entries are kept: each expires this many days after its write (a change applies to entries ' +
      'written from then on).',
    default: '365',
    parse: integer(1, 36_500),
  },
  SHUTDOWN_GRACE_MS: {
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take before the process exits anyway.',
    default: '10000',
    parse: integer(0, 600_000),
  },
  BODY_LIMIT_BYTES: {
    description: 'Largest accepted request body.',
    default: '1048576',
    parse: integer(1024, 64 * 1024 * 1024),
  },
  TRUST_PROXY: {
    description: 'Trust X-Forwarded-* headers (behind a load balancer).',
    default: 'false',
    parse: boolean,
  },
  DOCS_ENABLED: { description: 'Serve the OpenAPI document and Swagger UI at /docs.', default: 'true', parse: boolean },
  AUTH_CACHE_TTL_MS: {
    description:
      'How long a looked-up API key is reused before it is read again. A key revoked or changed on any instance is ' +
      'forgotten within about a second (each instance follows the keys with a change stream); this time bounds it ' +
      'only while that stream is down.',
    default: '10000',
    parse: integer(0, 600_000),
  },
  RATE_LIMIT_PER_MINUTE: {
    description:
      'Requests per minute per API key (a key may carry its own limit); bursts up to the same number. 0: unlimited.',
    default: '1200',
    parse: integer(0, 10_000_000),
  },
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: {
    description:
      'Requests per minute per client IP to the open routes (health, docs) and with a missing or wrong key. 0: ' +
      'unlimited.',
    default: '300',
    parse: integer(0, 10_000_000),
  },
  REQUEST_TIMEOUT_MS: {
    description:
      'Longest time a client may take to send a whole request (headers and body): within a second past it, the ' +
      'client gets a 408 problem document and the connection is closed.',
    default: '30000',
    parse: integer(1000, 600_000),
  },
  QUERY_TIMEOUT_MS: {
    description: 'Longest time MongoDB may spend on one list query before it is stopped and the request answered 503.',
    default: '5000',
    parse: integer(10, 600_000),
  },
  MAX_CONCURRENT_QUERIES: {
    description:
      'Expensive requests (lists, batches) handled at once per instance; more wait briefly, then get 503 with ' +
      'Retry-After.',
    default: '32',
    parse: integer(1, 10_000),
  },
  CACHE_MAX_MB: {
    description:
      'Memory for the answers of reads by id (GET /v1/<collection>/<id>) kept per instance: the bytes sent, their ' +
      "keys and about 512 bytes an entry, outside V8's heap; least recently used out first, and a document is kept " +
      "at its second miss only (the recent misses' ids add about 6 %). Writes on this instance evict theirs before " +
      "they answer, other instances' within the change feed's lag. 0: no cache.",
    default: '64',
    parse: integer(0, 65_536),
  },
  CORS_ORIGINS: {
    description:
      'Comma-separated browser origins allowed to call the API (CORS), e.g. https://admin.example.com. Unset: no ' +
      'CORS headers.',
    parse: (raw: string): string[] => {
      const origins = raw
        .split(',')
        .map((origin) => origin.trim())
        .filter((origin) => origin !== '');
      for (const origin of origins) {
        if (origin !== '*' && !/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(origin))
          throw new Error(`must list origins such as https://shop.example.com, got "${origin}"`);
      }
      return origins;
    },
  },
  CURSOR_SECRET: {
    description:
      'Secret that signs list cursors (HMAC-SHA256), so clients can neither alter nor forge one; ' +
      'at least 32 characters, the same on every instance. ' +
      'Unset: a random secret stored in the database (collection service_secrets), which every instance on the ' +
      'database shares. Changing it makes the cursors already issued a 400.',
    parse: (raw: string): string => {
      if (raw.length < 32) throw new Error(`must be at least 32 characters, got ${raw.length}`);
      if (!/^[\x21-\x7E]+$/.test(raw)) throw new Error('must be visible ASCII characters only');
      return raw;
    },
  },
  FEED_MAX_STREAMS: {
    description:
      'Change-feed streams (GET /v1/.../changes) open at once on this instance; past it a new one gets 503 with ' +
      'Retry-After.',
    default: '2000',
    parse: integer(1, 1_000_000),
  },
  FEED_MAX_STREAMS_PER_KEY: {
    description: 'Change-feed streams one API key may hold open on this instance; past it a new one gets 429.',
    default: '100',
    parse: integer(1, 1_000_000),
  },
  FEED_HEARTBEAT_MS: {
    description:
      "How often a change-feed stream gets a heartbeat (a comment and the stream's position), so proxies keep it " +
      'open and a filtered client learns how far it has read.',
    default: '15000',
    parse: integer(100, 600_000),
  },
  FEED_CLIENT_BUFFER_BYTES: {
    description:
      "Bytes a change-feed client may leave unread in its connection (at least the connection's own 16 KiB): past " +
      'it its stream waits for the client to read, so what the instance holds for a client stays within this plus ' +
      'one event.',
    default: '1048576',
    parse: integer(1024, 1024 * 1024 * 1024),
  },
  FEED_REPLAY_EVENTS: {
    description:
      'Changes each instance keeps in memory, with their documents before and after (about 2.7 kB of heap each for ' +
      'products: 2000 cost about 5.5 MB). A client that reads slower than changes come, or reconnects, is served ' +
      'from them while its position is among them (at 100 changes a second, 2000 are 20 s); one further behind is ' +
      "closed (slow-consumer) and resumes from MongoDB's history, a few clients at a time.",
    default: '2000',
    parse: integer(10, 1_000_000),
  },
  FEED_RETRY_MS: {
    description: 'Reconnection delay a change-feed stream tells its client (the retry: field of server-sent events).',
    default: '2000',
    parse: integer(0, 3_600_000),
  },
} satisfies Record<string, Variable<unknown>>;

type Variables = typeof variables;
export type VariableName = keyof Variables;
type Parsed<K extends VariableName> = ReturnType<Variables[K]['parse']>;

export interface Config {
  http: { host: string; port: number; bodyLimit: number; trustProxy: boolean; docs: boolean; deadlineMs: number };
  log: { level: Parsed<'LOG_LEVEL'>; format: Parsed<'LOG_FORMAT'> };
  mongo: {
    /** Unset: the embedded replica set is started and its URI filled in by the entry point. */
    uri?: string;
    dbName: string;
    appName: string;
    maxPoolSize: number;
    minPoolSize: number;
    maxIdleTimeMS: number;
    waitQueueTimeoutMS: number;
    serverSelectionTimeoutMS: number;
    connectTimeoutMS: number;
    socketTimeoutMS: number;
    readinessTimeoutMs: number;
    retryAfterSeconds: number;
    countTimeoutMs: number;
    /** SLOW_OPERATION_MS: 0, no slow-operation log. */
    slowOperationMs: number;
    /** MONGODB_COMMAND_MONITORING: the driver's command events, for the command metrics and the slow-operation log. */
    commandMonitoring: boolean;
  };
  embedded: { dataDir: string; port: number; cacheSizeGB: number; binary?: string };
  migrationsOnStart: Parsed<'MIGRATIONS_ON_START'>;
  idempotency: { ttlHours: number };
  audit: { retentionDays: number };
  security: {
    authCacheTtlMs: number;
    rateLimitPerMinute: number;
    anonymousRateLimitPerMinute: number;
    requestTimeoutMs: number;
    queryTimeoutMs: number;
    maxConcurrentQueries: number;
    corsOrigins: string[];
    /** Unset: the secret stored in the database signs cursors. */
    cursorSecret?: string;
  };
  /** CACHE_MAX_MB: 0, no cache. */
  cache: { maxMb: number };
  shutdownGraceMs: number;
  feed: {
    maxStreams: number;
    maxStreamsPerKey: number;
    heartbeatMs: number;
    clientBufferBytes: number;
    retryMs: number;
    replayEvents: number;
  };
}

/**
 * Reads the configuration from an environment. Every problem is collected, so one failed start
 * lists everything that needs fixing, each naming its variable.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, cwd = process.cwd()): Config {
  const problems: string[] = [];
  const values = {} as { [K in VariableName]: Parsed<K> | undefined };

  for (const [name, variable] of Object.entries(variables) as [VariableName, Variable<unknown>][]) {
    const raw = env[name] === '' ? undefined : (env[name] ?? variable.default);
    if (raw === undefined) continue;
    try {
      (values as Record<string, unknown>)[name] = variable.parse(raw);
    } catch (error) {
      problems.push(`${name} ${(error as Error).message}`);
    }
  }

  const minPool = values.MONGODB_MIN_POOL_SIZE;
  const maxPool = values.MONGODB_MAX_POOL_SIZE;
  if (minPool !== undefined && maxPool !== undefined && minPool > maxPool) {
    problems.push(`MONGODB_MIN_POOL_SIZE (${minPool}) must not exceed MONGODB_MAX_POOL_SIZE (${maxPool})`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  // Every variable with a default is now set; those without one are the optional ones.
  const v = values as { [K in VariableName]: Parsed<K> };
  const dataDir = isAbsolute(v.DATA_DIR) ? v.DATA_DIR : resolve(cwd, v.DATA_DIR);
  return {
    http: {
      host: v.HOST,
      port: v.PORT,
      bodyLimit: v.BODY_LIMIT_BYTES,
      trustProxy: v.TRUST_PROXY,
      docs: v.DOCS_ENABLED,
      deadlineMs: v.REQUEST_DEADLINE_MS,
    },
    log: { level: v.LOG_LEVEL, format: v.LOG_FORMAT },
    mongo: {
      uri: values.MONGODB_URI,
      dbName: v.MONGODB_DB,
      appName: v.MONGODB_APP_NAME,
      maxPoolSize: v.MONGODB_MAX_POOL_SIZE,
      minPoolSize: v.MONGODB_MIN_POOL_SIZE,
      maxIdleTimeMS: v.MONGODB_MAX_IDLE_TIME_MS,
      waitQueueTimeoutMS: v.MONGODB_WAIT_QUEUE_TIMEOUT_MS,
      serverSelectionTimeoutMS: v.MONGODB_SERVER_SELECTION_TIMEOUT_MS,
      connectTimeoutMS: v.MONGODB_CONNECT_TIMEOUT_MS,
      socketTimeoutMS: v.MONGODB_SOCKET_TIMEOUT_MS,
      readinessTimeoutMs: v.READINESS_TIMEOUT_MS,
      retryAfterSeconds: v.RETRY_AFTER_SECONDS,
      countTimeoutMs: v.LIST_COUNT_TIMEOUT_MS,
      slowOperationMs: v.SLOW_OPERATION_MS,
      commandMonitoring: v.MONGODB_COMMAND_MONITORING,
    },
    embedded: {
      dataDir,
      port: v.EMBEDDED_MONGODB_PORT,
      cacheSizeGB: v.EMBEDDED_MONGODB_CACHE_GB,
      binary: values.MONGOD_BINARY,
    },
    migrationsOnStart: v.MIGRATIONS_ON_START,
    idempotency: { ttlHours: v.IDEMPOTENCY_TTL_HOURS },
    audit: { retentionDays: v.AUDIT_RETENTION_DAYS },
    security: {
      authCacheTtlMs: v.AUTH_CACHE_TTL_MS,
      rateLimitPerMinute: v.RATE_LIMIT_PER_MINUTE,
      anonymousRateLimitPerMinute: v.RATE_LIMIT_ANONYMOUS_PER_MINUTE,
      requestTimeoutMs: v.REQUEST_TIMEOUT_MS,
      queryTimeoutMs: v.QUERY_TIMEOUT_MS,
      maxConcurrentQueries: v.MAX_CONCURRENT_QUERIES,
      corsOrigins: values.CORS_ORIGINS ?? [],
      cursorSecret: values.CURSOR_SECRET,
    },
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS,
    cache: { maxMb: v.CACHE_MAX_MB },
    feed: {
      maxStreams: v.FEED_MAX_STREAMS,
      maxStreamsPerKey: v.FEED_MAX_STREAMS_PER_KEY,
      heartbeatMs: v.FEED_HEARTBEAT_MS,
      clientBufferBytes: v.FEED_CLIENT_BUFFER_BYTES,
      retryMs: v.FEED_RETRY_MS,
      replayEvents: v.FEED_REPLAY_EVENTS,
    },
  };
}

/** The configuration table of docs/configuration.md (between its config markers). */
export function renderConfigTable(): string {
  const rows = ['| Variable | Default | Meaning |', '| --- | --- | --- |'];
  for (const [name, variable] of Object.entries(variables) as [string, Variable<unknown>][]) {
    const fallback = variable.default === undefined ? '(unset)' : `\`${variable.default}\``;
    rows.push(`| \`${name}\` | ${fallback} | ${variable.description.replace(/\|/g, '\\|')} |`);
  }
  return rows.join('\n');
}

/** The text of `.env.example`: every variable, its meaning and its default. */
export function renderEnvExample(): string {
  const lines = ['# storekeeper configuration. Every variable is optional; shown with its default.', ''];
  for (const [name, variable] of Object.entries(variables) as [string, Variable<unknown>][]) {
    lines.push(`# ${variable.description}`);
    lines.push(variable.default === undefined ? `# ${name}=` : `${name}=${variable.default}`);
    lines.push('');
  }
  return lines.join('\n');
}
