// The service as production runs it (src/server.ts in a process of its own) on a freshly migrated
// database of the fault cluster, with an API key holding every scope and its JSON log lines kept.
// A process of its own, so that a crash is a finding rather than the end of the suite, and the
// load clients' timings are not the service's event loop.

import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import { ApiKeyStore } from '../../src/data/api-keys.ts';
import { migrateUp } from '../../src/data/migrations.ts';
import type { LogLine } from '../helpers/app.ts';
import { getPort } from '../helpers/net.ts';
import { spawnService, type ServiceProcess } from '../helpers/process.ts';
import { READINESS_TIMEOUT_MS, REQUEST_DEADLINE_MS } from './bounds.ts';
import { sleep } from './client.ts';

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export interface Service {
  baseUrl: string;
  apiKey: string;
  dbName: string;
  process: ServiceProcess;
  /** Log lines at level error (50) or above. */
  errorLines(): LogLine[];
  /** The exit code when the process ended on its own before stop(). */
  exitedEarly(): number | null | undefined;
  stop(): Promise<void>;
}

export async function startService(uri: string, label: string): Promise<Service> {
  const dbName = `faults_${label}_${randomBytes(3).toString('hex')}`;
  // Migrations first, one at a time: concurrent first writes to a missing collection crash the
  // Wine build of mongod, and production applies them before serving too.
  const client = await new mongoose.mongo.MongoClient(uri).connect();
  let apiKey: string;
  try {
    await migrateUp(client.db(dbName), client);
    ({ key: apiKey } = await ApiKeyStore.of(client.db(dbName)).create({
      name: 'faults',
      scopes: ['*'],
      rateLimitPerMinute: 0,
    }));
  } finally {
    await client.close();
  }

  const port = await getPort();
  const child = spawnService('src/server.ts', {
    HOST: '127.0.0.1',
    PORT: String(port),
    MONGODB_URI: uri,
    MONGODB_DB: dbName,
    MIGRATIONS_ON_START: 'require',
    // Warnings and errors only: thousands of access lines would cost more than they tell here.
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '0',
    RATE_LIMIT_ANONYMOUS_PER_MINUTE: '0',
    REQUEST_DEADLINE_MS: String(REQUEST_DEADLINE_MS),
    READINESS_TIMEOUT_MS: String(READINESS_TIMEOUT_MS),
    SHUTDOWN_GRACE_MS: '3000',
  });
  let exitCode: number | null | undefined;
  let stopping = false;
  void child.exited.then((code) => {
    if (!stopping) exitCode = code;
  });

  // Should the test process end without stop() (a timed-out test), the service must not outlive it.
  const killOnExit = () => child.child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    stopping = true;
    process.off('exit', killOnExit);
    if (child.child.exitCode !== null || child.child.signalCode !== null) return;
    child.child.kill('SIGTERM');
    const timer = setTimeout(() => child.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await child.exited;
    clearTimeout(timer);
  };
  try {
    await waitUntilReady(baseUrl, child);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    baseUrl,
    apiKey,
    dbName,
    process: child,
    errorLines: () => child.lines.filter((line) => line.level >= 50),
    exitedEarly: () => exitCode,
    stop,
  };
}

// The access log line "Server listening" is below the level the suite logs at: ask instead.
async function waitUntilReady(baseUrl: string, child: ServiceProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.child.exitCode !== null)
      throw new Error(`the service exited with ${child.child.exitCode}: ${child.stderr.join('')}`);
    const status = await fetch(`${baseUrl}/health/ready`, { signal: AbortSignal.timeout(2000) }).then(
      (res) => res.status,
      () => undefined,
    );
    if (status === 200) return;
    if (Date.now() > deadline)
      throw new Error(`the service was not ready within ${START_TIMEOUT_MS} ms: ${child.stderr.join('')}`);
    await sleep(200);
  }
}
