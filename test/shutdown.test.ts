import { afterEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { getPort } from './helpers/net.ts';
import { spawnService, type ServiceProcess } from './helpers/process.ts';
import { testDatabaseName } from './helpers/app.ts';

describe('graceful shutdown', () => {
  let service: ServiceProcess | undefined;
  afterEach(() => {
    service?.child.kill('SIGKILL');
  });

  it('on SIGTERM, a request in flight completes, new connections are refused, and the process exits 0', async () => {
    const port = await getPort();
    service = spawnService('test/fixtures/slow-server.ts', {
      PORT: String(port),
      MONGODB_URI: inject('mongoUri'),
      MONGODB_DB: testDatabaseName('shutdown'),
    });
    await service.waitForLine((line) => line.msg === 'MongoDB connected');
    await service.waitForLine((line) => typeof line.msg === 'string' && line.msg.startsWith('Server listening'));

    const inFlight = fetch(`http://127.0.0.1:${port}/test/slow`);
    await service.waitForLine((line) => line.msg === 'slow request started');
    service.child.kill('SIGTERM');
    await service.waitForLine((line) => line.msg === 'shutting down: finishing in-flight requests');

    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ finished: true });

    expect(await service.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/health/live`)).rejects.toThrow();
    const messages = service.lines.map((line) => line.msg);
    expect(messages.indexOf('MongoDB connection closed')).toBeGreaterThan(
      messages.indexOf('shutting down: finishing in-flight requests'),
    );
    expect(messages.indexOf('shutdown complete')).toBeGreaterThan(messages.indexOf('MongoDB connection closed'));
  });
});
