// The HTTP benchmark's knobs: command-line flags, with BENCH_* environment variables as their
// defaults, and --quick for a smoke run of every step in about two minutes.

import { parseArgs } from 'node:util';
import type { ServerName } from './processes.ts';

export const SCENARIOS = [
  'read',
  'list',
  'page-1',
  'page-1000',
  'create',
  'patch',
  'order',
  'ingest',
  'hot-read',
  'cold-read',
  'monitoring',
  'feed',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const SERVERS: readonly ServerName[] = ['service', 'service-nocache', 'service-unmonitored', 'floor', 'express'];

export interface BenchOptions {
  quick: boolean;
  rounds: number;
  /** Seconds of each measured round. */
  duration: number;
  /** Seconds of unmeasured load before a scenario's rounds, per server. */
  warmup: number;
  connections: number;
  orderConnections: number;
  scenarios: ScenarioName[];
  servers: ServerName[];
  products: number;
  customers: number;
  stockedProducts: number;
  /** The page of the cursor walk that is compared with the first, and the walk's page size. */
  pages: number;
  pageSize: number;
  /** Documents each server ingests, over `ingestRounds` rounds of equal size. */
  ingestDocuments: number;
  ingestRounds: number;
  ingestConnections: number;
  /** Server-sent-event clients of the feed scenario, and the merge patches per second written meanwhile. */
  feedClients: number;
  feedWritesPerSecond: number;
  mongodCacheGb: number;
  /** Extra environment of every server process (--env), and of the service's processes only (--service-env). */
  env: Record<string, string>;
  serviceEnv: Record<string, string>;
  /** Directory for CPU profiles of the servers (node --cpu-prof, one subdirectory each), when set. */
  cpuProfileDir?: string;
  build: boolean;
  /** Where results go; partial runs (--only, --servers, --quick) default away from bench/results. */
  outDir: string;
  partial: boolean;
}

const USAGE = `usage: npm run bench:http -- [options]
  --quick                  smoke run: small data, one short round of everything
  --rounds N               measured rounds per scenario and server (BENCH_ROUNDS, default 3)
  --duration S             seconds per round (BENCH_DURATION, default 5)
  --warmup S               unmeasured seconds per scenario and server first (BENCH_WARMUP, default 2)
  --connections N          concurrent clients (BENCH_CONNECTIONS, default 32); order placement: --order-connections (50)
  --only a,b               scenarios: ${SCENARIOS.join(', ')}
  --servers a,b            servers: ${SERVERS.join(', ')}
                           (service-nocache: the service with CACHE_MAX_MB=0, in hot-read and cold-read only;
                           service-unmonitored: MONGODB_COMMAND_MONITORING=false, in monitoring only)
  --products N --customers N --pages N --page-size N
  --ingest N               documents each server ingests (BENCH_INGEST, default 100000), in --ingest-rounds N (default 3)
  --feed-clients N         SSE clients of the feed scenario (BENCH_FEED_CLIENTS, default 1000), while
                           --feed-writes-per-second N (default 50) patches go through the service
  --env K=V                extra environment of every server, e.g. MONGODB_MAX_POOL_SIZE=10 (repeatable)
  --service-env K=V        extra environment of the service only, both processes of it (repeatable;
                           service-nocache keeps CACHE_MAX_MB=0)
  --cpu-prof DIR           write CPU profiles of the servers into DIR/<server>
  --no-build               reuse bench/.build from the previous run
  --out DIR                where results go (default bench/results; partial runs: bench/.results)`;

function list<T extends string>(raw: string | undefined, allowed: readonly T[], name: string): T[] | undefined {
  if (raw === undefined) return undefined;
  const values = raw
    .split(',')
    .map((value) => value.trim())
    .filter(Boolean);
  for (const value of values)
    if (!(allowed as readonly string[]).includes(value))
      throw new Error(`--${name}: unknown "${value}" (${allowed.join(', ')})`);
  return values as T[];
}

export function parseOptions(args: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      'order-connections': { type: 'string' },
      only: { type: 'string' },
      servers: { type: 'string' },
      products: { type: 'string' },
      customers: { type: 'string' },
      pages: { type: 'string' },
      'page-size': { type: 'string' },
      ingest: { type: 'string' },
      'ingest-rounds': { type: 'string' },
      'feed-clients': { type: 'string' },
      'feed-writes-per-second': { type: 'string' },
      env: { type: 'string', multiple: true },
      'service-env': { type: 'string', multiple: true },
      'cpu-prof': { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    return undefined;
  }
  const quick = values.quick;
  const number = (raw: string | undefined, fallback: number, name: string): number => {
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0)
      throw new Error(`--${name} must be a non-negative number, got "${raw}"\n${USAGE}`);
    return value;
  };
  const scenarios = list(values.only, SCENARIOS, 'only');
  const servers = list(values.servers, SERVERS, 'servers');
  const pairs = (raw: string[] | undefined, name: string): Record<string, string> => {
    const result: Record<string, string> = {};
    for (const pair of raw ?? []) {
      const at = pair.indexOf('=');
      if (at <= 0) throw new Error(`--${name} takes KEY=VALUE, got "${pair}"`);
      result[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return result;
  };
  const pages = number(values.pages, quick ? 100 : 1000, 'pages');
  const pageSize = number(values['page-size'], 50, 'page-size');
  const partial = quick || scenarios !== undefined || servers !== undefined;
  return {
    quick,
    rounds: number(values.rounds ?? env.BENCH_ROUNDS, quick ? 1 : 3, 'rounds'),
    duration: number(values.duration ?? env.BENCH_DURATION, quick ? 2 : 5, 'duration'),
    warmup: number(values.warmup ?? env.BENCH_WARMUP, quick ? 1 : 2, 'warmup'),
    connections: number(values.connections ?? env.BENCH_CONNECTIONS, 32, 'connections'),
    orderConnections: number(values['order-connections'], 50, 'order-connections'),
    scenarios: scenarios ?? [...SCENARIOS],
    // The floor always runs: every ratio is to it.
    servers:
      servers === undefined
        ? [...SERVERS]
        : [...new Set<ServerName>(['floor', ...servers])].sort((a, b) => SERVERS.indexOf(a) - SERVERS.indexOf(b)),
    // Enough products that the walk's last page is full, and a catalog of realistic size.
    products: number(values.products, Math.max(quick ? 6000 : 55_000, Math.ceil(pages * pageSize * 1.1)), 'products'),
    customers: number(values.customers, quick ? 500 : 2000, 'customers'),
    stockedProducts: quick ? 2000 : 10_000,
    pages,
    pageSize,
    ingestDocuments: number(values.ingest ?? env.BENCH_INGEST, quick ? 5000 : 100_000, 'ingest'),
    ingestRounds: number(values['ingest-rounds'], quick ? 1 : 3, 'ingest-rounds'),
    ingestConnections: 4,
    feedClients: number(values['feed-clients'] ?? env.BENCH_FEED_CLIENTS, quick ? 200 : 1000, 'feed-clients'),
    feedWritesPerSecond: number(values['feed-writes-per-second'], 50, 'feed-writes-per-second'),
    mongodCacheGb: 1,
    env: pairs(values.env, 'env'),
    serviceEnv: pairs(values['service-env'], 'service-env'),
    cpuProfileDir: values['cpu-prof'],
    build: !values['no-build'],
    outDir: values.out ?? (partial ? 'bench/.results' : 'bench/results'),
    partial,
  };
}
