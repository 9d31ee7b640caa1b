// Runs the service as a separate process, the way ops run it, and watches its JSON log lines.

import {
  spawn,
  type ChildProcess,
  type ChildProcessByStdio,
  type SpawnOptionsWithStdioTuple,
} from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { LogLine } from './app.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServiceProcess {
  child: ChildProcess;
  lines: LogLine[];
  /** Everything written to stdout, as written: log lines and anything else (npm's banner). */
  stdout: string[];
  stderr: string[];
  /** Resolves with the first log line that matches, rejects if the process exits first. */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  exited: Promise<number | null>;
  /** Resolves once the process has exited and all its output has been read. */
  closed: Promise<void>;
}

export interface SpawnOptions {
  /**
   * A process group of its own, led by the spawned process, which a test can signal as a
   * terminal's Ctrl-C does: process.kill(-child.pid, 'SIGINT').
   */
  detached?: boolean;
}

export function spawnService(entry: string, env: Record<string, string>, options: SpawnOptions = {}): ServiceProcess {
  return watchService(spawn(process.execPath, ['--import', 'tsx', entry], spawnOptions(env, options)));
}

/** `npm start`, the way a user starts the service: `child` is npm, the service its child. */
export function spawnNpmStart(env: Record<string, string>, options: SpawnOptions = {}): ServiceProcess {
  return watchService(spawn('npm', ['start'], spawnOptions(env, options)));
}

function spawnOptions(
  env: Record<string, string>,
  { detached = false }: SpawnOptions,
): SpawnOptionsWithStdioTuple<'ignore', 'pipe', 'pipe'> {
  return {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  };
}

function watchService(child: ChildProcessByStdio<null, Readable, Readable>): ServiceProcess {
  const lines: LogLine[] = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout.push(chunk);
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const part of parts) {
      if (part.trim() === '') continue;
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        lines.push({ level: 30, msg: part });
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));

  const waitForLine = (match: (line: LogLine) => boolean, timeoutMs = 120_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (found) {
          cleanup();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr.join('')}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      void exited.then((code) => {
        cleanup();
        reject(new Error(`service exited with ${code} first; stderr: ${stderr.join('')}`));
      });
      waiters.add(check);
      check();
    });

  return { child, lines, stdout, stderr, waitForLine, exited, closed };
}
