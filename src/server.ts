// The entry point: read the configuration, start the embedded MongoDB when no MONGODB_URI is
// set, build the app, listen, and shut down gracefully on SIGTERM/SIGINT (stop accepting,
// let in-flight requests finish within SHUTDOWN_GRACE_MS, close MongoDB, then the embedded
// mongod, exit 0; see shutdown.ts). Tracing, when the OTEL_* variables ask for it, starts first
// and is flushed last (telemetry.ts): the modules that load mongoose are imported only after it
// has started, since its MongoDB instrumentation patches the driver as the driver is loaded.

import { pathToFileURL } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger, redactSecrets } from './logger.ts';
import { startTracing, stopTracing, tracingRequested } from './telemetry.ts';
import type { EmbeddedMongo } from './mongod/embedded.ts';
import { handleStopRequests } from './shutdown.ts';
import { errorMessage } from './errors.ts';

export interface StartOptions {
  env?: Record<string, string | undefined>;
  /** Extra routes registered after the app's own; lets tests exercise the real lifecycle. */
  extend?: FastifyPluginAsync;
}

export async function start({ env = process.env, extend }: StartOptions = {}): Promise<FastifyInstance> {
  const config = loadConfig(env);
  if (tracingRequested(env)) await startTracing();
  const logger = createLogger(config.log);
  const stopping = handleStopRequests({
    graceMs: config.shutdownGraceMs,
    logger,
    // npm sets it for its scripts, and npm passes its signals on to them.
    parentForwardsSignals: env.npm_lifecycle_event !== undefined,
  });
  try {
    const { app, embedded } = await startService(config, logger, extend);
    stopping.ready(async () => {
      await app.close();
      await embedded?.stop();
      await stopTracing();
    });
    return app;
  } catch (error) {
    stopping.uninstall();
    throw error;
  }
}

async function startService(
  config: Config,
  logger: Logger,
  extend: FastifyPluginAsync | undefined,
): Promise<{ app: FastifyInstance; embedded: EmbeddedMongo | undefined }> {
  let embedded: EmbeddedMongo | undefined;
  let uri = config.mongo.uri;
  if (uri === undefined) {
    // Loaded only here: with MONGODB_URI set, mongodb-memory-server (and the second MongoDB
    // driver it brings) is never loaded, which keeps several MB off a production heap.
    const { serviceDataDir, startServiceMongo } = await import('./mongod/embedded.ts');
    const dataDir = serviceDataDir(config.embedded);
    logger.info({ dataDir }, 'MONGODB_URI is not set: starting the embedded MongoDB replica set');
    embedded = await startServiceMongo(config.embedded, (message) => logger.info(message));
    uri = embedded.uri;
    logger.info(
      { dataDir, uri, source: embedded.source, mongodPid: embedded.pid },
      'embedded MongoDB is running; its data stays in dataDir',
    );
  }

  // Here, not at the top: after tracing has started (see the header).
  const [{ buildApp }, { prepareSchemaAtStart }] = await Promise.all([
    import('./app.ts'),
    import('./data/migrations.ts'),
  ]);
  const migrations = config.migrationsOnStart === 'auto' ? (embedded ? 'apply' : 'check') : config.migrationsOnStart;
  try {
    await prepareSchemaAtStart(uri, config.mongo.dbName, migrations, {
      info: (message) => logger.info({ migrations }, message),
      warn: (message) => logger.warn({ migrations }, message),
    });
  } catch (error) {
    await embedded?.stop();
    throw error;
  }

  const app = await buildApp({ config: { ...config, mongo: { ...config.mongo, uri } }, logger });
  try {
    if (extend) await app.register(extend);
    await app.listen({ host: config.http.host, port: config.http.port });
  } catch (error) {
    // A failed start must not leave the embedded mongod running behind it.
    await app.close();
    await embedded?.stop();
    throw error;
  }

  return { app, embedded };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  start().catch((error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`storekeeper: ${error.message}\nSee .env.example for every variable and its default.\n`);
    } else {
      process.stderr.write(`storekeeper: failed to start: ${redactSecrets(errorMessage(error))}\n`);
    }
    process.exit(1);
  });
}
