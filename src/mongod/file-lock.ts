// A cross-process lock file, so that test workers or two CLIs provisioning mongod at once take turns instead of racing.
import { randomUUID } from 'node:crypto';
import { link, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FileLockOptions {
  log: (message: string) => void;
  // Provisioning may include a long apt-get install, so the holder keeps the lock fresh
  // with a heartbeat instead of the lock having to outlive the slowest possible step.
  staleAfterMs?: number;
  heartbeatMs?: number;
  waitTimeoutMs?: number;
  pollMs?: number;
}

interface LockHolder {
  pid?: number;
  host?: string;
  token?: string;
}

interface LockState {
  raw: string;
  holder: LockHolder;
  ageMs: number;
}

export async function withFileLock<T>(lockPath: string, options: FileLockOptions, work: () => Promise<T>): Promise<T> {
  const { staleAfterMs = 2 * 60_000, heartbeatMs = 15_000 } = options;
  const token = await acquire(lockPath, { ...options, staleAfterMs });
  const heartbeat = setInterval(() => void touch(lockPath), heartbeatMs);
  heartbeat.unref();
  try {
    return await work();
  } finally {
    clearInterval(heartbeat);
    await release(lockPath, token);
  }
}

async function acquire(lockPath: string, options: FileLockOptions & { staleAfterMs: number }): Promise<string> {
  const { log, staleAfterMs, waitTimeoutMs = 30 * 60_000, pollMs = 500 } = options;
  const token = randomUUID();
  const content = JSON.stringify({ pid: process.pid, host: hostname(), token } satisfies LockHolder);
  const deadline = Date.now() + waitTimeoutMs;
  let announced = false;

  for (;;) {
    if (await tryCreate(lockPath, content)) return token;

    const state = await readLockState(lockPath);
    if (state === undefined) continue; // released between our attempt and the read
    if (isStale(state, staleAfterMs)) {
      log(`removing a stale lock left by pid ${state.holder.pid ?? 'unknown'} (${lockPath})`);
      await breakLock(lockPath, state.raw);
      continue;
    }
    if (Date.now() > deadline) {
      const holder = state.holder.pid ?? 'unknown';
      throw new Error(
        `timed out after ${Math.round(waitTimeoutMs / 1000)} s waiting for the lock ${lockPath} held by pid ${holder}`,
      );
    }
    if (!announced) {
      log(`waiting for another process (pid ${state.holder.pid ?? 'unknown'}) that is provisioning mongod`);
      announced = true;
    }
    await sleep(pollMs);
  }
}

async function tryCreate(lockPath: string, content: string): Promise<boolean> {
  try {
    await writeFile(lockPath, content, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function readLockState(lockPath: string): Promise<LockState | undefined> {
  try {
    const [raw, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    return { raw, holder: parseHolder(raw), ageMs: Date.now() - info.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parseHolder(raw: string): LockHolder {
  try {
    return JSON.parse(raw) as LockHolder;
  } catch {
    // Caught between the holder's create and write; only the age can judge it.
    return {};
  }
}

function isStale(state: LockState, staleAfterMs: number): boolean {
  if (state.ageMs > staleAfterMs) return true;
  const { pid, host } = state.holder;
  return pid !== undefined && host === hostname() && !isProcessAlive(pid);
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// Two waiters can both judge the same lock stale; renaming it aside first and checking we
// moved the lock we judged keeps the second one from deleting the first one's fresh lock.
async function breakLock(lockPath: string, staleRaw: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${randomUUID()}`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => staleRaw);
  if (moved !== staleRaw) {
    await link(aside, lockPath).catch(() => undefined);
  }
  await rm(aside, { force: true });
}

async function touch(lockPath: string): Promise<void> {
  const now = new Date();
  await utimes(lockPath, now, now).catch(() => undefined);
}

async function release(lockPath: string, token: string): Promise<void> {
  const state = await readLockState(lockPath).catch(() => undefined);
  if (state?.holder.token === token) await rm(lockPath, { force: true });
}
