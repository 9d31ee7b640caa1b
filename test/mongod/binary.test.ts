// Precedence of resolveMongodBinary's explicit binary settings; none of these touch the network or Wine.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MONGOD_VERSION, resolveMongodBinary } from '../../src/mongod/binary.ts';

describe('resolveMongodBinary with an explicit binary', () => {
  let dir: string;
  let fakeMongod: string;
  let otherFake: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storekeeper-binary-test-'));
    fakeMongod = join(dir, 'mongod');
    otherFake = join(dir, 'other-mongod');
    for (const file of [fakeMongod, otherFake]) {
      await writeFile(file, '#!/bin/sh\necho "db version v7.0.15"\n');
      await chmod(file, 0o755);
    }
  });

  afterEach(() => {
    vi.unstubAllEnvs();
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('uses options.systemBinary, even over MONGOMS_SYSTEM_BINARY', async () => {
    vi.stubEnv('MONGOMS_SYSTEM_BINARY', otherFake);
    await expect(resolveMongodBinary({ systemBinary: fakeMongod })).resolves.toEqual({
      version: MONGOD_VERSION,
      systemBinary: fakeMongod,
      source: 'system',
    });
  });

  it('uses MONGOMS_SYSTEM_BINARY when no option is given', async () => {
    vi.stubEnv('MONGOMS_SYSTEM_BINARY', fakeMongod);
    await expect(resolveMongodBinary({ version: '7.0.14' })).resolves.toEqual({
      version: '7.0.14',
      systemBinary: fakeMongod,
      source: 'system',
    });
  });

  it('names the path when the explicit binary does not exist', async () => {
    const missing = join(dir, 'no-such-mongod');
    await expect(resolveMongodBinary({ systemBinary: missing })).rejects.toThrow(
      `mongod binary "${missing}" (from systemBinary) does not exist`,
    );
  });

  it('names the path when the explicit binary is not executable', async () => {
    const plain = join(dir, 'not-executable');
    await writeFile(plain, 'not a program\n');
    await chmod(plain, 0o644);
    await expect(resolveMongodBinary({ systemBinary: plain })).rejects.toThrow(
      `mongod binary "${plain}" (from systemBinary) is not executable`,
    );
  });
});
