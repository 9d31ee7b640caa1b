// Starts a single-node replica set through mongodb-memory-server: the one code path behind `npm start`
// and the ops commands (data kept on disk, where the configuration says) and the tests (a temp dir
// removed on stop). A replica set, because transactions need one.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MongoInstance, MongoMemoryReplSet } from 'mongodb-memory-server';
import mongoose from 'mongoose';
import { resolveMongodBinary, type ResolveBinaryOptions, type ResolvedBinary } from './binary.ts';
import type { Config } from '../config.ts';
import { errorMessage } from '../errors.ts';

export interface EmbeddedMongoOptions {
  dataDir?: string; // persistent when set: data kept across restarts; else a temp dir removed on stop
  port?: number; // required for persistent data (the replica set config stores host:port); random when omitted
  replSetName?: string; // default REPLICA_SET_NAME
  cacheSizeGB?: number; // --wiredTigerCacheSizeGB, default 0.25
  binary?: ResolveBinaryOptions;
  log?: (message: string) => void;
  /**
   * Access control on: members authenticate to each other with a keyfile and clients must log in.
   * This user (role `root`, in `admin`) is created at start; `uri` carries no credentials. Temp dirs
   * only: a restart of a persistent dir would meet its own users and the localhost exception gone.
   */
  auth?: EmbeddedMongoRoot;
  /** More mongod options (the tests turn on MongoDB's fail points with `--setParameter enableTestCommands=1`). */
  extraArgs?: string[];
}

export interface EmbeddedMongoRoot {
  user: string;
  password: string;
}

export interface EmbeddedMongo {
  uri: string;
  source: ResolvedBinary['source'];
  dataDir: string;
  /** The mongod process's id (under Wine, that of the Wine process running mongod.exe). */
  pid: number | undefined;
  /** Shuts mongod down and waits for it to exit; quiet when mongod has stopped or is stopping already. */
  stop(): Promise<void>;
}

/** Where the embedded mongod listens: this machine only. */
export const EMBEDDED_HOST = '127.0.0.1';
/** The replica set name of the service's embedded database, which its stored configuration records. */
export const REPLICA_SET_NAME = 'storekeeper';
// mongodb-memory-server's 10 s default is tight for a cold start of mongod under Wine.
const LAUNCH_TIMEOUT_MS = 30_000;
// mongod answers at once when it is up; longer means it is going down or stuck, and then waiting
// for it to exit is all that is left to do.
const SHUTDOWN_CONNECT_TIMEOUT_MS = 2_000;
// Under Wine a shutdown takes about a second; a stuck mongod gets SIGTERM, then SIGKILL.
const EXIT_WAIT_MS = 15_000;
const EXIT_WAIT_AFTER_SIGNAL_MS = 10_000;

checkMongodOutputLineByLine();

// mongodb-memory-server quietly moves to another port when the requested one looks taken, and its
// per-process port cache counts a port as taken for 10 s after handing it out, so even a restart in
// the same process moves. A persistent replica set records host:port in its config and cannot follow
// (the restarted node finds itself missing from the config); a busy port must be an error instead.
class FixedPortReplSet extends MongoMemoryReplSet {
  protected override getInstanceOpts(...args: Parameters<MongoMemoryReplSet['getInstanceOpts']>) {
    return { ...super.getInstanceOpts(...args), portGeneration: false };
  }

  /**
   * The temp dir mongodb-memory-server wrote the keyfile to (auth only); it removes it only on a
   * cleanup we never ask for.
   */
  get keyfileDir(): string | undefined {
    return this._keyfiletmp;
  }

  get mongodProcess(): ChildProcess | undefined {
    return this.servers[0]?.instanceInfo?.instance.mongodProcess;
  }
}

/** Where the service's own embedded database keeps its data: DATA_DIR/mongodb. */
export function serviceDataDir(settings: Config['embedded']): string {
  return join(settings.dataDir, 'mongodb');
}

/**
 * The service's own embedded database, where the configuration puts it (serviceDataDir, on
 * EMBEDDED_MONGODB_PORT): `npm start` and an ops command that finds it not running start it alike.
 */
export function startServiceMongo(
  settings: Config['embedded'],
  log: (message: string) => void,
): Promise<EmbeddedMongo> {
  return startEmbeddedMongo({
    dataDir: serviceDataDir(settings),
    port: settings.port,
    cacheSizeGB: settings.cacheSizeGB,
    binary: { systemBinary: settings.binary, log },
    log,
  });
}

export async function startEmbeddedMongo(options: EmbeddedMongoOptions = {}): Promise<EmbeddedMongo> {
  const { port, replSetName = REPLICA_SET_NAME, cacheSizeGB = 0.25 } = options;
  const persistent = options.dataDir !== undefined;
  if (persistent && port === undefined) {
    throw new Error('a persistent dataDir needs a fixed port: the replica set config stored in it records host:port');
  }
  if (persistent && options.auth !== undefined) {
    throw new Error(
      'access control needs a temp dir: on a restart of a persistent dataDir the root user exists already, ' +
        'and without the localhost exception the set cannot be set up again',
    );
  }

  if (port !== undefined) await assertPortFree(port);

  const binary = await resolveMongodBinary({ log: options.log, ...options.binary });
  const dataDir =
    options.dataDir !== undefined
      ? await ensureDir(options.dataDir)
      : await mkdtemp(join(tmpdir(), 'storekeeper-mongod-'));

  const replSet = new FixedPortReplSet({
    binary: { version: binary.version, systemBinary: binary.systemBinary },
    instanceOpts: [{ dbPath: dataDir, port, launchTimeout: LAUNCH_TIMEOUT_MS }],
    replSet: {
      count: 1,
      name: replSetName,
      ip: EMBEDDED_HOST,
      storageEngine: 'wiredTiger',
      // Without a cap each mongod sizes its cache for the whole machine.
      args: ['--wiredTigerCacheSizeGB', String(cacheSizeGB), ...(options.extraArgs ?? [])],
      ...(options.auth !== undefined && { auth: accessControl(options.auth) }),
      // A process group of its own: a terminal's Ctrl-C signals the whole foreground group, and
      // mongod would shut itself down while the service still finishes its requests on it. The
      // service's stop shuts it down afterwards, and mongodb-memory-server's killer process (in a
      // group of its own too) still stops it if the service dies. Not on Windows, where a detached
      // process gets a console window of its own.
      spawn: { detached: process.platform !== 'win32' },
    },
  });

  try {
    // On a restart of a persistent dir mongodb-memory-server meets "already initialized" and
    // re-applies the stored config, which is why the port has to stay the same.
    await withEnvironment(environmentForStart(binary), () => replSet.start());
  } catch (err) {
    if (!persistent) await rm(dataDir, { recursive: true, force: true });
    await removeKeyfile(replSet);
    throw explainStartFailure(err, dataDir, port);
  }

  const mongod = replSet.mongodProcess;
  const shutdown = { port: replSet.servers[0]?.instanceInfo?.port, auth: options.auth, log: options.log ?? (() => {}) };
  let stopping: Promise<void> | undefined;
  return {
    uri: replSet.getUri(),
    source: binary.source,
    dataDir,
    pid: mongod?.pid,
    stop: () => (stopping ??= stopReplSet(replSet, mongod, shutdown, dataDir, persistent)),
  };
}

// mongodb-memory-server creates the root user through the localhost exception once the set is
// initiated. The keyfile is random per start: its default content is a well-known constant.
function accessControl(root: EmbeddedMongoRoot) {
  return {
    enable: true,
    customRootName: root.user,
    customRootPwd: root.password,
    keyfileContent: randomBytes(48).toString('base64'),
  };
}

async function removeKeyfile(replSet: FixedPortReplSet): Promise<void> {
  if (replSet.keyfileDir !== undefined) await rm(replSet.keyfileDir, { recursive: true, force: true });
}

// mongodb-memory-server reads two settings from the environment ahead of its options:
// MONGOMS_SYSTEM_BINARY would beat the binary resolved here (whose explicit option is meant to win),
// and the version check runs `mongod --version` before every start of a system binary, which under
// Wine is a whole extra Wine start-up (about 2.5 s of a 5.5 s start here) for a version that
// provisioning already checked. So both are set for the duration of the start.
function environmentForStart(binary: ResolvedBinary): Record<string, string> {
  const env: Record<string, string> = {};
  if (binary.systemBinary !== undefined && process.env.MONGOMS_SYSTEM_BINARY !== undefined) {
    env.MONGOMS_SYSTEM_BINARY = binary.systemBinary;
  }
  if (binary.source === 'wine' && process.env.MONGOMS_SYSTEM_BINARY_VERSION_CHECK === undefined) {
    env.MONGOMS_SYSTEM_BINARY_VERSION_CHECK = 'false';
  }
  return env;
}

async function withEnvironment<T>(env: Record<string, string>, work: () => Promise<T>): Promise<T> {
  const previous = Object.keys(env).map((name) => [name, process.env[name]] as const);
  Object.assign(process.env, env);
  try {
    return await work();
  } finally {
    for (const [name, value] of previous) {
      if (value === undefined) Reflect.deleteProperty(process.env, name);
      else process.env[name] = value;
    }
  }
}

// Checked up front because mongod's own report differs by platform: under Wine a taken port
// fails with "Access denied" and exit code 48, which mongodb-memory-server does not recognise.
async function assertPortFree(port: number): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolvePromise, reject) =>
      probe.once('error', reject).listen(port, EMBEDDED_HOST, resolvePromise),
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new Error(`port ${port} on ${EMBEDDED_HOST} is already in use, so mongod cannot listen on it`);
    throw new Error(`cannot listen on ${EMBEDDED_HOST}:${port}: ${code ?? String(err)}`);
  }
  await new Promise<void>((resolvePromise) => probe.close(() => resolvePromise()));
}

async function ensureDir(dir: string): Promise<string> {
  const absolute = resolve(dir);
  await mkdir(absolute, { recursive: true });
  return absolute;
}

interface ShutdownTarget {
  port: number | undefined;
  auth: EmbeddedMongoRoot | undefined;
  log: (message: string) => void;
}

async function stopReplSet(
  replSet: FixedPortReplSet,
  mongod: ChildProcess | undefined,
  target: ShutdownTarget,
  dataDir: string,
  persistent: boolean,
): Promise<void> {
  if (mongod !== undefined && target.port !== undefined) await shutDownMongod(mongod, target.port, target);
  // doCleanup false: mongodb-memory-server must never delete a dbPath it was given; the temp dir is ours to remove.
  const stopped = await replSet.stop({ doCleanup: false, force: false });
  if (!persistent) await rm(dataDir, { recursive: true, force: true });
  await removeKeyfile(replSet);
  if (!stopped) throw new Error(`mongod on ${dataDir} did not stop cleanly`);
}

// mongodb-memory-server's own stop asks mongod to shut down over a new connection and, when that
// fails, writes the driver's error with its whole stack to stderr (console.warn). It fails whenever
// mongod is on its way down already: signalled along with the service by a process manager, or by
// hand. So mongod is shut down here first, quietly, and mongodb-memory-server's stop then finds it
// gone and only ends its killer process.
async function shutDownMongod(mongod: ChildProcess, port: number, { auth, log }: ShutdownTarget): Promise<void> {
  const exit = new Promise<void>((resolvePromise) => mongod.once('exit', () => resolvePromise()));
  if (hasExited(mongod)) {
    log(`mongod had already exited (${exitDescription(mongod)})`);
    return;
  }

  const client = new mongoose.mongo.MongoClient(`mongodb://${EMBEDDED_HOST}:${port}/admin`, {
    directConnection: true,
    serverSelectionTimeoutMS: SHUTDOWN_CONNECT_TIMEOUT_MS,
    ...(auth !== undefined && { auth: { username: auth.user, password: auth.password }, authSource: 'admin' }),
  });
  // force: a primary with no secondary to hand over to; timeoutSecs: by default the stop takes 10 s or more.
  const command = client
    .connect()
    .then(() => client.db('admin').command({ shutdown: 1, force: true, timeoutSecs: 1 }))
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  const failure = await Promise.race([command, exit.then(() => undefined)]);
  await client.close().catch(() => {});
  // mongod closing the connection under the command is how a shutdown normally answers.
  if (failure !== undefined && !(failure instanceof mongoose.mongo.MongoNetworkError) && !hasExited(mongod)) {
    log(`mongod did not take the shutdown command (${oneLine(errorMessage(failure))}); waiting for it to exit`);
  }

  if (await exitWithin(exit, EXIT_WAIT_MS)) return;
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    log(`mongod is still running after its shutdown: sending ${signal}`);
    mongod.kill(signal);
    if (await exitWithin(exit, EXIT_WAIT_AFTER_SIGNAL_MS)) return;
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function exitDescription(child: ChildProcess): string {
  return child.signalCode !== null ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`;
}

async function exitWithin(exit: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolvePromise) => (timer = setTimeout(() => resolvePromise(false), ms)));
  try {
    return await Promise.race([exit.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// mongodb-memory-server 11.3 hands checkErrorInLine a whole stdout chunk and JSON.parses it when it
// mentions "DBException in initAndListen". mongod prints that line together with others when its
// dbpath is locked by another mongod, so the parse throws inside a stream handler and takes this
// whole process down instead of failing the start. One line at a time, its checks work as meant.
function checkMongodOutputLineByLine(): void {
  const patched = Symbol.for('storekeeper.checkErrorInLine.lineByLine');
  const proto = MongoInstance.prototype as unknown as Record<symbol, boolean> & {
    checkErrorInLine: (this: unknown, line: string) => void;
  };
  if (proto[patched]) return;
  const checkOneLine = proto.checkErrorInLine;
  proto.checkErrorInLine = function (this: unknown, text: string) {
    for (const line of text.split('\n')) {
      if (line.trim() !== '') checkOneLine.call(this, line.trim());
    }
  };
  proto[patched] = true;
}

function explainStartFailure(err: unknown, dataDir: string, port: number | undefined): Error {
  const message = errorMessage(err);
  if (/DBPathInUse|Unable to lock the lock file/i.test(message)) {
    return new Error(
      `another mongod is already running on the data dir ${dataDir}; stop it first (${oneLine(message)})`,
      { cause: err },
    );
  }
  if ((/already in use/i.test(message) || /code "48"/.test(message)) && port !== undefined) {
    // 48 is mongod's exit code for a listener it could not set up.
    return new Error(`mongod could not listen on port ${port}; is it taken? (${oneLine(message)})`, { cause: err });
  }
  return new Error(`starting mongod on ${dataDir} failed: ${oneLine(message)}`, { cause: err });
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
