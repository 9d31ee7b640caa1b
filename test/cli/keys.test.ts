// `npm run keys`: create (shown once, stored as a hash), list (never a secret), revoke, and the
// refusals an operator can run into.

import { describe, expect, inject, it } from 'vitest';
import { npmRun } from '../helpers/commands.ts';
import { useMigratedDatabase } from '../helpers/app.ts';
import { CliError } from '../../src/cli/database-connection.ts';
import { parseKeysArguments, runKeysCommand } from '../../src/cli/keys.ts';
import { SCOPES } from '../../src/domain/access.ts';

describe('npm run keys', () => {
  const database = useMigratedDatabase('keys_cli');
  const env = () => ({ MONGODB_URI: inject('mongoUri'), MONGODB_DB: database.name });

  it('creates a key, shows it once, lists it without its secret, and revokes it', async () => {
    const created = await npmRun(
      'keys',
      ['create', '--name', 'warehouse sync', '--scope', 'stock:*,products:read', '--expires', '2099-01-01', '--json'],
      env(),
    );
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key).toMatchObject({
      name: 'warehouse sync',
      scopes: ['products:read', 'stock:read', 'stock:write'],
      expiresAt: '2099-01-01T00:00:00.000Z',
    });
    expect(key.key).toMatch(new RegExp(`^sk_${key.prefix}_[A-Za-z0-9_-]{43}$`));

    const listed = await npmRun('keys', ['list'], env());
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(
      `${key.id}  ${key.prefix}  warehouse sync  [active until 2099-01-01T00:00:00.000Z]`,
    );
    expect(listed.stdout).not.toContain(key.key.slice(16));
    const stored = await database.db.collection('api_keys').findOne({ prefix: key.prefix });
    expect(JSON.stringify(stored)).not.toContain(key.key.slice(16));

    const revoked = await npmRun('keys', ['revoke', key.prefix], env());
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked key ${key.id} "warehouse sync"`);
    const after = JSON.parse((await npmRun('keys', ['list', '--json'], env())).stdout);
    expect(after.find((listedKey: { id: string }) => listedKey.id === key.id).revokedAt).toEqual(expect.any(String));
  });

  // The rest runs the command in-process: spawning npm costs seconds per case.
  const run = async (args: string[]) => {
    const lines: string[] = [];
    const command = parseKeysArguments(args);
    if (command.action === 'help') throw new Error('help asked for');
    await runKeysCommand(command, (line) => lines.push(line), env());
    return lines.join('\n');
  };

  it('prints a human-readable key with how to use it', async () => {
    const output = await run(['create', '--name', 'ops', '--scope', '*']);
    expect(output).toMatch(/^ {2}sk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/m);
    expect(output).toContain('This is the only time the key is shown');
    expect(output).toContain(`scopes: ${SCOPES.join(' ')}`);
  });

  it.each([
    [['create', '--name', 'x', '--scope', 'products:delete'], /unknown scope "products:delete"/],
    [['create', '--scope', 'products:read'], /create needs --name/],
    [['create', '--name', 'x'], /create needs at least one --scope/],
    [['create', '--name', 'x', '--scope', '*', '--expires', 'tomorrow'], /--expires must be an ISO date/],
    [['create', '--name', 'x', '--scope', '*', '--expires', '2001-01-01'], /the expiry must be in the future/],
    [['create', '--name', 'x', '--scope', '*', '--rate-limit', '1.5'], /--rate-limit must be a whole number/],
    [['revoke', 'nosuchprefix'], /no API key with id or prefix "nosuchprefix"/],
    [['rotate'], /unknown action "rotate"/],
  ])('refuses %j with a message for the operator', async (args, message) => {
    await expect(run(args)).rejects.toThrow(message);
    await expect(run(args)).rejects.toBeInstanceOf(CliError);
  });

  it('exits 1 with the message on stderr when run as a command', async () => {
    const result = await npmRun('keys', ['create', '--name', 'x', '--scope', 'nope'], env());
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/storekeeper keys: unknown scope "nope"/);
  });

  it('parses scopes given several times or comma-separated', () => {
    expect(parseKeysArguments(['create', '--name', 'n', '--scope', 'a,b', '--scope', 'c'])).toMatchObject({
      scopes: ['a', 'b', 'c'],
    });
    expect(parseKeysArguments(['--help'])).toEqual({ action: 'help' });
  });
});
