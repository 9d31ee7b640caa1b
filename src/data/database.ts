// The MongoDB connection: one Mongoose connection per process, with explicit pool, timeout and
// write-concern settings. The service starts and serves even while MongoDB is unreachable
// (readiness says 503); the connection keeps trying in the background and recovers by itself.

import fp from 'fastify-plugin';
import mongoose, { type Connection, type ConnectOptions } from 'mongoose';
import { redactConnectionString } from 'mongodb-connection-string-url';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import { pendingMigrations } from './migrations.ts';

const { mongo } = mongoose;

export interface DatabaseOptions extends Omit<Config['mongo'], 'uri'> {
  uri: string;
  /** false builds everything without opening a connection (used to generate the OpenAPI file). */
  connect?: boolean;
}

export type DatabaseState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface Database {
  readonly connection: Connection;
  readonly state: DatabaseState;
  /** Resolves when MongoDB answers a ping within the timeout; throws a 503 AppError otherwise. */
  ping(timeoutMs: number): Promise<{ latencyMs: number }>;
  /** The migrations not yet applied to this database (file names, oldest first). */
  pendingMigrations(): Promise<string[]>;
  close(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

export function connectOptions(options: DatabaseOptions): ConnectOptions {
  return {
    dbName: options.dbName,
    appName: 'storekeeper',
    maxPoolSize: options.maxPoolSize,
    minPoolSize: options.minPoolSize,
    maxIdleTimeMS: options.maxIdleTimeMS,
    waitQueueTimeoutMS: options.waitQueueTimeoutMS,
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS,
    connectTimeoutMS: options.connectTimeoutMS,
    socketTimeoutMS: options.socketTimeoutMS,
    retryWrites: true,
    retryReads: true,
    writeConcern: { w: 'majority' },
    // Fail fast instead of queueing operations while disconnected: a request should get a
    // 503 it can retry, not wait on a buffer.
    bufferCommands: false,
    // Collections and indexes belong to migrations, never created implicitly by the app.
    autoIndex: false,
    autoCreate: false,
  };
}

const UNAVAILABLE_ERROR_NAMES = new Set(['MongooseServerSelectionError', 'MongoWaitQueueTimeoutError', 'MongoPoolClearedError', 'PoolClearedOnNetworkError', 'MongoPoolClosedError']);

/** True when an error means MongoDB could not be reached, not that the operation was wrong. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (
    error instanceof mongo.MongoServerSelectionError ||
    error instanceof mongo.MongoNetworkError ||
    error instanceof mongo.MongoNotConnectedError ||
    error instanceof mongo.MongoTopologyClosedError ||
    error instanceof mongo.MongoServerClosedError ||
    error instanceof mongo.MongoClientClosedError ||
    error instanceof mongo.MongoOperationTimeoutError
  ) {
    return true;
  }
  // Not exported by the driver (or Mongoose's own): recognised by name.
  if (UNAVAILABLE_ERROR_NAMES.has(error.name)) return true;
  // Mongoose's own message when an operation runs before the first connection succeeded.
  return error instanceof mongoose.Error && /before initial connection is complete/.test(error.message);
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;

export function createDatabase(options: DatabaseOptions, log: FastifyBaseLogger): Database {
  const connection = mongoose.createConnection();
  const target = redactConnectionString(options.uri);
  let state: DatabaseState = 'disconnected';
  let closing = false;
  let wakeRetry: (() => void) | undefined;

  // `connected`/`disconnected` follow the driver's view of the topology, so they also report
  // MongoDB going away and coming back after the first connection.
  connection.on('connected', () => {
    state = 'connected';
    log.info({ target, db: options.dbName }, 'MongoDB connected');
  });
  connection.on('disconnected', () => {
    if (closing) return;
    state = 'disconnected';
    log.warn({ target }, 'MongoDB disconnected; operations answer 503 until it is back');
  });
  connection.on('reconnected', () => log.info({ target }, 'MongoDB reconnected'));
  connection.on('error', (error: Error) => log.error({ err: error, target }, 'MongoDB connection error'));

  async function connectUntilClosed(): Promise<void> {
    for (let attempt = 1; !closing; attempt++) {
      state = 'connecting';
      try {
        await connection.openUri(options.uri, connectOptions(options));
        return;
      } catch (error) {
        if (closing) return;
        state = 'disconnected';
        const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 10));
        log.warn({ err: error, target, attempt, retryInMs: delay }, 'MongoDB unreachable; retrying');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  let connecting: Promise<void> | undefined;
  if (options.connect !== false) {
    log.info({ target, db: options.dbName }, 'connecting to MongoDB');
    connecting = connectUntilClosed();
  }

  return {
    connection,
    get state() {
      return closing ? 'closed' : state;
    },
    async ping(timeoutMs) {
      const db = connection.db;
      const notReady = (cause?: unknown) =>
        AppError.unavailable(
          options.retryAfterSeconds,
          `MongoDB did not answer a ping within ${timeoutMs} ms (connection ${closing ? 'closed' : state}).`,
          cause,
        );
      if (state !== 'connected' || db === undefined) throw notReady();
      const started = performance.now();
      try {
        await db.admin().command({ ping: 1 }, { timeoutMS: timeoutMs });
      } catch (error) {
        throw notReady(error);
      }
      return { latencyMs: Math.round((performance.now() - started) * 10) / 10 };
    },
    async pendingMigrations() {
      const db = connection.db;
      if (db === undefined) throw AppError.unavailable(options.retryAfterSeconds);
      return pendingMigrations(db);
    },
    async close() {
      closing = true;
      wakeRetry?.();
      // Closing first also aborts a connection attempt that is still selecting a server.
      await connection.close();
      await connecting?.catch(() => undefined);
      log.info({ target }, 'MongoDB connection closed');
    },
  };
}

/** Decorates the app with `db` and closes the connection when the app closes. */
export default fp<DatabaseOptions>(
  async (app, options) => {
    const database = createDatabase(options, app.log);
    app.decorate('db', database);
    app.addHook('onClose', () => database.close());
  },
  { name: 'database', fastify: '5.x' },
);
