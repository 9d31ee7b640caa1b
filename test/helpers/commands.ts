// Runs ops commands as child processes, the way ops run them: with only the environment given
// (plus what finding node, npm and a mongod needs) and the exit code, stdout and stderr kept.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { ROOT } from './process.ts';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const MIGRATE_MONGO_BIN = resolve(ROOT, 'node_modules/migrate-mongo/bin/migrate-mongo.js');
const PASSED_THROUGH = ['PATH', 'HOME', 'XDG_CACHE_HOME', 'MONGOD_BINARY', 'MONGOMS_SYSTEM_BINARY'];

export function runCommand(file: string, args: string[], env: Record<string, string>): Promise<CommandResult> {
  const base = Object.fromEntries(
    PASSED_THROUGH.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])),
  );
  const child = spawn(file, args, {
    cwd: ROOT,
    env: { ...base, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** `npx migrate-mongo <args>` with the repository's configuration file. */
export function migrateMongo(args: string[], env: Record<string, string>): Promise<CommandResult> {
  return runCommand(process.execPath, [MIGRATE_MONGO_BIN, ...args, '-f', 'migrate-mongo-config.js'], env);
}

/** `npm run <script> -- <args>`. */
export function npmRun(script: string, args: string[], env: Record<string, string>): Promise<CommandResult> {
  return runCommand('npm', ['run', '--silent', script, ...(args.length > 0 ? ['--', ...args] : [])], env);
}

export function listens(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
  });
}
