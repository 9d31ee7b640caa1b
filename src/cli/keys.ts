// `npm run keys -- create|list|revoke`: the operator's hands on API keys. A created key is
// printed once and never again (only its hash is stored); --json prints machine-readable output
// for scripts, and nothing else goes to stdout then.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { SCOPES } from '../domain/access.ts';
import { ApiKeyStore, type ApiKeyInfo } from '../data/api-keys.ts';
import { CliError, exitWithFailure, withCliDatabase } from './database-connection.ts';

const USAGE = `usage:
  npm run keys -- create --name NAME --scope SCOPE [--scope SCOPE ...] [--expires DATE] [--rate-limit N] [--json]
  npm run keys -- list [--json]
  npm run keys -- revoke ID_OR_PREFIX [--json]

Scopes: ${SCOPES.join(', ')}
  shorthands: * (every scope), *:read, *:write (every collection), <collection>:* (read and write)
  --scope takes one scope or a comma-separated list.
--expires   an ISO date or date-time (2027-01-31, 2027-01-31T12:00:00Z) after which the key stops working
--rate-limit requests per minute for this key (0: unlimited), instead of RATE_LIMIT_PER_MINUTE
The database is MONGODB_URI's, or the embedded one (DATA_DIR, EMBEDDED_MONGODB_PORT).`;

export type KeysCommand =
  | { action: 'create'; name: string; scopes: string[]; expiresAt?: Date; rateLimitPerMinute?: number; json: boolean }
  | { action: 'list'; json: boolean }
  | { action: 'revoke'; key: string; json: boolean }
  | { action: 'help' };

export function parseKeysArguments(args: string[]): KeysCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        name: { type: 'string' },
        scope: { type: 'string', multiple: true },
        expires: { type: 'string' },
        'rate-limit': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const [action, ...rest] = positionals;
  const json = values.json;
  const usage = (problem: string) => new CliError(`${problem}\n${USAGE}`);
  if (values.help === true || action === undefined || action === 'help') return { action: 'help' };

  if (action === 'create') {
    if (rest.length > 0) throw usage(`create takes no positional arguments, got ${rest.join(' ')}`);
    if (values.name === undefined) throw usage('create needs --name');
    const scopes = (values.scope ?? []).flatMap((scope) => scope.split(',')).filter((scope) => scope.trim() !== '');
    if (scopes.length === 0) throw usage('create needs at least one --scope');
    let expiresAt: Date | undefined;
    if (values.expires !== undefined) {
      expiresAt = new Date(values.expires);
      if (!/^\d{4}-\d{2}-\d{2}/.test(values.expires) || Number.isNaN(expiresAt.getTime()))
        throw usage(`--expires must be an ISO date, got "${values.expires}"`);
    }
    let rateLimitPerMinute: number | undefined;
    if (values['rate-limit'] !== undefined) {
      if (!/^\d{1,9}$/.test(values['rate-limit']))
        throw usage(`--rate-limit must be a whole number, got "${values['rate-limit']}"`);
      rateLimitPerMinute = Number(values['rate-limit']);
    }
    return { action, name: values.name, scopes, expiresAt, rateLimitPerMinute, json };
  }
  if (action === 'list') {
    if (rest.length > 0) throw usage(`list takes no arguments, got ${rest.join(' ')}`);
    return { action, json };
  }
  if (action === 'revoke') {
    const [key, ...more] = rest;
    if (key === undefined || more.length > 0) throw usage('revoke takes one key id or prefix');
    return { action, key, json };
  }
  throw usage(`unknown action "${action}"`);
}

function status(key: ApiKeyInfo, now = new Date()): string {
  if (key.revokedAt !== undefined) return `revoked ${key.revokedAt.toISOString()}`;
  if (key.expiresAt !== undefined && key.expiresAt <= now) return `expired ${key.expiresAt.toISOString()}`;
  return key.expiresAt === undefined ? 'active' : `active until ${key.expiresAt.toISOString()}`;
}

export async function runKeysCommand(
  command: Exclude<KeysCommand, { action: 'help' }>,
  print: (line: string) => void,
  env = process.env,
): Promise<void> {
  // With --json, stdout carries only the answer; connection messages go to stderr either way.
  await withCliDatabase(
    async (db) => {
      const store = ApiKeyStore.of(db);
      if (command.action === 'create') {
        let created;
        try {
          created = await store.create(command);
        } catch (error) {
          // Unknown scopes included: what the operator typed is wrong, and the message says how.
          if (error instanceof RangeError) throw new CliError(error.message);
          throw error;
        }
        if (command.json) {
          print(JSON.stringify(created));
          return;
        }
        print(`created key ${created.id} "${created.name}" (prefix ${created.prefix}), ${status(created)}`);
        print(`scopes: ${created.scopes.join(' ')}`);
        print('');
        print(`  ${created.key}`);
        print('');
        print('This is the only time the key is shown: store it in a secret manager now.');
        print('Clients send it as: Authorization: Bearer <key>');
        return;
      }
      if (command.action === 'list') {
        const keys = await store.list();
        if (command.json) {
          print(JSON.stringify(keys));
          return;
        }
        if (keys.length === 0) {
          print('no API keys yet: create one with `npm run keys -- create --name NAME --scope SCOPE`');
          return;
        }
        for (const key of keys) {
          print(`${key.id}  ${key.prefix}  ${key.name}  [${status(key)}]  ${key.scopes.join(' ')}`);
        }
        return;
      }
      const revocation = await store.revoke(command.key);
      if (revocation === null) throw new CliError(`no API key with id or prefix "${command.key}"`);
      const revoked = revocation.key;
      if (command.json) {
        print(JSON.stringify(revoked));
        return;
      }
      print(
        `revoked key ${revoked.id} "${revoked.name}" (prefix ${revoked.prefix}) at ` +
          (revoked.revokedAt?.toISOString() ?? 'an unknown time'),
      );
      print(
        'Every instance refuses it within about a second (they follow the keys with a change stream); ' +
          'within AUTH_CACHE_TTL_MS while an instance cannot follow them.',
      );
    },
    { env },
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    const command = parseKeysArguments(process.argv.slice(2));
    if (command.action === 'help') console.log(USAGE);
    else await runKeysCommand(command, (line) => console.log(line));
  } catch (error) {
    exitWithFailure('keys', error);
  }
}
