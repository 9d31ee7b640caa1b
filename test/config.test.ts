import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, renderEnvExample, variables } from '../src/config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be refused');
}

describe('configuration', () => {
  it('with an empty environment, every setting has its documented default and MongoDB is embedded', () => {
    const config = loadConfig({}, '/srv/app');
    expect(config.http).toEqual({
      host: '127.0.0.1',
      port: 3000,
      bodyLimit: 1_048_576,
      trustProxy: false,
      docs: true,
      deadlineMs: 10_000,
    });
    expect(config.mongo.uri).toBeUndefined();
    expect(config.mongo).toMatchObject({
      dbName: 'storekeeper',
      maxPoolSize: 50,
      minPoolSize: 2,
      serverSelectionTimeoutMS: 5000,
    });
    expect(config.embedded).toEqual({ dataDir: '/srv/app/.data', port: 27117, cacheSizeGB: 0.25, binary: undefined });
  });

  it('reads typed values from the environment', () => {
    const config = loadConfig({
      PORT: '8080',
      TRUST_PROXY: 'yes',
      MONGODB_URI: 'mongodb://a:1,b:2/?replicaSet=rs0',
      DATA_DIR: '/var/lib/sk',
    });
    expect(config.http.port).toBe(8080);
    expect(config.http.trustProxy).toBe(true);
    expect(config.mongo.uri).toBe('mongodb://a:1,b:2/?replicaSet=rs0');
    expect(config.embedded.dataDir).toBe('/var/lib/sk');
  });

  it.each([
    ['PORT', 'eighty', 'PORT must be an integer'],
    ['PORT', '70000', 'PORT must be between 0 and 65535'],
    ['LOG_LEVEL', 'loud', 'LOG_LEVEL must be one of'],
    ['MONGODB_URI', 'http://localhost', 'MONGODB_URI must be a MongoDB connection string'],
    ['MONGODB_URI', 'mongodb://', 'MONGODB_URI must be a MongoDB connection string'],
    ['MONGODB_URI', 'mongodb://db:99999/x', 'MONGODB_URI has an invalid port'],
    ['MONGODB_DB', 'my shop', 'MONGODB_DB must be 1-63 characters'],
    ['TRUST_PROXY', 'maybe', 'TRUST_PROXY must be true or false'],
    ['EMBEDDED_MONGODB_CACHE_GB', 'lots', 'EMBEDDED_MONGODB_CACHE_GB must be a number'],
  ])('a malformed %s (%s) is refused with a message naming it', (name, value, message) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });

  it('logs MongoDB commands of 100 ms or more as slow unless told otherwise; 0 logs none', () => {
    expect(loadConfig({}).mongo.slowOperationMs).toBe(100);
    expect(loadConfig({ SLOW_OPERATION_MS: '0' }).mongo.slowOperationMs).toBe(0);
    expect(loadConfig({ SLOW_OPERATION_MS: '250' }).mongo.slowOperationMs).toBe(250);
    expect(problemsOf({ SLOW_OPERATION_MS: '-1' })[0]).toContain('SLOW_OPERATION_MS must be between 0 and');
  });

  it('reports every problem at once, and checks settings against each other', () => {
    const problems = problemsOf({
      PORT: '-1',
      MONGODB_MIN_POOL_SIZE: '20',
      MONGODB_MAX_POOL_SIZE: '10',
      SHUTDOWN_GRACE_MS: 'soon',
    });
    expect(problems).toEqual([
      expect.stringContaining('PORT'),
      expect.stringContaining('SHUTDOWN_GRACE_MS'),
      'MONGODB_MIN_POOL_SIZE (20) must not exceed MONGODB_MAX_POOL_SIZE (10)',
    ]);
  });

  it('never echoes a malformed connection string, which may hold a password', () => {
    const problems = problemsOf({ MONGODB_URI: 'mongodb://user:hunter2@db:99999/x' });
    expect(problems.join()).not.toContain('hunter2');
  });

  it('.env.example lists every variable with its default (run `npm run env:example` when this fails)', async () => {
    const committed = await readFile(new URL('../.env.example', import.meta.url), 'utf8');
    expect(committed).toBe(renderEnvExample());
    for (const name of Object.keys(variables)) expect(committed).toMatch(new RegExp(`^#? ?${name}=`, 'm'));
  });

  it('the service refuses to start on a bad value: exit code 1 and a message naming the variable', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: new URL('..', import.meta.url),
      env: { PATH: process.env.PATH, PORT: 'abc', MONGODB_URI: 'mongodb://user:hunter2@', LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('PORT must be an integer, got "abc"');
    expect(result.stderr).toContain('MONGODB_URI must be a MongoDB connection string');
    expect(result.stderr).not.toContain('hunter2');
  });
});

describe('docs/configuration.md', () => {
  it('documents every variable in its configuration table (run `npm run env:example` when this fails)', async () => {
    const { CONFIG_PAGE, withConfigTable } = await import('../src/cli/env-example.ts');
    const page = await readFile(new URL(`../${CONFIG_PAGE}`, import.meta.url), 'utf8');
    expect(page).toBe(withConfigTable(page));
  });
});
