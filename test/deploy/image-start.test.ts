// What compose.yaml runs in the storekeeper image, run the same way outside Docker against the test
// replica set: the migrate job's command, then the image's CMD with the image's ENV and an
// instance's environment from compose.yaml, until /health/ready answers; the image's HEALTHCHECK
// command exits 0; the prometheus-key job's script writes a key that /metrics takes, and keeps it
// on its next run; SIGTERM ends the instance with status 0 and nothing on stderr. Only the database
// (the test replica set, a database of this file's own) and the port (a free one) are the test's.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { testDatabaseName } from '../helpers/app.ts';
import { getPort } from '../helpers/net.ts';
import { composeService, layOutImage, local, runToEnd, type Image } from './image.ts';

describe('the storekeeper image, as compose.yaml runs it', () => {
  let image: Image;
  let keys: string;
  let instance: ChildProcess | undefined;
  const database = testDatabaseName('deploy');

  beforeAll(async () => {
    image = await layOutImage();
    keys = await mkdtemp(join(tmpdir(), 'storekeeper-keys-'));
  });
  afterAll(async () => {
    instance?.kill('SIGKILL');
    await image.remove();
    await rm(keys, { recursive: true, force: true });
  });

  /** The environment compose gives a service, on this file's database instead of the replica set's. */
  const environment = async (service: string, extra: Record<string, string> = {}): Promise<Record<string, string>> => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    ...image.runtime.env,
    ...(await composeService(service)).environment,
    MONGODB_URI: inject('mongoUri'),
    MONGODB_DB: database,
    ...extra,
  });

  it('runs the migrate job, starts an instance, answers its healthcheck and the prometheus-key job, and stops on SIGTERM', async () => {
    const migrate = await composeService('migrate');
    const migrated = await runToEnd(local(migrate.command ?? []), {
      cwd: image.dir,
      env: await environment('migrate'),
    });
    expect(migrated.code, migrated.output).toBe(0);
    expect(migrated.stdout).toMatch(/MIGRATED UP/);

    const port = await getPort();
    const env = await environment('storekeeper-1', { PORT: String(port) });
    expect(env.MIGRATIONS_ON_START, 'the instance refuses to start with migrations pending').toBe('require');
    const [file = '', ...args] = local(image.runtime.cmd ?? []);
    const started = spawn(file, args, { cwd: image.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    instance = started;
    let stderr = '';
    started.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    started.stdout.resume();
    const exited = new Promise<number | null>((resolve) => started.once('exit', (code) => resolve(code)));

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

    const healthcheck = await runToEnd(local(image.runtime.healthcheck ?? []), { cwd: image.dir, env });
    expect(healthcheck.code, healthcheck.output).toBe(0);

    const job = await composeService('prometheus-key');
    const keyFile = join(keys, 'storekeeper');
    const jobEnv = await environment('prometheus-key', { KEY_FILE: keyFile });
    const created = await runToEnd(local(job.command ?? []), { cwd: image.dir, env: jobEnv });
    expect(created.code, created.output).toBe(0);
    expect(created.stdout).toMatch(/created key/);
    const key = (await readFile(keyFile, 'utf8')).trim();
    const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^storekeeper_http_requests_total/m);
    const again = await runToEnd(local(job.command ?? []), { cwd: image.dir, env: jobEnv });
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toMatch(/is active, kept/);
    expect((await readFile(keyFile, 'utf8')).trim()).toBe(key);

    started.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    instance = undefined;
  });
});
