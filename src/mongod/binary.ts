// Decides which mongod binary mongodb-memory-server runs: an explicit one, MongoDB's own download (the normal
// path wherever MongoDB's CDN is reachable), or the offline fallback of MongoDB's Windows build under Wine.
import { access, constants, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { DryMongoBinary, MongoBinary } from 'mongodb-memory-server';
import { provisionWineMongod } from './wine-fallback.ts';
import { errorMessage } from '../errors.ts';

export const MONGOD_VERSION = '7.0.15';

export interface ResolveBinaryOptions {
  version?: string; // default MONGOD_VERSION
  systemBinary?: string; // explicit binary path; wins over everything
  cacheDir?: string; // default: $XDG_CACHE_HOME/storekeeper or ~/.cache/storekeeper
  allowSystemInstall?: boolean; // may it run apt-get install wine64 when root (default true)
  log?: (message: string) => void; // progress lines; default writes to stderr
}

export interface ResolvedBinary {
  version: string;
  systemBinary?: string;
  source: 'system' | 'download' | 'wine';
}

const DEFAULT_DOWNLOAD_HOST = 'https://fastdl.mongodb.org';
// Without the probe an unreachable CDN costs about 8 s per start here: mongodb-memory-server
// retries ENOTFOUND three times with 2 s and 4 s back-off.
const PROBE_TIMEOUT_MS = 5_000;
// Backstop only: mongodb-memory-server already aborts a download after 60 s without data.
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

export async function resolveMongodBinary(options: ResolveBinaryOptions = {}): Promise<ResolvedBinary> {
  const version = options.version ?? MONGOD_VERSION;
  const log = options.log ?? logToStderr;

  const explicit = explicitBinary(options);
  if (explicit !== undefined) {
    return { version, systemBinary: await checkExplicitBinary(explicit), source: 'system' };
  }

  let downloadError: unknown;
  try {
    return { version, systemBinary: await downloadedBinary(version, log), source: 'download' };
  } catch (err) {
    downloadError = err;
  }

  logOnce(
    log,
    `mongod ${version}: the download from MongoDB failed (${oneLine(downloadError)}); using the offline fallback ` +
      `(MongoDB's Windows build under Wine)`,
  );
  try {
    const wrapper = await provisionWineMongod({
      version,
      cacheDir: options.cacheDir ?? defaultCacheDir(),
      allowSystemInstall: options.allowSystemInstall ?? true,
      log,
    });
    return { version, systemBinary: wrapper, source: 'wine' };
  } catch (err) {
    throw new Error(noMongodMessage(version, downloadError, err));
  }
}

export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  // The XDG spec says to ignore a relative XDG_CACHE_HOME.
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.cache');
  return join(base, 'storekeeper');
}

// --- (a) an explicit binary ---

interface ExplicitBinary {
  path: string;
  setting: string;
}

function explicitBinary(options: ResolveBinaryOptions): ExplicitBinary | undefined {
  if (options.systemBinary) return { path: options.systemBinary, setting: 'systemBinary' };
  const fromEnv = process.env.MONGOMS_SYSTEM_BINARY;
  if (fromEnv) return { path: fromEnv, setting: 'MONGOMS_SYSTEM_BINARY' };
  return undefined;
}

async function checkExplicitBinary({ path, setting }: ExplicitBinary): Promise<string> {
  const absolute = resolve(path);
  const info = await stat(absolute).catch(() => undefined);
  if (info === undefined) throw new Error(`mongod binary "${absolute}" (from ${setting}) does not exist`);
  if (!info.isFile()) throw new Error(`mongod binary "${absolute}" (from ${setting}) is not a file`);
  try {
    await access(absolute, constants.X_OK);
  } catch {
    throw new Error(`mongod binary "${absolute}" (from ${setting}) is not executable`);
  }
  return absolute;
}

// --- (b) mongodb-memory-server's own cache or download ---

async function downloadedBinary(version: string, log: (message: string) => void): Promise<string> {
  const cached = await DryMongoBinary.locateBinary({ version });
  if (cached !== undefined) return cached;
  await assertDownloadHostReachable();
  logOnce(log, `downloading mongod ${version} from MongoDB (one time; cached by mongodb-memory-server)`);
  return withTimeout(
    MongoBinary.getPath({ version }),
    DOWNLOAD_TIMEOUT_MS,
    `downloading mongod ${version} from MongoDB`,
  );
}

// A quick look before handing over to mongodb-memory-server, whose retries make an unreachable
// host slow to fail. Any HTTP answer counts as reachable; the downloader judges the rest.
async function assertDownloadHostReachable(): Promise<void> {
  if (proxyConfigured()) return; // the downloader goes through the proxy, a direct probe would prove nothing
  const url = new URL(process.env.MONGOMS_DOWNLOAD_URL || process.env.MONGOMS_DOWNLOAD_MIRROR || DEFAULT_DOWNLOAD_HOST);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  await new Promise<void>((resolvePromise, reject) => {
    const req = send(
      url,
      { method: 'HEAD', rejectUnauthorized: process.env.npm_config_strict_ssl === 'true' },
      (res) => {
        clearTimeout(timer);
        res.resume();
        resolvePromise();
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)),
      PROBE_TIMEOUT_MS,
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${url.host} is unreachable: ${err.message}`));
    });
    req.end();
  });
}

function proxyConfigured(): boolean {
  // The variables mongodb-memory-server's downloader reads.
  const names = ['yarn_https-proxy', 'yarn_proxy', 'npm_config_https-proxy', 'npm_config_proxy'];
  return [...names, 'https_proxy', 'http_proxy', 'HTTPS_PROXY', 'HTTP_PROXY'].some((name) =>
    Boolean(process.env[name]),
  );
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// --- messages ---

function noMongodMessage(version: string, downloadError: unknown, fallbackError: unknown): string {
  return [
    `Could not get mongod ${version}.`,
    `The download from MongoDB failed: ${oneLine(downloadError)}`,
    `The offline fallback (MongoDB's Windows build under Wine) failed: ${errorMessage(fallbackError)}`,
    'Ways out:',
    '  - install wine64: apt-get install --no-install-recommends wine64 (then run npm run mongod:provision)',
    '  - or set MONGOMS_SYSTEM_BINARY to a mongod binary',
    '  - or set MONGODB_URI to a running replica set',
  ].join('\n');
}

// The fallback note is the same for every start in a process; saying it once is enough.
const alreadyLogged = new Set<string>();
function logOnce(log: (message: string) => void, message: string): void {
  if (alreadyLogged.has(message)) return;
  alreadyLogged.add(message);
  log(message);
}

function logToStderr(message: string): void {
  process.stderr.write(`[mongod] ${message}\n`);
}

function oneLine(err: unknown): string {
  return errorMessage(err).replace(/\s*\n\s*/g, ' ');
}
