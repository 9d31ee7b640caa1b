// The MongoDB connection: one Mongoose connection per process, with explicit pool, timeout and
// write-concern settings. The service starts and serves even while MongoDB is unreachable
// (readiness says 503); the connection keeps trying in the background and recovers by itself.
// Its client reports its commands, pool and topology to the driver monitor (monitoring.ts).

import fp from 'fastify-plugin';
import mongoose, { type Connection, type ConnectOptions, type mongo } from 'mongoose';
import { redactConnectionString } from 'mongodb-connection-string-url';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import { pendingMigrations } from './migrations.ts';
import type { Deadline } from './deadline.ts';
import { DriverMonitor } from './monitoring.ts';
import { failureKind } from './failures.ts';

export interface DatabaseOptions extends Omit<Config['mongo'], 'uri'> {
  uri: string;
  /** false builds everything without opening a connection (used to generate the OpenAPI file). */
  connect?: boolean;
}

export type DatabaseState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface Database {
  readonly connection: Connection;
  readonly state: DatabaseState;
  /** What the driver reports of the connection's work (and the stream clients' pools). */
  readonly monitor: DriverMonitor;
  /** Resolves when MongoDB answers a ping by the deadline; throws a 503 AppError otherwise. */
  ping(deadline: Deadline): Promise<{ latencyMs: number }>;
  /** The migrations not yet applied to this database (file names, oldest first), by the deadline or a 503 AppError. */
  pendingMigrations(deadline: Deadline): Promise<string[]>;
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
    appName: options.appName,
    maxPoolSize: options.maxPoolSize,
    minPoolSize: options.minPoolSize,
    maxIdleTimeMS: options.maxIdleTimeMS,
    waitQueueTimeoutMS: options.waitQueueTimeoutMS,
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS,
    connectTimeoutMS: options.connectTimeoutMS,
    socketTimeoutMS: options.socketTimeoutMS,
    retryWrites: true,
    retryReads: true,
    // Command events, for the metrics and the slow-operation log (monitoring.ts says what they cost).
    monitorCommands: options.commandMonitoring,
    writeConcern: { w: 'majority' },
    // Fail fast instead of queueing operations while disconnected: a request should get a
    // 503 it can retry, not wait on a buffer.
    bufferCommands: false,
    // Collections and indexes belong to migrations, never created implicitly by the app.
    autoIndex: false,
    autoCreate: false,
  };
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;

export function createDatabase(options: DatabaseOptions, log: FastifyBaseLogger): Database {
  const connection = mongoose.createConnection();
  const target = redactConnectionString(options.uri);
  let state: DatabaseState = 'disconnected';
  let closing = false;
  let wakeRetry: (() => void) | undefined;
  const monitor = new DriverMonitor({ slowOperationMs: options.slowOperationMs, log });

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
  // MongoDB away (a failover, a full pool's wait running out) is the database's doing and answered
  // as 503s: a warning. Anything else is an error.
  connection.on('error', (error: Error) => {
    const kind = failureKind(error);
    const level = kind === 'unavailable' || kind === 'transient' ? 'warn' : 'error';
    log[level]({ err: error, target }, 'MongoDB connection error');
  });

  async function connectUntilClosed(): Promise<void> {
    for (let attempt = 1; !closing; attempt++) {
      state = 'connecting';
      try {
        const opening = connection.openUri(options.uri, connectOptions(options));
        // openUri has created its client by now, and the client has connected nothing yet.
        const client = connection.getClient() as mongo.MongoClient | undefined;
        if (client !== undefined)
          monitor.watch(client, 'main', { commands: options.commandMonitoring, topology: true });
        await opening;
        return;
      } catch (error) {
        monitor.failed(error);
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() sets it while openUri waits
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
    monitor,
    get state() {
      return closing ? 'closed' : state;
    },
    async ping(deadline) {
      const db = connection.db;
      const notReady = (cause?: unknown) =>
        AppError.unavailable(
          options.retryAfterSeconds,
          `MongoDB did not answer a ping in time (connection ${closing ? 'closed' : state}).`,
          cause,
        );
      if (state !== 'connected' || db === undefined) throw notReady();
      const started = performance.now();
      try {
        // Raced: the answer leaves by the deadline even when the server never answers (a frozen
        // server keeps the socket open).
        await deadline.race(db.admin().command({ ping: 1 }));
      } catch (error) {
        throw notReady(error);
      }
      return { latencyMs: Math.round((performance.now() - started) * 10) / 10 };
    },
    async pendingMigrations(deadline) {
      const db = connection.db;
      if (db === undefined) throw AppError.unavailable(options.retryAfterSeconds);
      try {
        return await deadline.race(pendingMigrations(db));
      } catch (error) {
        throw AppError.unavailable(
          options.retryAfterSeconds,
          'MongoDB did not say in time which migrations are applied.',
          error,
        );
      }
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
