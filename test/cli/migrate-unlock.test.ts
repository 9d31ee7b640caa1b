// `npm run migrate:unlock`: a crashed run's migration lock shown with its age, kept unless --force,
// then removed so that the next run proceeds; and nothing to do when no lock is held.

import { describe, expect, inject, it } from 'vitest';
import { npmRun } from '../helpers/commands.ts';
import { useMigratedDatabase } from '../helpers/app.ts';
import { MIGRATION_SETTINGS } from '../../src/data/migrations.ts';

describe('npm run migrate:unlock', () => {
  const database = useMigratedDatabase('migrate_unlock');
  const env = () => ({ MONGODB_URI: inject('mongoUri'), MONGODB_DB: database.name });
  const locks = () => database.db.collection(MIGRATION_SETTINGS.lockCollectionName);

  it('says no lock is held, and changes nothing, when none is', async () => {
    const result = await npmRun('migrate:unlock', ['--force'], env());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`no migration lock is held (database ${database.name})`);
  });

  it("shows a crashed run's lock and keeps it without --force; with it, removes it and the next run proceeds", async () => {
    // What a run that died holding the lock leaves: migrate-mongo's lock document.
    const createdAt = new Date(Date.now() - 90_000);
    await locks().insertOne({ createdAt });

    const stopped = await npmRun('migrate:up', [], env());
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('npm run migrate:unlock');

    const shown = await npmRun('migrate:unlock', [], env());
    expect(shown.code).toBe(1);
    expect(shown.stdout).toContain(`migration lock held since ${createdAt.toISOString()}`);
    expect(shown.stdout).toMatch(/\((9\d|1\d\d) s ago\)/);
    expect(shown.stderr).toContain('the lock stays');
    expect(await locks().countDocuments()).toBe(1);

    const removed = await npmRun('migrate:unlock', ['--force'], env());
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('removed 1 lock document(s)');
    expect(await locks().countDocuments()).toBe(0);

    const next = await npmRun('migrate:up', [], env());
    expect(next.code, next.stderr).toBe(0);
  });

  it('refuses an argument it does not know, with its usage', async () => {
    const result = await npmRun('migrate:unlock', ['--now'], env());
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('usage: npm run migrate:unlock');
    expect(await locks().countDocuments()).toBe(0);
  });
});
