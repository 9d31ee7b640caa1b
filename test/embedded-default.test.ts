import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { npmRun } from './helpers/commands.ts';
import { getPort } from './helpers/net.ts';
import { spawnService, type ServiceProcess } from './helpers/process.ts';
import { MIGRATION_FILES, waitFor } from './helpers/app.ts';

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health/ready`)).status === 200;
  } catch {
    return false;
  }
}

describe('the embedded default (no MONGODB_URI)', () => {
  let dataDir: string;
  let service: ServiceProcess | undefined;

  afterEach(() => {
    service?.child.kill('SIGKILL');
  });
  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts its own replica set with data on disk, and keeps the data across a restart', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'storekeeper-embedded-'));
    const env = {
      PORT: String(await getPort()),
      DATA_DIR: dataDir,
      EMBEDDED_MONGODB_PORT: String(await getPort()),
    };
    const port = Number(env.PORT);

    service = spawnService('src/server.ts', env);
    const started = await service.waitForLine(
      (line) => line.msg === 'embedded MongoDB is running; its data stays in dataDir',
    );
    expect(started.dataDir).toBe(join(dataDir, 'mongodb'));
    await waitFor(() => ready(port), 60_000, 'readiness on the embedded database');

    // The first start applied the migrations; a product is written through the API.
    expect(service.lines.some((line) => line.msg === `applied migrations: ${MIGRATION_FILES.join(', ')}`)).toBe(true);
    // An operator creates a key through the running service's database, as the README says.
    const keys = await npmRun('keys', ['create', '--name', 'newcomer', '--scope', 'products:*', '--json'], env);
    expect(keys.code, keys.stderr).toBe(0);
    const { key } = JSON.parse(keys.stdout) as { key: string };
    const authorization = `Bearer ${key}`;
    expect((await fetch(`http://127.0.0.1:${port}/v1/products`)).status).toBe(401);
    const created = await fetch(`http://127.0.0.1:${port}/v1/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify({
        sku: 'KEPT-1',
        name: 'Survives restarts',
        price: { amount: 100, currency: 'EUR' },
        category: 'tests',
      }),
    });
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;

    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);

    service = spawnService('src/server.ts', env);
    await service.waitForLine((line) => line.msg === 'embedded MongoDB is running; its data stays in dataDir');
    await waitFor(() => ready(port), 60_000, 'readiness after the restart');
    expect(service.lines.some((line) => line.msg === 'migrations are up to date')).toBe(true);
    const read = await fetch(`http://127.0.0.1:${port}${location}`, { headers: { authorization } });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ sku: 'KEPT-1', name: 'Survives restarts', version: 1 });
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
  });
});
