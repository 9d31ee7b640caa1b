// `node --import tsx src/cli/replica-set.ts [--json]` (`node dist/cli/replica-set.js` in the image):
// the replica set the service runs on, as an operator checks it during and after a failover: each
// member's state and health, how far each secondary is behind the primary, and which member is
// primary since when. It asks any member that answers (replSetGetStatus, role clusterMonitor), so
// it works while there is no primary, which is when it is needed most; exit 0 only when there is a
// primary and every member is healthy, so a script can wait for the set to be whole again.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import mongoose from 'mongoose';
import { redactSecrets } from '../logger.ts';
import { CliError, exitWithFailure, openCliDatabase } from './database-connection.ts';

const USAGE = `usage: node --import tsx src/cli/replica-set.ts [--json]   (the image: node dist/cli/replica-set.js)
  Each member of MONGODB_URI's replica set (or the embedded one's): its state, its health, how far
  it is behind the primary; and the primary, since when. Needs the clusterMonitor role.
  --json   the same as one JSON object on stdout
Exit 0 when there is a primary and every member is healthy, 1 otherwise or when no member answers.`;

/** States of a member that is doing its job. */
const WHOLE = new Set(['PRIMARY', 'SECONDARY', 'ARBITER']);

interface MemberStatus {
  name: string;
  stateStr: string;
  health: number;
  optimeDate?: Date;
  electionDate?: Date;
  syncSourceHost?: string;
  lastHeartbeatMessage?: string;
}

export interface SetMember {
  name: string;
  state: string;
  healthy: boolean;
  /** Seconds its last applied write is behind the primary's; absent for the primary and when unknown. */
  behindSeconds?: number;
  syncingFrom?: string;
  /** What the last heartbeat said about a member that did not answer it as expected. */
  heartbeat?: string;
}

export interface SetStatus {
  set: string;
  term?: number;
  primary?: { name: string; since?: string };
  members: SetMember[];
  /** A primary, and every member healthy in a working state. */
  whole: boolean;
}

export function describeSet(status: { set: string; term?: number; members: MemberStatus[] }): SetStatus {
  const primary = status.members.find((member) => member.stateStr === 'PRIMARY');
  const members = status.members.map((member): SetMember => {
    const behind =
      member !== primary && primary?.optimeDate !== undefined && member.optimeDate !== undefined
        ? Math.max(0, (primary.optimeDate.getTime() - member.optimeDate.getTime()) / 1000)
        : undefined;
    return {
      name: member.name,
      state: member.stateStr,
      healthy: member.health === 1 && WHOLE.has(member.stateStr),
      ...(behind !== undefined && member.stateStr === 'SECONDARY' && { behindSeconds: behind }),
      ...(member.syncSourceHost !== undefined &&
        member.syncSourceHost !== '' && { syncingFrom: member.syncSourceHost }),
      ...(member.lastHeartbeatMessage !== undefined &&
        member.lastHeartbeatMessage !== '' && { heartbeat: member.lastHeartbeatMessage }),
    };
  });
  return {
    set: status.set,
    ...(status.term !== undefined && { term: status.term }),
    ...(primary !== undefined && {
      primary: { name: primary.name, ...(primary.electionDate && { since: primary.electionDate.toISOString() }) },
    }),
    members,
    whole: primary !== undefined && members.every((member) => member.healthy),
  };
}

export function statusText(status: SetStatus): string {
  const width = Math.max(...status.members.map((member) => member.name.length));
  const lines = [
    `replica set ${status.set}${status.term === undefined ? '' : `, term ${status.term}`}: ` +
      (status.primary === undefined
        ? 'NO PRIMARY (writes answer 503 until one is elected)'
        : `primary ${status.primary.name}${status.primary.since === undefined ? '' : ` since ${status.primary.since}`}`),
  ];
  for (const member of status.members) {
    const details = [
      member.healthy ? 'healthy' : 'NOT HEALTHY',
      ...(member.behindSeconds === undefined ? [] : [`${member.behindSeconds.toFixed(1)} s behind the primary`]),
      ...(member.syncingFrom === undefined ? [] : [`syncing from ${member.syncingFrom}`]),
      ...(member.heartbeat === undefined ? [] : [`last heartbeat: ${member.heartbeat}`]),
    ];
    lines.push(`  ${member.name.padEnd(width)}  ${member.state.padEnd(9)}  ${details.join(', ')}`);
  }
  lines.push(status.whole ? 'the set is whole' : 'the set is NOT whole');
  return `${lines.join('\n')}\n`;
}

async function main(args: string[]): Promise<boolean> {
  let json: boolean;
  try {
    const { values } = parseArgs({
      args,
      options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
    if (values.help === true) {
      console.log(USAGE);
      return true;
    }
    json = values.json;
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n${USAGE}`);
  }
  const database = await openCliDatabase({ log: (message) => process.stderr.write(`${message}\n`) });
  const { config } = database;
  // Any member will do: the ops commands' client reads the primary, and there may be none.
  const client = new mongoose.mongo.MongoClient(database.uri, {
    appName: 'storekeeper-cli',
    readPreference: 'nearest',
    ...(database.embedded ? { directConnection: false } : {}),
    serverSelectionTimeoutMS: config.mongo.serverSelectionTimeoutMS,
    connectTimeoutMS: config.mongo.connectTimeoutMS,
  });
  try {
    let answer: Record<string, unknown>;
    try {
      answer = await client.db('admin').command({ replSetGetStatus: 1 }, { readPreference: 'nearest' });
    } catch (error) {
      throw new CliError(`no member of ${redactSecrets(database.uri)} answered: ${(error as Error).message}`);
    }
    const status = describeSet(answer as unknown as Parameters<typeof describeSet>[0]);
    process.stdout.write(json ? `${JSON.stringify(status)}\n` : statusText(status));
    return status.whole;
  } finally {
    await client.close();
    await database.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (whole) => process.exit(whole ? 0 : 1),
    (error: unknown) => exitWithFailure('replica-set', error),
  );
}
