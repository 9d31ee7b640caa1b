// A damaged or incomplete backup is found out before any database is touched: verification and
// the restore name the file at fault, and the target stays exactly as it was. The three commands
// run here as ops run them (npm run backup, restore, backup:verify).

import { cp, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { backupDatabase } from '../../src/backup/dump.ts';
import { BackupInvalidError, verifyBackup } from '../../src/backup/verify.ts';
import { restoreDatabase } from '../../src/backup/restore.ts';
import type { Manifest } from '../../src/backup/manifest.ts';
import { seed } from '../../src/cli/seed.ts';
import { dropDatabase, migrateDatabase, testDatabaseName } from '../helpers/app.ts';
import { npmRun, type CommandResult } from '../helpers/commands.ts';
import { backupDir, contentsOf, databaseNames, newClient } from './helpers.ts';

const events = (result: CommandResult) =>
  result.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { event: string; message: string; [field: string]: unknown });

describe('a damaged backup', () => {
  const source = testDatabaseName('backup_damaged');
  const target = testDatabaseName('backup_damaged_target');
  const client = newClient();
  let dir: string;
  let backedUp: CommandResult;
  const env = () => ({ MONGODB_URI: inject('mongoUri'), MONGODB_DB: source });

  beforeAll(async () => {
    dir = await backupDir('damaged');
    await migrateDatabase(source);
    await client.connect();
    await seed(client.db(source), { products: 80, customers: 20, seed: 5 });
    backedUp = await npmRun('backup', ['--out', dir], env());
  });
  afterAll(async () => {
    await client.close();
    for (const name of [source, target]) await dropDatabase(name);
    await rm(dirname(dir), { recursive: true, force: true });
  });

  it('npm run backup writes a backup, reporting progress as JSON lines when stderr is not a terminal', async () => {
    expect(backedUp.code, backedUp.stderr).toBe(0);
    const reported = events(backedUp);
    expect(reported.map((e) => e.event)).toEqual(
      expect.arrayContaining(['backup-started', 'collection-done', 'backup-done']),
    );
    expect(reported.at(-1)).toMatchObject({ event: 'backup-done', database: source });
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.collections.find((c) => c.name === 'products')!.documents).toBe(80);
    expect((await verifyBackup(dir)).ok).toBe(true);
  });

  describe('with one .bson file cut short', () => {
    const file = () => `${source}/products.bson`;

    beforeAll(async () => {
      const path = join(dir, file());
      const { length } = await readFile(path);
      await truncate(path, Math.floor(length / 2));
    });

    it('verification names the file and says it is truncated', async () => {
      const report = await verifyBackup(dir);
      expect(report.ok).toBe(false);
      expect(report.problems).toEqual([
        { file: file(), problem: expect.stringMatching(/bytes, the manifest records \d+: truncated/) },
      ]);
    });

    it('the restore refuses it, naming the file, before creating the target or a staging database', async () => {
      const before = await databaseNames(client);
      const error = await restoreDatabase(client, target, { from: dir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackupInvalidError);
      expect((error as Error).message).toContain(`${file()}: is `);
      expect(await databaseNames(client)).toEqual(before);
      expect(before).not.toContain(target);
    });

    it('the restore with --replace refuses it too, and the existing database stays exactly as it was', async () => {
      const names = ['products', 'customers', 'stock', 'migrations_changelog'];
      const before = await contentsOf(client.db(source), names);
      const error = await restoreDatabase(client, source, { from: dir, replace: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackupInvalidError);
      expect(await contentsOf(client.db(source), names)).toEqual(before);
    });

    it('npm run restore and npm run backup:verify exit 1 naming the file', async () => {
      const [restore, verify] = await Promise.all([
        npmRun('restore', ['--from', dir, '--db', target], env()),
        npmRun('backup:verify', [dir], env()),
      ]);
      expect(restore.code, restore.stderr).toBe(1);
      expect(events(restore).at(-1)).toMatchObject({ event: 'failed', problems: [{ file: file() }] });
      expect(events(restore).at(-1)!.message).toContain(file());
      expect(verify.code, verify.stderr).toBe(1);
      expect(events(verify)).toContainEqual(expect.objectContaining({ event: 'problem', file: file() }));
      expect(events(verify).at(-1)).toMatchObject({ event: 'verify-failed', ok: false, problems: 1 });
      expect(await databaseNames(client)).not.toContain(target);
    });
  });

  describe('other damage', () => {
    let intact: string;

    beforeAll(async () => {
      intact = join(dirname(dir), 'intact');
      await backupDatabase(client.db(source), { out: intact, gzip: true });
    });

    it('a backup without its manifest is incomplete', async () => {
      const other = join(dirname(dir), 'no-manifest');
      await cp(intact, other, { recursive: true });
      await rename(join(other, 'manifest.json'), join(other, 'manifest.json.old'));
      const report = await verifyBackup(other);
      expect(report.problems).toEqual([{ file: 'manifest.json', problem: expect.stringContaining('is missing') }]);
    });

    it('a changed byte (same size) fails the checksum; a cut file and a missing one are named', async () => {
      const other = join(dirname(dir), 'changed');
      await cp(intact, other, { recursive: true });
      const flipped = join(other, `${source}/customers.metadata.json.gz`);
      const bytes = await readFile(flipped);
      bytes[bytes.length - 5]! ^= 0xff;
      await writeFile(flipped, bytes);
      const gz = join(other, `${source}/stock.bson.gz`);
      const { length } = await readFile(gz);
      await truncate(gz, length - 100);
      await rm(join(other, `${source}/migrations_changelog.bson.gz`));
      const report = await verifyBackup(other);
      expect(report.problems).toEqual([
        { file: `${source}/customers.metadata.json.gz`, problem: expect.stringContaining('SHA-256') },
        { file: `${source}/migrations_changelog.bson.gz`, problem: 'is missing' },
        { file: `${source}/stock.bson.gz`, problem: expect.stringContaining('truncated') },
      ]);
    });
  });
});
