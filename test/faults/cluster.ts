// Real mongods for the fault scenarios, and the faults themselves: a replica set of one or three
// members started through mongodb-memory-server with the binary the project resolves (the Wine
// fallback included), whose members can be stepped down, killed, frozen and restarted on their
// own data directory and port.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoMemoryReplSet, type MongoMemoryServer } from 'mongodb-memory-server';
import mongoose from 'mongoose';
import { resolveMongodBinary } from '../../src/mongod/binary.ts';
import { getPort } from '../helpers/net.ts';

const { MongoClient } = mongoose.mongo;
type MongoClient = InstanceType<typeof MongoClient>;

const HOST = '127.0.0.1';
// The smallest cache mongod accepts: three members share two cores and the service.
const CACHE_SIZE_GB = '0.25';
// Cold starts under Wine on a busy machine take several seconds.
const LAUNCH_TIMEOUT_MS = 60_000;
// Elections in 1-3 s instead of 10 s; not lower, or a loaded two-core machine elects by mistake.
const ELECTION_SETTINGS = {
  electionTimeoutMillis: 2000,
  heartbeatIntervalMillis: 500,
  heartbeatTimeoutSecs: 3,
  catchUpTimeoutMillis: 2000,
};
const PROBE_TIMEOUT_MS = 1000;

export type MemberState = 'PRIMARY' | 'SECONDARY' | 'DOWN' | 'OTHER';

export interface Member {
  readonly index: number;
  readonly port: number;
  readonly dbPath: string;
  readonly server: MongoMemoryServer;
}

// A restarted member must come back on its own port: the replica set config records host:port,
// and mongodb-memory-server would otherwise move a port it believes taken.
class FixedPortReplSet extends MongoMemoryReplSet {
  protected override getInstanceOpts(...args: Parameters<MongoMemoryReplSet['getInstanceOpts']>) {
    return { ...super.getInstanceOpts(...args), portGeneration: false };
  }
}

export class FaultCluster {
  private readonly probes = new Map<number, MongoClient>();
  /** Frozen members, each with the watchdog that thaws it should this process die first. */
  private readonly frozen = new Map<number, ChildProcess>();
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly replSet: FixedPortReplSet,
    readonly members: readonly Member[],
    private readonly dirs: readonly string[],
  ) {}

  static async start(count: 1 | 3, log: (message: string) => void = () => undefined): Promise<FaultCluster> {
    const binary = await resolveMongodBinary({ log });
    const ports: number[] = [];
    const dirs: string[] = [];
    for (let i = 0; i < count; i++) {
      ports.push(await getPort());
      dirs.push(await mkdtemp(join(tmpdir(), 'storekeeper-faults-')));
    }
    const replSet = new FixedPortReplSet({
      binary: { version: binary.version, systemBinary: binary.systemBinary },
      instanceOpts: ports.map((port, i) => ({ port, dbPath: dirs[i], launchTimeout: LAUNCH_TIMEOUT_MS })),
      replSet: {
        count,
        name: 'faults',
        ip: HOST,
        storageEngine: 'wiredTiger',
        // The Wine wrapper adds --setParameter diagnosticDataCollectionEnabled=false itself.
        args: ['--wiredTigerCacheSizeGB', CACHE_SIZE_GB],
        configSettings: ELECTION_SETTINGS,
      },
    });
    try {
      await replSet.start();
    } catch (error) {
      await replSet.stop({ doCleanup: false }).catch(() => undefined);
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
      throw error;
    }
    const members = replSet.servers.map((server, index) => ({
      index,
      port: ports[index]!,
      dbPath: dirs[index]!,
      server,
    }));
    return new FaultCluster(replSet, members, dirs);
  }

  get uri(): string {
    return `mongodb://${this.members.map((m) => `${HOST}:${m.port}`).join(',')}/?replicaSet=faults`;
  }

  /** The pid that runs mongod: under Wine the wrapper execs wine64, which keeps the pid. */
  pid(member: Member): number {
    const pid = member.server.instanceInfo?.instance.mongodProcess?.pid;
    if (pid === undefined) throw new Error(`member ${member.index} has no mongod process`);
    return pid;
  }

  /** What the member says it is; DOWN when it does not answer within a second. */
  async state(member: Member): Promise<MemberState> {
    try {
      // The driver's timeoutMS on a command is deprecated and bounds nothing: race it instead.
      const hello = await withTimeout(
        this.probe(member).db('admin').command({ hello: 1 }),
        PROBE_TIMEOUT_MS,
        `hello from member ${member.index}`,
      );
      if (hello.isWritablePrimary === true) return 'PRIMARY';
      if (hello.secondary === true) return 'SECONDARY';
      return 'OTHER';
    } catch {
      // A client first used while the member hung can stay stuck after it recovers: start afresh.
      const stale = this.probes.get(member.index);
      this.probes.delete(member.index);
      await stale?.close(true).catch(() => undefined);
      return 'DOWN';
    }
  }

  async waitForState(member: Member, wanted: MemberState, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.state(member)) !== wanted) {
      if (Date.now() > deadline)
        throw new Error(`member ${member.index} did not become ${wanted} within ${timeoutMs} ms`);
      await sleep(250);
    }
  }

  async primary(timeoutMs = 30_000): Promise<Member> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const member of this.members) if ((await this.state(member)) === 'PRIMARY') return member;
      if (Date.now() > deadline) throw new Error(`no primary within ${timeoutMs} ms`);
      await sleep(250);
    }
  }

  /** replSetStepDown on the primary: it steps down once a secondary has caught up. */
  async stepDown(member: Member): Promise<void> {
    await withTimeout(
      this.probe(member).db('admin').command({ replSetStepDown: 30, secondaryCatchUpPeriodSecs: 10 }),
      30_000,
      `member ${member.index} to step down`,
    );
  }

  /** SIGKILL: no shutdown, no flush; the journal is all the restart has. */
  async kill(member: Member): Promise<void> {
    const child = member.server.instanceInfo?.instance.mongodProcess;
    if (child === undefined) throw new Error(`member ${member.index} is not running`);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await withTimeout(exited, 10_000, `member ${member.index} to exit after SIGKILL`);
  }

  /**
   * SIGSTOP, then a proof that it took: a ping that gets no answer. A stopped process keeps its
   * sockets, so clients connect and then wait, which is what a hung server looks like.
   * mongodb-memory-server's watchdog ends a mongod whose parent died with SIGTERM, which a stopped
   * process never acts on; so a detached watchdog of its own sends SIGCONT after `atMostMs`.
   */
  async freeze(member: Member, atMostMs: number): Promise<void> {
    const pid = this.pid(member);
    const watchdog = spawn(
      process.execPath,
      ['-e', `setTimeout(() => { try { process.kill(${pid}, 'SIGCONT') } catch {} }, ${atMostMs})`],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    watchdog.unref();
    process.kill(pid, 'SIGSTOP');
    this.frozen.set(member.index, watchdog);
    const fresh = new MongoClient(`mongodb://${HOST}:${member.port}/?directConnection=true`, {
      serverSelectionTimeoutMS: 1500,
      connectTimeoutMS: 1500,
    });
    try {
      await withTimeout(fresh.db('admin').command({ ping: 1 }), 1500, `a ping of member ${member.index}`);
    } catch {
      return;
    } finally {
      await fresh.close(true).catch(() => undefined);
    }
    throw new Error(`member ${member.index} still answers a ping after SIGSTOP of pid ${pid}`);
  }

  thaw(member: Member): void {
    process.kill(this.pid(member), 'SIGCONT');
    this.frozen.get(member.index)?.kill();
    this.frozen.delete(member.index);
  }

  /** Starts a killed member again on its data directory and port; resolves when it listens. */
  async restart(member: Member): Promise<void> {
    // Forgets the dead process (and stops its watchdog) without touching the data directory.
    await member.server.stop({ doCleanup: false, force: false });
    await member.server.start(true);
  }

  /** Stops every mongod and removes the data; safe to call more than once and after failures. */
  stop(): Promise<void> {
    return (this.stopping ??= this.stopAll());
  }

  private async stopAll(): Promise<void> {
    // Frozen members are woken and their thaw watchdogs ended before the kill.
    for (const index of [...this.frozen.keys()]) {
      try {
        this.thaw(this.members[index]!);
      } catch {
        // Gone already: nothing left to wake.
      }
    }
    await Promise.all([...this.probes.values()].map((client) => client.close(true).catch(() => undefined)));
    this.probes.clear();
    try {
      // The data directories are removed next, so nothing is owed a clean shutdown. The graceful
      // path (a shutdown command, then SIGINT, each with its own wait) once outlasted the suite's
      // two-minute hook under Wine after a killed-and-restarted member; SIGKILL ends in a second.
      await Promise.all(this.members.map((member) => this.killIfRunning(member)));
      // Only forgets the dead processes and ends mongodb-memory-server's watchdogs.
      await withTimeout(this.replSet.stop({ doCleanup: false }), 30_000, 'the replica set to stop').catch(
        () => undefined,
      );
    } finally {
      await Promise.all(this.dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    }
  }

  private async killIfRunning(member: Member): Promise<void> {
    const child = member.server.instanceInfo?.instance.mongodProcess;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await this.kill(member).catch(() => undefined);
  }

  private probe(member: Member): MongoClient {
    let client = this.probes.get(member.index);
    if (client === undefined) {
      client = new MongoClient(`mongodb://${HOST}:${member.port}/?directConnection=true`, {
        serverSelectionTimeoutMS: PROBE_TIMEOUT_MS,
        connectTimeoutMS: PROBE_TIMEOUT_MS,
        heartbeatFrequencyMS: 500,
      });
      this.probes.set(member.index, client);
    }
    return client;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
