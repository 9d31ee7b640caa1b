// The servers under test as processes of their own: a build of the service and of the comparison
// servers into bench/.build (compiled by tsc as `npm run build` compiles the service, but apart
// from dist/), then one process per server, started, waited for, and stopped. The service runs
// twice where its document cache is measured: as configured (`service`) and with CACHE_MAX_MB=0
// (`service-nocache`), the same build in a process of its own; and where command monitoring is
// measured, a third with MONGODB_COMMAND_MONITORING=false (`service-unmonitored`).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_DIR = join(BENCH_DIR, '..');
export const BUILD_DIR = join(BENCH_DIR, '.build');

export type ServerName = 'service' | 'service-nocache' | 'service-unmonitored' | 'floor' | 'express';

export const SERVER_SCRIPTS: Record<ServerName, string> = {
  service: join(BUILD_DIR, 'src/server.js'),
  'service-nocache': join(BUILD_DIR, 'src/server.js'),
  'service-unmonitored': join(BUILD_DIR, 'src/server.js'),
  floor: join(BUILD_DIR, 'bench/servers/floor.js'),
  express: join(BUILD_DIR, 'bench/servers/express-mongoose.js'),
};

export const SERVER_LABELS: Record<ServerName, string> = {
  service: 'storekeeper',
  'service-nocache': 'storekeeper, cache off',
  'service-unmonitored': 'storekeeper, command monitoring off',
  floor: 'floor (Fastify + driver)',
  express: 'Express + Mongoose',
};

/**
 * Compiles src/ and bench/servers/ into bench/.build. The build reads package.json and
 * migrations/ relative to itself, so both are linked in. Type errors elsewhere in a tree under
 * work do not stop it: tsc still emits, and the bench says how many there were.
 */
export async function build(log: (line: string) => void): Promise<void> {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  mkdirSync(BUILD_DIR, { recursive: true });
  const started = performance.now();
  const output = await run(process.execPath, [
    join(REPO_DIR, 'node_modules/typescript/bin/tsc'),
    '-p',
    join(BENCH_DIR, 'tsconfig.build.json'),
  ]);
  const errors = output.split('\n').filter((line) => /error TS\d+/.test(line));
  for (const script of Object.values(SERVER_SCRIPTS)) {
    if (!existsSync(script)) throw new Error(`the build did not produce ${script}:\n${output}`);
  }
  symlinkSync(join(REPO_DIR, 'package.json'), join(BUILD_DIR, 'package.json'));
  symlinkSync(join(REPO_DIR, 'migrations'), join(BUILD_DIR, 'migrations'));
  log(
    `built the service and the comparison servers in ${((performance.now() - started) / 1000).toFixed(1)} s${errors.length > 0 ? ` (tsc reported ${errors.length} type errors; first: ${errors[0]})` : ''}`,
  );
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', () => resolve(output));
  });
}

/** Runs a compiled command of the service (src/cli/*) and returns its stdout. */
export async function runCli(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BUILD_DIR, script), ...args], {
      cwd: REPO_DIR,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${script} exited ${code}: ${stderr.trim()}`)),
    );
  });
}

export interface RunningServer {
  name: ServerName;
  pid: number;
  url: string;
  /** Where its stderr goes (its stdout, the access log, goes to /dev/null). */
  logFile: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  name: ServerName;
  port: number;
  env: NodeJS.ProcessEnv;
  nodeArgs?: string[];
  /** Path answering 200 once the server can serve. */
  readyPath: string;
  /** Another build of the same server (A/B comparisons of a change); default: bench/.build's. */
  script?: string;
}

/**
 * Starts a server as `node <script>` (no npm in between: the pid measured is the server's). Its
 * stdout, where the service writes one JSON access line per request as in production, goes to
 * /dev/null: the lines are still built and written, but nothing downstream has to read them.
 */
export async function startServer(options: StartOptions): Promise<RunningServer> {
  const logFile = join(tmpdir(), `storekeeper-bench-${options.name}.log`);
  const stdout = openSync('/dev/null', 'w');
  const stderr = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.script ?? SERVER_SCRIPTS[options.name]], {
    cwd: REPO_DIR,
    env: { ...process.env, ...options.env, PORT: String(options.port), HOST: '127.0.0.1' },
    stdio: ['ignore', stdout, stderr],
  });
  closeSync(stdout);
  closeSync(stderr);
  const url = `http://127.0.0.1:${options.port}`;
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== undefined)
      throw new Error(
        `${options.name} exited with ${exited} while starting; see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-2000)}`,
      );
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${options.name} was not ready within 60 s; see ${logFile}`);
    }
    try {
      const response = await fetch(`${url}${options.readyPath}`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { name: options.name, pid: child.pid!, url, logFile, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}
