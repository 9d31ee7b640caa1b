// Stopping the service the ways it gets stopped: Ctrl-C in its terminal (SIGINT to the whole
// process group), a process manager's SIGTERM to the PID it started (npm's or the service's), a
// second signal, npm killed outright. Each start is a real one, with its embedded mongod.

import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { FORWARDED_COPY_WINDOW_MS } from '../src/shutdown.ts';
import { waitFor, type LogLine } from './helpers/app.ts';
import { getPort } from './helpers/net.ts';
import { spawnNpmStart, spawnService, type ServiceProcess } from './helpers/process.ts';

interface Started {
  /** npm, or the service itself when started with node. */
  process: ServiceProcess;
  dataDir: string;
  port: number;
  mongodPort: number;
  servicePid?: number;
  mongodPid?: number;
  sockets: Socket[];
  /** How much output there was when the first signal was sent: the stop is judged by what follows. */
  outputAtSignal?: { lines: number; stdout: number };
}

const started: Started[] = [];

afterEach(async () => {
  for (const run of started.splice(0)) {
    for (const socket of run.sockets) socket.destroy();
    killIfOurs(run);
    await rm(run.dataDir, { recursive: true, force: true });
  }
});

// Each test starts mongod under Wine on two busy cores: seconds, and more when the machine is loaded.
describe('stopping the service with its embedded MongoDB', { timeout: 180_000 }, () => {
  it('npm start, Ctrl-C in its terminal: the service stops cleanly and npm exits 0', async () => {
    const run = await start('npm start');
    // The terminal's SIGINT reaches the service's group, not mongod: mongod waits for the service's stop.
    expect(processInfo(run.mongodPid!)?.pgid).not.toBe(run.process.child.pid);
    expect(processInfo(run.servicePid!)?.pgid).toBe(run.process.child.pid);

    send(run, 'the process group', 'SIGINT');

    expect(await run.process.exited).toBe(0);
    await expectStoppedCleanly(run, 'SIGINT');
  });

  it('npm start, SIGTERM to npm (a process manager stopping the PID it started): npm passes it on and exits 0 once the service has stopped', async () => {
    const run = await start('npm start');

    send(run, 'npm', 'SIGTERM');

    expect(await run.process.exited).toBe(0);
    await expectStoppedCleanly(run, 'SIGTERM');
  });

  it('npm start, SIGTERM to the service process alone: it stops cleanly and npm exits 0 with it', async () => {
    const run = await start('npm start');

    send(run, 'the service', 'SIGTERM');

    expect(await run.process.exited).toBe(0);
    await expectStoppedCleanly(run, 'SIGTERM');
  });

  it('node src/server.ts, Ctrl-C in its terminal: the service stops cleanly and exits 0', async () => {
    const run = await start('node');

    send(run, 'the process group', 'SIGINT');

    expect(await run.process.exited).toBe(0);
    await expectStoppedCleanly(run, 'SIGINT');
  });

  it('when mongod is signalled together with the service (a process manager stopping all its processes), the stop is still quiet and exits 0', async () => {
    const run = await start('node');

    send(run, 'mongod', 'SIGTERM');
    send(run, 'the service', 'SIGTERM');

    expect(await run.process.exited).toBe(0);
    await expectStoppedCleanly(run, 'SIGTERM');
  });

  it('npm start, a second Ctrl-C while a request holds up the graceful stop: the service exits at once with 1, and mongod still stops', async () => {
    const run = await start('npm start', { SHUTDOWN_GRACE_MS: '600000', REQUEST_TIMEOUT_MS: '600000' });
    await holdRequestOpen(run);

    send(run, 'the process group', 'SIGINT');
    await run.process.waitForLine((line) => line.msg === 'shutting down: finishing in-flight requests');
    // Sooner, a repeat counts as npm's copy of the first Ctrl-C (the service got it then already).
    await delay(FORWARDED_COPY_WINDOW_MS);
    send(run, 'the process group', 'SIGINT');

    expect(await run.process.exited).toBe(1);
    await expectStoppedAtOnce(run, 'SIGINT');
  });

  it('node src/server.ts, a second SIGTERM while a request holds up the graceful stop: the service exits at once with 1, and mongod still stops', async () => {
    const run = await start('node', { SHUTDOWN_GRACE_MS: '600000', REQUEST_TIMEOUT_MS: '600000' });
    await holdRequestOpen(run);

    send(run, 'the service', 'SIGTERM');
    await run.process.waitForLine((line) => line.msg === 'shutting down: finishing in-flight requests');
    send(run, 'the service', 'SIGTERM');

    expect(await run.process.exited).toBe(1);
    await expectStoppedAtOnce(run, 'SIGTERM');
  });

  it('npm start, npm killed outright: the service notices its parent is gone and stops cleanly', async () => {
    const run = await start('npm start');

    send(run, 'npm', 'SIGKILL');

    expect(await run.process.exited).toBe(null);
    // The service keeps the output pipes npm handed down; they close when the service has exited.
    await run.process.closed;
    await waitFor(() => !isAlive(run.servicePid!), 60_000, 'the service process to be gone');
    expect(run.process.lines.map((line) => line.msg)).toContain('the process that started the service is gone');
    await expectStoppedCleanly(run, undefined);
  });
});

async function start(how: 'npm start' | 'node', extraEnv: Record<string, string> = {}): Promise<Started> {
  const dataDir = await mkdtemp(join(tmpdir(), 'storekeeper-stop-'));
  const port = await getPort();
  const mongodPort = await getPort();
  const env = { PORT: String(port), DATA_DIR: dataDir, EMBEDDED_MONGODB_PORT: String(mongodPort), ...extraEnv };
  const spawned =
    how === 'npm start'
      ? spawnNpmStart(env, { detached: true })
      : spawnService('src/server.ts', env, { detached: true });
  const run: Started = { process: spawned, dataDir, port, mongodPort, sockets: [] };
  started.push(run);

  const embedded = await spawned.waitForLine(
    (line) => line.msg === 'embedded MongoDB is running; its data stays in dataDir',
  );
  run.servicePid = embedded.pid as number;
  run.mongodPid = embedded.mongodPid as number;
  expect(run.servicePid).toBeTypeOf('number');
  expect(run.mongodPid).toBeTypeOf('number');
  await spawned.waitForLine((line) => typeof line.msg === 'string' && line.msg.startsWith('Server listening'));
  // Up and connected: a mongod stopped while the first connection is still being made is
  // another story (a connection error, logged as such).
  await spawned.waitForLine((line) => line.msg === 'MongoDB connected');
  return run;
}

type Target = 'the process group' | 'npm' | 'the service' | 'mongod';

function send(run: Started, target: Target, signal: NodeJS.Signals): void {
  run.outputAtSignal ??= { lines: run.process.lines.length, stdout: run.process.stdout.join('').length };
  const pid = {
    // What a terminal's Ctrl-C does: the group is npm's, or the service's when started with node.
    'the process group': -run.process.child.pid!,
    npm: run.process.child.pid!,
    'the service': run.servicePid!,
    mongod: run.mongodPid!,
  }[target];
  process.kill(pid, signal);
}

// A request whose headers are only half sent is in flight: the server's close waits for it, so
// the graceful stop cannot finish before the second signal arrives.
async function holdRequestOpen(run: Started): Promise<void> {
  const socket = connect(run.port, '127.0.0.1');
  run.sockets.push(socket);
  socket.on('error', () => {}); // reset when the process exits
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  await new Promise<void>((resolve) =>
    socket.write('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n', () => resolve()),
  );
}

async function expectStoppedCleanly(run: Started, signal: NodeJS.Signals | undefined): Promise<void> {
  await run.process.closed;
  const messages = run.process.lines.map((line) => line.msg);
  const shuttingDown = run.process.lines.find((line) => line.msg === 'shutting down: finishing in-flight requests');
  expect(shuttingDown, messages.join('\n')).toBeDefined();
  if (signal !== undefined) expect(shuttingDown?.signal).toBe(signal);
  expect(messages).toContain('shutdown complete');
  expect(messages.indexOf('shutdown complete')).toBeGreaterThan(
    messages.indexOf('shutting down: finishing in-flight requests'),
  );
  expect(messages.some((message) => typeof message === 'string' && message.startsWith('second '))).toBe(false);
  expectNoStackTrace(run);
  // The stop waits for mongod's exit, so it is gone by the time the service is.
  expect(isAlive(run.servicePid!)).toBe(false);
  expect(isAlive(run.mongodPid!)).toBe(false);
  expect(await acceptsConnections(run.port)).toBe(false);
  await expectPortReleased(run.mongodPort);
}

async function expectStoppedAtOnce(run: Started, signal: NodeJS.Signals): Promise<void> {
  await run.process.closed;
  const messages = run.process.lines.map((line) => line.msg);
  expect(messages).toContain(`second ${signal}: exiting now, without waiting for in-flight requests`);
  expect(messages).not.toContain('shutdown complete');
  expectNoStackTrace(run);
  expect(isAlive(run.servicePid!)).toBe(false);
  expect(await acceptsConnections(run.port)).toBe(false);
  // mongodb-memory-server's killer process checks every 2 s whether the service is alive.
  await waitFor(() => !isAlive(run.mongodPid!), 60_000, 'the killer process to stop mongod');
  await expectPortReleased(run.mongodPort);
}

// Under Wine, wineserver holds mongod's listening socket and lets it go some 50 ms after
// mongod's process has exited.
async function expectPortReleased(port: number): Promise<void> {
  await waitFor(async () => !(await acceptsConnections(port)), 60_000, `port ${port} to be released`);
}

// Judged from the first signal on: under load the service's first connection to a mongod that
// is still starting can time out and be logged with its error, which is not the stop's doing.
function expectNoStackTrace(run: Started): void {
  const { lines, stdout } = run.outputAtSignal!;
  expect(run.process.stderr.join('')).toBe('');
  // A stack frame, printed as is or inside a JSON log line.
  expect(run.process.stdout.join('').slice(stdout)).not.toMatch(/(^|\\n|\n)\s+at \S/);
  const errors = run.process.lines.slice(lines).filter((line: LogLine) => line.level >= 50);
  expect(errors).toEqual([]);
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface ProcessInfo {
  pgid: number;
  state: string;
  args: string;
}

function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const out = execFileSync('ps', ['-o', 'pgid=,stat=,args=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    const [, pgid, state, args] = /^(\d+)\s+(\S+)\s+(.*)$/.exec(out) ?? [];
    return pgid === undefined ? undefined : { pgid: Number(pgid), state: state!, args: args! };
  } catch {
    return undefined; // ps exits 1 when there is no such process
  }
}

// A zombie has exited; it only waits for a parent (init, for orphans) to collect its status.
function isAlive(pid: number): boolean {
  const info = processInfo(pid);
  return info !== undefined && !info.state.startsWith('Z');
}

// Kills only what this test started and is still running, checked by more than the pid, which
// the system hands out again once a process has exited.
function killIfOurs(run: Started): void {
  const { child } = run.process;
  if (child.exitCode === null && child.signalCode === null) kill(-child.pid!);
  const service = run.servicePid !== undefined ? processInfo(run.servicePid) : undefined;
  if (service !== undefined && service.pgid === child.pid && service.args.includes('src/server.ts'))
    kill(run.servicePid!);
  const mongod = run.mongodPid !== undefined ? processInfo(run.mongodPid) : undefined;
  if (mongod !== undefined && mongod.args.includes(`--port ${run.mongodPort}`)) kill(run.mongodPid!);
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone in the meantime
  }
}
