// `npm run bench:http`: the service's HTTP performance next to a floor (Fastify + the raw driver,
// bench/servers/floor.ts) and the usual alternative (Express + Mongoose hydrated documents,
// bench/servers/express-mongoose.ts), all as processes of their own on one throwaway replica set
// and one seeded database. The document cache's scenarios (hot and cold reads by id) run on the
// service as configured, on a second process of it with CACHE_MAX_MB=0, and on the floor, with the
// cache's hits and misses read from the service's /metrics around each round. What command
// monitoring costs a list request is measured in this process (bench/http/monitoring-cost.ts), and
// shown beside a third process of the service with it off, loaded side by side with the others at
// one rate. autocannon drives every scenario from this process: a warm-up, then rounds interleaved
// across the servers (side by side where a scenario says so); medians are reported. The change feed, which only the service has, is measured last by clients of this
// process (bench/http/feed.ts). Writes bench/results/http.json, http.md and http.svg (the chart in
// the README).

import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import mongoose from 'mongoose';
import { variables } from '../src/config.ts';
import { Customer } from '../src/domain/entities/index.ts';
import { startEmbeddedMongo } from '../src/mongod/embedded.ts';
import { environmentOf } from './common.ts';
import { cacheCounters, cacheRound, describeCache, summarizeCache, type CacheRound } from './http/cache-stats.ts';
import { OPEN_BATCH, OPEN_EVERY_MS, feedServiceEnv, runFeedRound, type FeedSettings } from './http/feed.ts';
import { checkLedger, prepareDatabase, setAvailable, stockOf, waitUntilSettled, type Fixture } from './http/data.ts';
import { drive, measure, type Measurement } from './http/load.ts';
import { commandsSent, measureMonitoringCost } from './http/monitoring-cost.ts';
import { SERVERS, parseOptions, type BenchOptions } from './http/options.ts';
import { CLOCK_TICKS, peakRssMb, rssMb } from './http/proc-stats.ts';
import {
  REPO_DIR,
  SERVER_LABELS,
  build,
  runCli,
  startServer,
  type RunningServer,
  type ServerName,
} from './http/processes.ts';
import {
  describeFeed,
  judge,
  markdown,
  ratios,
  summarize,
  summarizeFeed,
  svgChart,
  type FeedResult,
  type ScenarioResult,
} from './http/report.ts';
import {
  BATCH,
  SCENARIO_LIST,
  coldReadAmounts,
  documentsPerRound,
  ingestBodies,
  type Scenario,
  type ScenarioContext,
} from './http/scenarios.ts';

const DB_NAME = 'bench';
/** Units of each hot SKU at the start of the sell-out check: far fewer than the orders want. */
const SELL_OUT_UNITS = 5;
const RESTOCK_UNITS = 1_000_000;

const log = (line: string) => console.error(`[bench] ${line}`);
const oneDecimal = (value: number) => value.toFixed(1);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The scenario's servers among those running, in the run's order. */
const serversOf = (scenario: Scenario, servers: readonly RunningServer[]) =>
  servers.filter((server) => scenario.servers.includes(server.name));

const scenarioNamed = (name: Scenario['name']) => SCENARIO_LIST.find((scenario) => scenario.name === name)!;

/** The servers of the run that the chosen scenarios run on, in the run's order. */
function serversToRun(options: BenchOptions): ServerName[] {
  const wanted = new Set(
    SCENARIO_LIST.filter((scenario) => options.scenarios.includes(scenario.name)).flatMap(
      (scenario) => scenario.servers,
    ),
  );
  if (options.scenarios.includes('feed')) wanted.add('service');
  return options.servers.filter((server) => wanted.has(server));
}

/**
 * Servers whose process lives only from the first scenario that runs on them to the last: the
 * cache-off service follows the change feed as the service does, and would otherwise follow the
 * writes of every other scenario on the same cores.
 */
const ONLY_AROUND_THEIR_SCENARIOS: ReadonlySet<ServerName> = new Set(['service-nocache', 'service-unmonitored']);

/**
 * The process of each server named: the service as production runs it (a second one with
 * CACHE_MAX_MB=0 for the cache's scenarios), the others plainly.
 */
async function startServers(
  options: BenchOptions,
  uri: string,
  names: readonly ServerName[],
): Promise<RunningServer[]> {
  const servers: RunningServer[] = [];
  for (const name of names) {
    // The service's pool defaults for every server, so that a change of them is measured alike.
    const common = {
      NODE_ENV: 'production',
      MONGODB_URI: uri,
      MONGODB_DB: DB_NAME,
      MONGODB_MAX_POOL_SIZE: variables.MONGODB_MAX_POOL_SIZE.default,
      MONGODB_MIN_POOL_SIZE: variables.MONGODB_MIN_POOL_SIZE.default,
      ...options.env,
    };
    const service = name === 'service' || name === 'service-nocache' || name === 'service-unmonitored';
    const env = service
      ? {
          ...common,
          RATE_LIMIT_PER_MINUTE: '0',
          LOG_FORMAT: 'json',
          ...(name === 'service' && options.scenarios.includes('feed') && feedServiceEnv(options.feedClients)),
          ...options.serviceEnv,
          ...(name === 'service-nocache' && { CACHE_MAX_MB: '0' }),
          ...(name === 'service-unmonitored' && { MONGODB_COMMAND_MONITORING: 'false' }),
        }
      : common;
    const nodeArgs =
      options.cpuProfileDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', join(options.cpuProfileDir, name)] : [];
    const server = await startServer({
      name,
      port: await freePort(),
      env,
      nodeArgs,
      readyPath: service ? '/health/ready' : '/health',
    });
    log(`${SERVER_LABELS[name]} listening at ${server.url} (pid ${server.pid}; stderr in ${server.logFile})`);
    servers.push(server);
  }
  return servers;
}

/** Follows `next` from the first page to page `pages`; the alternative pages by number instead. */
async function walk(
  server: RunningServer,
  context: ScenarioContext,
): Promise<{ first: string; last: string; walkSeconds?: number }> {
  const { pages, pageSize } = context.options;
  const first = `/v1/products?limit=${pageSize}`;
  if (server.name === 'express') return { first, last: `${first}&page=${pages}` };
  const started = performance.now();
  let url = first;
  for (let page = 1; page < pages; page++) {
    const response = await fetch(`${server.url}${url}`, { headers: { authorization: `Bearer ${context.apiKey}` } });
    const body = (await response.json()) as { next?: string | null };
    if (response.status !== 200 || typeof body.next !== 'string')
      throw new Error(`${server.name}: page ${page} of the walk answered ${response.status} without a next link`);
    url = body.next;
  }
  return { first, last: url, walkSeconds: (performance.now() - started) / 1000 };
}

/**
 * Whether each service process has the document cache it should: the cache-off one none (its
 * metrics lack the cache's), the other one as configured.
 */
async function checkCaches(servers: readonly RunningServer[], apiKey: string, options: BenchOptions): Promise<void> {
  for (const server of servers) {
    if (server.name !== 'service' && server.name !== 'service-nocache') continue;
    const counters = await cacheCounters(server, apiKey);
    const expected = server.name === 'service' && options.serviceEnv.CACHE_MAX_MB !== '0';
    if ((counters !== undefined) !== expected)
      throw new Error(`${server.name}: expected ${expected ? 'a' : 'no'} document cache, /metrics says otherwise`);
    log(`${server.name}: document cache ${expected ? 'on' : 'off'}, as its /metrics shows`);
  }
}

/** A scenario's title with this run's sizes (quick runs walk and ingest less). */
function titleOf(scenario: Scenario, context: ScenarioContext): string {
  const { options } = context;
  if (scenario.name === 'ingest')
    return `Ingest ${options.ingestDocuments.toLocaleString('en-US')} customers, batches of ${BATCH}`;
  if (scenario.name === 'page-1000')
    return `Cursor walk: page ${options.pages.toLocaleString('en-US')} (${options.pageSize} per page)`;
  if (scenario.name === 'page-1') return `Cursor walk: page 1 (${options.pageSize} per page)`;
  if (scenario.name === 'cold-read') {
    const { round } = coldReadAmounts(options, context.fixture.coldIds.length);
    return `Cold reads: ${round.toLocaleString('en-US')} per round, each product once`;
  }
  return scenario.title;
}

/** Rotates the servers' order each round, so none always runs first (or right after another). */
const rotate = <T>(items: readonly T[], by: number) => items.map((_, i) => items[(i + by) % items.length]!);

function describe(m: Measurement): string {
  return `${Math.round(m.requestsPerSecond)} req/s, p50 ${m.latencyP50Ms} ms, p99 ${m.latencyP99Ms} ms, ${m.errors} errors, ${m.cpuMsPerRequest.toFixed(3)} CPU ms/req, RSS ${Math.round(m.peakRssMb)} MB`;
}

/** Passes over a working set the service's cache gets to keep all of it. */
const MAX_FILL_PASSES = 4;

/**
 * Sends a scenario's fill to its servers. For reads by id the service's is repeated until a pass
 * finds every document in its cache (a cache may keep a document only once it was missed before),
 * and each other server gets as many passes.
 */
async function fill(scenario: Scenario, context: ScenarioContext, servers: readonly RunningServer[]): Promise<void> {
  if (scenario.fill === undefined) return;
  const service = servers.find((server) => server.name === 'service');
  let passes = 1;
  if (service !== undefined && scenario.readsById === true) {
    let missed = true;
    for (passes = 0; missed && passes < MAX_FILL_PASSES; passes++) {
      const before = await cacheCounters(service, context.apiKey);
      await drive(service, scenario.fill(service.name, context));
      const after = await cacheCounters(service, context.apiKey);
      missed = before !== undefined && after !== undefined && after.misses > before.misses;
    }
    log(
      `${scenario.name}: ${passes} passes over the working set; ${missed ? 'the cache still missed in the last' : 'the last found all of it in the cache'}`,
    );
  }
  for (const server of servers) {
    if (server === service && scenario.readsById === true) continue;
    for (let pass = 0; pass < passes; pass++) await drive(server, scenario.fill(server.name, context));
  }
}

/** Alternating batches of the in-process measurement, and finds in each. */
const MONITORING_COST_BATCHES = 40;
const MONITORING_COST_FINDS = 100;

/** List requests sent to count the MongoDB commands of one. */
const COUNTED_REQUESTS = 200;

/**
 * What command monitoring costs a list request: the cost per find measured in this process (two
 * clients, on and off: monitoring-cost.ts), and the commands the service sends per list request.
 */
async function monitoringNotes(
  context: ScenarioContext,
  servers: readonly RunningServer[],
  uri: string,
): Promise<Record<string, unknown>> {
  const service = servers.find((server) => server.name === 'service');
  let commandsPerRequest: number | undefined;
  if (service !== undefined) {
    const before = await commandsSent(service, context.apiKey);
    const load = scenarioNamed('monitoring').load(service.name, context, 'C');
    const { requests } = await measure(service, { ...load, amount: COUNTED_REQUESTS });
    const after = await commandsSent(service, context.apiKey);
    if (before !== undefined && after !== undefined) commandsPerRequest = (after - before) / requests;
  }
  const cost = await measureMonitoringCost({
    uri,
    database: DB_NAME,
    categories: context.fixture.categories,
    batches: MONITORING_COST_BATCHES,
    findsPerBatch: MONITORING_COST_FINDS,
  });
  log(
    `monitoring: CPU per find in one process, ${cost.finds} finds each: ${cost.onUs.toFixed(0)} µs on, ${cost.offUs.toFixed(0)} µs off, ` +
      `${cost.extraUs.toFixed(0)} µs for monitoring; ${commandsPerRequest?.toFixed(2) ?? 'unknown'} commands per list request`,
  );
  return {
    monitoringCost: cost,
    ...(commandsPerRequest !== undefined && { commandsPerListRequest: commandsPerRequest }),
  };
}

/** The share of the slowest server's side-by-side throughput that every server gets in the rounds. */
const SIDE_BY_SIDE_SHARE = 0.7;

/**
 * The fixed rate of a side-by-side scenario's rounds: every server under load at once, as fast as
 * each goes, for the warm-up's length; then a share of the slowest one's requests per second, so
 * that no server falls behind the rate in the rounds.
 */
async function sideBySideRate(scenario: Scenario, context: ScenarioContext, servers: RunningServer[]): Promise<number> {
  const seconds = Math.max(context.options.warmup, 2);
  const calibration = await Promise.all(
    servers.map((server) => measure(server, { ...scenario.load(server.name, context, 'R'), duration: seconds })),
  );
  const slowest = Math.min(...calibration.map((m) => m.requestsPerSecond));
  const rate = Math.max(1, Math.floor(slowest * SIDE_BY_SIDE_SHARE));
  log(
    `${scenario.name}: side by side as fast as each goes, ${calibration.map((m, i) => `${servers[i]!.name} ${Math.round(m.requestsPerSecond)}`).join(', ')} req/s; the rounds send ${rate} req/s to each`,
  );
  return rate;
}

/**
 * Warm-up, then rounds interleaved across the servers. `settle` runs after each load (the order
 * scenario waits there for what the load left in flight, so the next server starts clean).
 */
async function runScenario(
  scenario: Scenario,
  context: ScenarioContext,
  servers: RunningServer[],
  settle: (server: RunningServer) => Promise<void> = async () => undefined,
): Promise<ScenarioResult> {
  const { options } = context;
  const ingest = scenario.name === 'ingest';
  const rounds = ingest ? options.ingestRounds : options.rounds;
  await fill(scenario, context, servers);
  for (const server of servers) {
    if (ingest || options.warmup > 0) {
      const load = scenario.load(server.name, context, 'W');
      await drive(server, load.amount !== undefined ? load : { ...load, duration: options.warmup });
      await settle(server);
    }
  }
  const measured = new Map<ServerName, Measurement[]>(servers.map((server) => [server.name, []]));
  const cacheRounds: CacheRound[] = [];
  let rate: number | undefined;
  for (let round = 0; round < rounds; round++) {
    if (scenario.sideBySide === true) {
      // Every server under its load at once, at one fixed rate: whatever else the machine does in
      // that round falls on all of them alike, and each serves as many requests, so that the CPU
      // a process spends whatever it serves (timers, heartbeats) weighs on each request alike.
      rate ??= await sideBySideRate(scenario, context, servers);
      const loads = servers.map((server) => scenario.load(server.name, context, String(round + 1)));
      const measurements = await Promise.all(
        servers.map((server, i) => measure(server, { ...loads[i]!, duration: options.duration, rate })),
      );
      servers.forEach((server, i) => {
        measured.get(server.name)!.push(measurements[i]!);
        log(
          `${scenario.name} round ${round + 1}/${rounds} ${server.name} (side by side): ${describe(measurements[i]!)}`,
        );
      });
      continue;
    }
    for (const server of rotate(servers, round)) {
      const load = scenario.load(server.name, context, String(round + 1));
      // Read outside the measured load, so that the scrape costs the round nothing.
      const counted = scenario.readsById === true && server.name === 'service';
      const before = counted ? await cacheCounters(server, context.apiKey) : undefined;
      const measurement = await measure(
        server,
        load.amount !== undefined ? load : { ...load, duration: options.duration },
      );
      measured.get(server.name)!.push(measurement);
      const after = before !== undefined ? await cacheCounters(server, context.apiKey) : undefined;
      const cache = before !== undefined && after !== undefined ? cacheRound(before, after) : undefined;
      if (cache !== undefined) cacheRounds.push(cache);
      await settle(server);
      log(
        `${scenario.name} round ${round + 1}/${rounds} ${server.name}: ${describe(measurement)}${cache ? `; cache: ${describeCache(cache)}` : ''}`,
      );
    }
  }
  const result: ScenarioResult = {
    name: scenario.name,
    title: titleOf(scenario, context),
    connections: scenario.load(servers[0]!.name, context, 'C').connections,
    servers: Object.fromEntries(
      [...measured].map(([name, list]) => [
        name,
        { median: summarize(list, ingest ? BATCH : undefined), rounds: list },
      ]),
    ),
    ratios: {},
    ...(cacheRounds.length > 0 && { cache: summarizeCache(cacheRounds) }),
  };
  result.ratios = ratios(result.servers);
  return result;
}

/** The feed scenario on the service: a warm-up round, then the measured rounds, one after another. */
async function runFeed(server: RunningServer, context: ScenarioContext): Promise<FeedResult> {
  const { options } = context;
  const settings: FeedSettings = {
    clients: options.feedClients,
    writesPerSecond: options.feedWritesPerSecond,
    apiKey: context.apiKey,
    productIds: context.fixture.readIds,
    log,
  };
  if (options.warmup > 0) await runFeedRound(server, settings, options.warmup, 'warm-up');
  const rounds = [];
  for (let round = 0; round < options.rounds; round++) {
    const measured = await runFeedRound(server, settings, options.duration, `round ${round + 1}/${options.rounds}`);
    log(`feed round ${round + 1}/${options.rounds}: ${describeFeed(measured)}`);
    rounds.push(measured);
  }
  return {
    title: `Change feed: ${options.feedClients.toLocaleString('en-US')} SSE clients on /v1/products/changes, ${options.feedWritesPerSecond} patches/s`,
    clients: options.feedClients,
    writesPerSecond: options.feedWritesPerSecond,
    median: summarizeFeed(rounds),
    rounds,
  };
}

interface OrderCheck {
  ledgerOk: boolean;
  oversoldUnits: number;
  serverErrors: number;
  unitsOrdered: number;
  sellOut: {
    placed: number;
    refused: number;
    serverErrors: number;
    soldOut: boolean;
    oversoldUnits: number;
    ledgerOk: boolean;
  };
}

const serverErrorsIn = (status: Record<string, number>) =>
  Object.entries(status)
    .filter(([code]) => code.startsWith('5'))
    .reduce((sum, [, count]) => sum + count, 0);

/**
 * The order scenario with its proof. Every server's hot SKUs are restocked first; afterwards
 * (once the server has finished what the load left in flight) the ledger is checked: every
 * reserved unit is on an order, nothing is negative, no unit appeared or vanished. Then a
 * sell-out per server: 5 units per SKU against 50 clients for a few seconds, after which the
 * shelves are empty, exactly the units there were are on orders, and the rest got 409.
 */
async function runOrders(
  scenario: Scenario,
  context: ScenarioContext,
  servers: RunningServer[],
  db: mongoose.mongo.Db,
): Promise<{ result: ScenarioResult; checks: Record<string, OrderCheck> }> {
  const hot = context.fixture.hotSkus;
  const initial = new Map<ServerName, Awaited<ReturnType<typeof stockOf>>>();
  const added = new Map<ServerName, Map<string, number>>();
  for (const server of servers) {
    initial.set(server.name, await stockOf(db, hot[server.name]));
    added.set(server.name, new Map());
    await setAvailable(db, hot[server.name], RESTOCK_UNITS, added.get(server.name)!);
  }
  const result = await runScenario(scenario, context, servers, (server) => waitUntilSettled(db, hot[server.name]));
  const checks: Record<string, OrderCheck> = {};
  for (const server of servers) {
    const skus = hot[server.name];
    await waitUntilSettled(db, skus);
    const ledger = await checkLedger(db, skus, initial.get(server.name)!, added.get(server.name)!);

    await setAvailable(db, skus, SELL_OUT_UNITS, added.get(server.name)!);
    const sellOut = await measure(server, {
      ...scenario.load(server.name, context, 'X'),
      duration: context.options.quick ? 3 : 5,
    });
    await waitUntilSettled(db, skus);
    const sellOutLedger = await checkLedger(db, skus, initial.get(server.name)!, added.get(server.name)!);
    const after = await stockOf(db, skus);
    checks[server.name] = {
      ledgerOk: ledger.ok,
      oversoldUnits: ledger.oversoldUnits,
      serverErrors: serverErrorsIn(result.servers[server.name]!.median.status),
      unitsOrdered: ledger.unitsOrdered,
      sellOut: {
        placed: sellOut.status['201'] ?? 0,
        refused: sellOut.status['409'] ?? 0,
        serverErrors: serverErrorsIn(sellOut.status),
        soldOut: [...after.values()].every((item) => item.available === 0),
        oversoldUnits: sellOutLedger.oversoldUnits,
        ledgerOk: sellOutLedger.ok,
      },
    };
    log(`order checks ${server.name}: ${JSON.stringify(checks[server.name])}`);
  }
  result.notes = { checks };
  return { result, checks };
}

/** The same ingest straight through the driver from this process: no HTTP at all, for reference. */
async function driverIngest(context: ScenarioContext, db: mongoose.mongo.Db, tag: string): Promise<number> {
  const now = new Date();
  const documents = documentsPerRound(context.options);
  const batches = ingestBodies(context, documents, `D${tag}`).map((body) =>
    (JSON.parse(body) as { operations: { document: Record<string, unknown> }[] }).operations.map(({ document }) => ({
      ...document,
      ...structuredClone(Customer.serverDefaults),
      version: 1,
      createdAt: now,
      updatedAt: now,
    })),
  );
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < batches.length) await db.collection('customers').insertMany(batches[next++]!);
  };
  await Promise.all(Array.from({ length: context.options.ingestConnections }, worker));
  return documents / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options === undefined) return;
  const startedAt = new Date();
  const started = performance.now();
  if (options.build) await build(log);
  const mongo = await startEmbeddedMongo({
    cacheSizeGB: options.mongodCacheGb,
    log: (message) => log(`mongod: ${message}`),
  });
  const client = await new mongoose.mongo.MongoClient(mongo.uri).connect();
  let servers: RunningServer[] = [];
  try {
    const db = client.db(DB_NAME);
    const { version } = (await client.db('admin').command({ buildInfo: 1 })) as { version: string };
    let phase = performance.now();
    // Hot SKUs for the servers that place orders only, so that each one's are the same in any run.
    const fixture: Fixture = await prepareDatabase(
      db,
      client,
      options,
      options.servers.filter((name) => scenarioNamed('order').servers.includes(name)),
    );
    const seedSeconds = (performance.now() - phase) / 1000;
    log(
      `seeded ${fixture.counts.products} products, ${fixture.counts.customers} customers, ${fixture.counts.stock} stock items in ${oneDecimal(seedSeconds)} s`,
    );

    const keyJson = await runCli('src/cli/keys.js', ['create', '--name', 'bench', '--scope', '*', '--json'], {
      ...process.env,
      MONGODB_URI: mongo.uri,
      MONGODB_DB: DB_NAME,
    });
    const apiKey = (JSON.parse(keyJson) as { key: string }).key;
    const toRun = serversToRun(options);
    const startRssMb: Record<string, number> = {};
    const processPeakRssMb: Record<string, number> = {};
    const launch = async (names: ServerName[]) => {
      const started = await startServers(options, mongo.uri, names);
      servers = [...servers, ...started].sort((a, b) => SERVERS.indexOf(a.name) - SERVERS.indexOf(b.name));
      await checkCaches(started, apiKey, options);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      for (const server of started) startRssMb[server.name] = Math.round(rssMb(server.pid));
    };
    const retire = async (server: RunningServer) => {
      processPeakRssMb[server.name] = Math.round(peakRssMb(server.pid));
      await server.stop();
      servers = servers.filter((running) => running !== server);
      log(`${SERVER_LABELS[server.name]} stopped: no scenario left runs on it`);
    };
    await launch(toRun.filter((name) => !ONLY_AROUND_THEIR_SCENARIOS.has(name)));

    const context: ScenarioContext = { options, fixture, apiKey, walk: {}, coldReads: {} };
    if (options.scenarios.some((name) => name.startsWith('page-'))) {
      for (const server of serversOf(scenarioNamed('page-1'), servers)) {
        context.walk[server.name] = await walk(server, context);
        const seconds = context.walk[server.name]!.walkSeconds;
        log(
          `${server.name}: page ${options.pages} reached${seconds === undefined ? ' by number' : ` by following next ${options.pages - 1} times in ${oneDecimal(seconds)} s`}`,
        );
      }
    }

    const results: ScenarioResult[] = [];
    let orderChecks: Record<string, OrderCheck> = {};
    const selected = SCENARIO_LIST.filter((s) => options.scenarios.includes(s.name));
    for (const [index, scenario] of selected.entries()) {
      const absent = scenario.servers.filter(
        (name) => toRun.includes(name) && !servers.some((server) => server.name === name),
      );
      if (absent.length > 0) await launch(absent);
      phase = performance.now();
      log(`scenario ${scenario.name}: ${scenario.title}`);
      const running = serversOf(scenario, servers);
      if (scenario.name === 'order') {
        const { result, checks } = await runOrders(scenario, context, running, db);
        results.push(result);
        orderChecks = checks;
      } else {
        const result = await runScenario(scenario, context, running);
        if (scenario.name === 'monitoring') result.notes = await monitoringNotes(context, running, mongo.uri);
        if (scenario.name === 'ingest') {
          const rates: number[] = [];
          for (let round = 0; round < options.ingestRounds; round++)
            rates.push(await driverIngest(context, db, String(round + 1)));
          result.notes = { driverInProcessDocsPerSecond: rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)] };
          log(
            `ingest straight through the driver (no HTTP): ${Math.round(result.notes.driverInProcessDocsPerSecond as number)} docs/s`,
          );
        }
        results.push(result);
      }
      log(`scenario ${scenario.name} took ${oneDecimal((performance.now() - phase) / 1000)} s`);
      const later = selected.slice(index + 1);
      for (const server of servers.filter(
        ({ name }) => ONLY_AROUND_THEIR_SCENARIOS.has(name) && !later.some((next) => next.servers.includes(name)),
      ))
        await retire(server);
    }
    let feed: FeedResult | undefined;
    const service = servers.find((server) => server.name === 'service');
    if (options.scenarios.includes('feed') && service !== undefined) {
      phase = performance.now();
      log(
        `scenario feed: ${options.feedClients} SSE clients while ${options.feedWritesPerSecond} patches/s go through`,
      );
      feed = await runFeed(service, context);
      log(`scenario feed took ${oneDecimal((performance.now() - phase) / 1000)} s`);
    } else if (options.scenarios.includes('feed')) log('scenario feed skipped: only the service has a feed');

    for (const server of servers) processPeakRssMb[server.name] = Math.round(peakRssMb(server.pid));
    log(
      `peak RSS of each process over its life (VmHWM): ${JSON.stringify(processPeakRssMb)}; at start: ${JSON.stringify(startRssMb)}`,
    );
    const serviceLoadRss = [
      ...results.map((r) => r.servers.service?.median.peakRssMb ?? 0),
      ...(feed ? [feed.median.peakRssMb] : []),
    ];
    const goals = judge(
      results,
      orderChecks,
      servers.some((s) => s.name === 'service') ? Math.max(...serviceLoadRss) : undefined,
      feed,
    );
    for (const server of servers) await server.stop();
    servers = [];

    const environment = {
      ...environmentOf({ version, source: mongo.source, wiredTigerCacheGb: options.mongodCacheGb }),
      clockTicks: CLOCK_TICKS,
    };
    const cold = options.scenarios.includes('cold-read') ? coldReadAmounts(options, fixture.coldIds.length) : undefined;
    const settings =
      `${options.rounds} rounds of ${options.duration} s per scenario and server after ${options.warmup} s of warm-up (ingest: ` +
      `${options.ingestDocuments.toLocaleString('en-US')} documents per server in ${options.ingestRounds} rounds), ${options.connections} connections ` +
      `(order placement ${options.orderConnections}, ingest ${options.ingestConnections}); medians. ` +
      (results.some((result) => result.servers['service-nocache'] !== undefined)
        ? `Document cache: CACHE_MAX_MB=${options.serviceEnv.CACHE_MAX_MB ?? variables.CACHE_MAX_MB.default} in ${SERVER_LABELS.service}, 0 in ${SERVER_LABELS['service-nocache']}. `
        : '') +
      (results.some((result) => result.servers['service-unmonitored'] !== undefined)
        ? `Command monitoring: on in ${SERVER_LABELS.service}, off (MONGODB_COMMAND_MONITORING=false) in ${SERVER_LABELS['service-unmonitored']}. `
        : '') +
      (cold
        ? `Cold reads: rounds of ${cold.round} requests (warm-up ${cold.warmup}) instead of ${options.duration} s, each for a product that server has not read by id before. `
        : '') +
      (feed
        ? `Feed: ${options.feedClients} SSE clients opened ${OPEN_BATCH} per ${OPEN_EVERY_MS} ms, ${options.feedWritesPerSecond} merge patches/s for each round's ${options.duration} s. `
        : '') +
      `Node ${process.version}, ${environment.cpus} CPUs shared by mongod ${version} (${mongo.source === 'wine' ? 'under Wine' : mongo.source}), the servers and autocannon.`;
    const output = {
      benchmark: 'http',
      startedAt: startedAt.toISOString(),
      environment,
      options: { ...options, scenarios: options.scenarios, outDir: undefined },
      processes: {
        service:
          'node bench/.build/src/server.js: tsc build of src/ (as npm run build), NODE_ENV=production, production defaults but RATE_LIMIT_PER_MINUTE=0; JSON access log written to /dev/null',
        'service-nocache': 'the same as service, with CACHE_MAX_MB=0 (no document cache); hot and cold reads only',
        'service-unmonitored':
          'the same as service, with MONGODB_COMMAND_MONITORING=false (no driver command events, command metrics or slow-operation log); the monitoring scenario only',
        floor: 'node bench/.build/bench/servers/floor.js: Fastify 5 + the MongoDB driver, no schemas, no logging',
        express:
          'node bench/.build/bench/servers/express-mongoose.js: Express 5 + Mongoose hydrated documents, skip/limit pages, no logging',
      },
      data: {
        ...fixture.counts,
        seedSeconds: Math.round(seedSeconds * 10) / 10,
        pageSize: options.pageSize,
        pages: options.pages,
        walk: context.walk,
      },
      scenarios: results,
      feed,
      orderChecks,
      startRssMb,
      processPeakRssMb,
      goals,
      totalSeconds: Math.round((performance.now() - started) / 1000),
    };
    const outDir = resolve(REPO_DIR, options.outDir);
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'http.json'), `${JSON.stringify(output, null, 2)}\n`);
    const table = markdown({ environment, scenarios: results, feed, goals, settings });
    await writeFile(join(outDir, 'http.md'), table);
    const subtitle = `${environment.cpus} CPUs shared by mongod ${version}${mongo.source === 'wine' ? ' (Wine)' : ''}, the servers and autocannon; ${options.rounds} rounds of ${options.duration} s, ${options.connections} connections`;
    await writeFile(join(outDir, 'http.svg'), svgChart(results, subtitle));
    console.log(table);
    log(
      `wrote http.json, http.md and http.svg in ${outDir}; total ${Math.round((performance.now() - started) / 1000)} s`,
    );
  } finally {
    for (const server of servers) await server.stop().catch(() => undefined);
    await client.close();
    await mongo.stop();
  }
}

await main();
