// The database connection of the ops commands (seed, migrate-mongo's command line, later
// backups): MONGODB_URI when set, otherwise the embedded database, whether `npm start` already
// runs it or the command has to start it for its own duration. One place decides, so every
// command behaves alike.

import { connect as connectTcp } from 'node:net';
import mongoose from 'mongoose';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { redactSecrets } from '../logger.ts';
import { EMBEDDED_HOST, REPLICA_SET_NAME, serviceDataDir, startServiceMongo } from '../mongod/embedded.ts';
import { errorMessage } from '../errors.ts';

export type Db = mongoose.mongo.Db;
export type MongoClient = mongoose.mongo.MongoClient;

export interface CliDatabaseInfo {
  /** The connection string used; may hold a password, so print it only through redactSecrets. */
  uri: string;
  dbName: string;
  /** True when MONGODB_URI is unset (the embedded database, already running or started here). */
  embedded: boolean;
}

export interface CliDatabaseOptions {
  env?: NodeJS.ProcessEnv;
  log?: (message: string) => void;
}

const PROBE_TIMEOUT_MS = 1_000;

/**
 * Runs `work` with a connected client and the configured database, then closes the client and
 * stops an embedded mongod this call started, whether or not the work succeeded. Throws
 * ConfigError for a bad environment (see exitWithFailure).
 */
export async function withCliDatabase<T>(
  work: (db: Db, client: MongoClient, info: CliDatabaseInfo) => Promise<T>,
  options: CliDatabaseOptions = {},
): Promise<T> {
  const log = options.log ?? logToStderr;
  const database = await openCliDatabase({ ...options, log });
  let result: T;
  try {
    result = await withCliClient(database, work);
  } catch (error) {
    // The work's failure is the one to report; a failed stop is only worth a line.
    if (database.started) {
      await database
        .stop()
        .catch((stopError: unknown) => log(`stopping the embedded database failed too: ${describe(stopError)}`));
    }
    throw error;
  }
  if (database.started) {
    await database.stop();
    log('embedded database stopped');
  }
  return result;
}

/** Where a command's database is, as openCliDatabase found it. */
export interface CliDatabase extends CliDatabaseInfo {
  config: Config;
  /** True when openCliDatabase started the embedded mongod (nothing listened on its port). */
  started: boolean;
  /** Stops the embedded mongod when openCliDatabase started it, otherwise does nothing; idempotent. */
  stop(): Promise<void>;
}

/**
 * The first half of withCliDatabase, for a command that connects by itself (migrate-mongo's
 * command line, src/cli/migrate-config.ts): decides where the database is and starts the
 * embedded mongod when nothing runs it. The caller must call stop(). Throws ConfigError for a
 * bad environment.
 */
export async function openCliDatabase(options: CliDatabaseOptions = {}): Promise<CliDatabase> {
  const config = loadConfig(options.env ?? process.env);
  const log = options.log ?? logToStderr;
  const { dbName } = config.mongo;
  const nothingToStop = { config, dbName, started: false, stop: async () => {} };

  if (config.mongo.uri !== undefined) {
    const uri = config.mongo.uri;
    log(`connecting to ${redactSecrets(uri)} (database ${dbName})`);
    return { ...nothingToStop, uri, embedded: false };
  }

  const { port } = config.embedded;
  if (await somethingListens(EMBEDDED_HOST, port)) {
    // `npm start` holds the data dir's lock, so the only way in is through its mongod.
    log(
      `MONGODB_URI is not set and the embedded database already runs on ${EMBEDDED_HOST}:${port}: ` +
        `connecting to it (database ${dbName})`,
    );
    return {
      ...nothingToStop,
      uri: `mongodb://${EMBEDDED_HOST}:${port}/?replicaSet=${REPLICA_SET_NAME}`,
      embedded: true,
    };
  }

  log(
    `MONGODB_URI is not set and nothing listens on ${EMBEDDED_HOST}:${port}: ` +
      `starting the embedded database on ${serviceDataDir(config.embedded)}`,
  );
  const embedded = await startServiceMongo(config.embedded, log);
  return { config, uri: embedded.uri, dbName, embedded: true, started: true, stop: () => embedded.stop() };
}

/**
 * The second half of withCliDatabase: runs `work` with a client of the database openCliDatabase
 * found, once the server has answered, and closes the client. Does not stop an embedded mongod.
 */
export async function withCliClient<T>(
  database: CliDatabase,
  work: (db: Db, client: MongoClient, info: CliDatabaseInfo) => Promise<T>,
): Promise<T> {
  const { config, uri, dbName, embedded } = database;
  try {
    return await withClient(config, uri, { uri, dbName, embedded }, work);
  } catch (error) {
    if (!(error instanceof ConnectError) || !embedded || database.started) throw error;
    const { port } = config.embedded;
    throw new Error(
      `something listens on ${EMBEDDED_HOST}:${port} (EMBEDDED_MONGODB_PORT), but it is not the embedded replica set ` +
        `"${REPLICA_SET_NAME}": ${error.message}`,
      { cause: error },
    );
  }
}

function logToStderr(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Marks a failure to reach the server, as opposed to a failure of the work. */
class ConnectError extends Error {
  override name = 'ConnectError';
}

async function withClient<T>(
  config: Config,
  uri: string,
  info: CliDatabaseInfo,
  work: (db: Db, client: MongoClient, info: CliDatabaseInfo) => Promise<T>,
): Promise<T> {
  const client = new mongoose.mongo.MongoClient(uri, {
    appName: 'storekeeper-cli',
    writeConcern: { w: 'majority' },
    // A single seed host of a replica set: discover the members rather than talk to this one.
    ...(info.embedded ? { directConnection: false } : {}),
    maxPoolSize: Math.min(config.mongo.maxPoolSize, 10),
    serverSelectionTimeoutMS: config.mongo.serverSelectionTimeoutMS,
    connectTimeoutMS: config.mongo.connectTimeoutMS,
    socketTimeoutMS: config.mongo.socketTimeoutMS,
  });
  try {
    try {
      await client.connect();
      // connect() can succeed before a primary is known; a ping proves the server answers.
      await client.db('admin').command({ ping: 1 });
    } catch (error) {
      throw new ConnectError(`cannot reach MongoDB at ${redactSecrets(uri)}: ${describe(error)}`, { cause: error });
    }
    return await work(client.db(info.dbName), client, info);
  } finally {
    await client.close();
  }
}

function somethingListens(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host, port });
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function describe(error: unknown): string {
  return redactSecrets(errorMessage(error));
}

/** A failure whose message says everything an operator needs: printed without a prefix. */
export class CliError extends Error {
  override name = 'CliError';
}

/**
 * Prints why a command failed, the way src/server.ts does for the service (a bad environment
 * names every variable at fault; other messages lose any connection string's password), and
 * exits 1.
 */
export function exitWithFailure(command: string, error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(
      `storekeeper ${command}: ${error.message}\nSee .env.example for every variable and its default.\n`,
    );
  } else if (error instanceof CliError) {
    process.stderr.write(`storekeeper ${command}: ${redactSecrets(error.message)}\n`);
  } else {
    process.stderr.write(`storekeeper ${command}: failed: ${describe(error)}\n`);
  }
  process.exit(1);
}
