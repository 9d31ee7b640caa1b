// `npm run sandbox` as a person runs it: started through npm in a terminal's process group, used
// with the key it prints, and stopped with Ctrl-C (SIGINT to the whole group, so the service gets
// it from the terminal and again from npm), after which npm exits 0 and nothing answers.

import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.ts';

describe('npm run sandbox', () => {
  let pid: number | undefined;
  afterEach(() => {
    // A failed test must not leave the sandbox running.
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });

  it('prints its URL, docs and key, serves the demo data, and stops on Ctrl-C with exit 0', async () => {
    const child = spawn('npm', ['run', '--silent', 'sandbox', '--', '--products', '12', '--customers', '2'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    pid = child.pid;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

    const deadline = Date.now() + 120_000;
    while (!stdout.includes('Ctrl-C stops it.')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no banner; stderr: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const url = /URL: +(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    const key = /Key: +(sk_\S+)/.exec(stdout)?.[1];
    expect(stdout).toContain(`Docs: ${url}/docs`);

    expect((await fetch(`${url}/docs`)).status).toBe(200);
    const products = await fetch(`${url}/v1/products?limit=100`, { headers: { authorization: `Bearer ${key}` } });
    expect(products.status).toBe(200);
    expect(((await products.json()) as { items: unknown[] }).items).toHaveLength(12);

    process.kill(-pid!, 'SIGINT');
    expect(await exited).toBe(0);
    pid = undefined;
    expect(stdout).toContain('storekeeper sandbox: stopped');
    expect(stderr).toBe('');
    await expect(fetch(`${url}/health/live`)).rejects.toThrow();
  });
});
