// `npm run bench:testing`: what storekeeper/testing costs a test suite. startShop to the first
// answer of the typed client, cold (the first in a process: modules, the mongod binary, a mongod
// under Wine here) and warm (another in the same process), and reset() after a test's writes
// (median of N) on an empty shop, on a small seed with fixtures, and on the full demo seed. Prints
// the figures with the machine's conditions (cores, load, how busy the cores were during the run,
// which other work on them moves) and writes them to bench/results/testing.json.

import { availableParallelism, loadavg, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { resolveMongodBinary, MONGOD_VERSION } from '../src/mongod/binary.ts';
import { startShop, type Fixtures, type Shop, type StartShopOptions } from '../src/testing/index.ts';
import { environmentOf, median, round, writeResult } from './common.ts';

const RESULT = new URL('./results/testing.json', import.meta.url);

const FIXTURES: Fixtures = {
  products: [
    {
      sku: 'BENCH-1',
      name: 'Bench mug',
      price: { amount: 900, currency: 'EUR' },
      category: 'kitchen',
      status: 'active',
    },
    {
      sku: 'BENCH-2',
      name: 'Bench pot',
      price: { amount: 2900, currency: 'EUR' },
      category: 'kitchen',
      status: 'active',
    },
  ],
  customers: [{ email: 'bench@example.com', name: 'Bench Customer' }],
  stock: [
    { sku: 'BENCH-1', warehouse: 'AMS-1', available: 50 },
    { sku: 'BENCH-2', warehouse: 'AMS-1', available: 50 },
  ],
  orders: [
    {
      customer: 'bench@example.com',
      warehouse: 'AMS-1',
      lines: [
        { sku: 'BENCH-1', quantity: 2 },
        { sku: 'BENCH-2', quantity: 1 },
      ],
      status: 'paid',
    },
  ],
};

/** The whole machine's CPU time so far (jiffies): busy and total, from /proc/stat. */
function cpuTimes(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3]! + (fields[4] ?? 0);
    const total = fields.reduce((sum, value) => sum + value, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** startShop, then the first answer of its typed client: the cost a test file pays before its first test. */
async function startTimed(options: StartShopOptions): Promise<{ shop: Shop; startMs: number; firstAnswerMs: number }> {
  const started = performance.now();
  const shop = await startShop(options);
  const up = performance.now();
  const answer = await shop.client.GET('/v1/products', { params: { query: { limit: 1 } } });
  if (answer.response.status !== 200) throw new Error(`the first answer was ${answer.response.status}`);
  return { shop, startMs: up - started, firstAnswerMs: performance.now() - started };
}

/** reset() after each round of a test's writes (five creates): its median and range, in ms. */
async function resets(
  shop: Shop,
  rounds: number,
): Promise<{ rounds: number; medianMs: number; minMs: number; maxMs: number }> {
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 5; i++) {
      const created = await shop.client.POST('/v1/products', {
        body: {
          sku: `WRITTEN-${round}-${i}`,
          name: 'Written by a test',
          price: { amount: 100, currency: 'EUR' },
          category: 'misc',
          status: 'active',
        },
      });
      if (created.response.status !== 201) throw new Error(`a create answered ${created.response.status}`);
    }
    const started = performance.now();
    await shop.reset();
    times.push(performance.now() - started);
  }
  return {
    rounds,
    medianMs: round(median(times), 1),
    minMs: round(Math.min(...times), 1),
    maxMs: round(Math.max(...times), 1),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { resets: { type: 'string', default: '20' } } });
  const rounds = Number(values.resets);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--resets must be a whole number of at least 1');

  const startedAt = new Date();
  const loadBefore = loadavg();
  const cpuBefore = cpuTimes();

  const cold = await startTimed({});
  await cold.shop.stop();
  const warm = await startTimed({});
  const emptyReset = await resets(warm.shop, rounds);
  await warm.shop.stop();

  const small = await startTimed({ seed: { products: 100, customers: 20 }, fixtures: FIXTURES });
  const smallReset = await resets(small.shop, rounds);
  await small.shop.stop();

  const demo = await startTimed({ seed: true });
  const demoRounds = Math.max(1, Math.ceil(rounds / 4));
  const demoReset = await resets(demo.shop, demoRounds);
  const stopStarted = performance.now();
  await demo.shop.stop();
  const stopMs = performance.now() - stopStarted;

  const cpuAfter = cpuTimes();
  const binary = await resolveMongodBinary({ log: () => undefined });
  const busyCores =
    cpuBefore && cpuAfter
      ? round(((cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total)) * availableParallelism())
      : undefined;
  const result = {
    benchmark: 'testing',
    startedAt: startedAt.toISOString(),
    environment: {
      ...environmentOf({ version: MONGOD_VERSION, source: binary.source }),
      memoryGB: round(totalmem() / 2 ** 30, 1),
      loadAverage1m: { before: round(loadBefore[0]!), after: round(loadavg()[0]!) },
      busyCoresDuringRun: busyCores,
    },
    startShop: {
      cold: { startMs: Math.round(cold.startMs), firstAnswerMs: Math.round(cold.firstAnswerMs) },
      warm: { startMs: Math.round(warm.startMs), firstAnswerMs: Math.round(warm.firstAnswerMs) },
      warmWithSmallSeedAndFixtures: { firstAnswerMs: Math.round(small.firstAnswerMs) },
      warmWithDemoSeed: { firstAnswerMs: Math.round(demo.firstAnswerMs) },
      stopMs: Math.round(stopMs),
    },
    reset: {
      empty: emptyReset,
      smallSeedAndFixtures: { seed: { products: 100, customers: 20 }, fixtures: 6, ...smallReset },
      demoSeed: { seed: { products: 1000, customers: 200 }, ...demoReset },
    },
  };

  const env = result.environment;
  console.log(
    `machine: ${env.cpus} cores, ${env.memoryGB} GB, node ${env.node}, mongod ${env.mongod.version} (${env.mongod.source}); ` +
      `load average ${env.loadAverage1m.before} before, ${env.loadAverage1m.after} after; ` +
      `${busyCores ?? '?'} of ${env.cpus} cores busy during the run (this benchmark and anything else)`,
  );
  console.log(
    `startShop to first answer: cold ${result.startShop.cold.firstAnswerMs} ms, warm ${result.startShop.warm.firstAnswerMs} ms ` +
      `(small seed + fixtures ${result.startShop.warmWithSmallSeedAndFixtures.firstAnswerMs} ms, ` +
      `demo seed ${result.startShop.warmWithDemoSeed.firstAnswerMs} ms); stop ${result.startShop.stopMs} ms`,
  );
  for (const [name, figures] of [
    ['empty shop', emptyReset],
    ['100 products, 20 customers + 6 fixtures', smallReset],
    ['demo seed (1,000 products, 200 customers)', demoReset],
  ] as const) {
    console.log(
      `reset, ${name}: median ${figures.medianMs} ms of ${figures.rounds} (${figures.minMs}-${figures.maxMs} ms)`,
    );
  }
  await writeResult(RESULT, result);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
