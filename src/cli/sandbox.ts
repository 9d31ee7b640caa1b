// `npm run sandbox`: a throwaway shop to try the API against: startShop (storekeeper/testing)
// with the demo data, in memory, on a free port; prints where it listens, its docs and a key with
// every scope. Ctrl-C (SIGINT) or SIGTERM stops the service and its mongod and exits 0, as the
// service's own stop does (src/shutdown.ts); nothing of it is left behind.

import { pathToFileURL } from 'node:url';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { handleStopRequests } from '../shutdown.ts';
import { errorMessage } from '../errors.ts';
import { startShop, type LogLevel } from '../testing/index.ts';
import { parseDemoArguments, SEED_DEFAULTS } from './seed.ts';
import type { DemoOptions } from './demo-data.ts';

const USAGE = `usage: npm run sandbox -- [--products N] [--customers N] [--seed N]
  A shop in memory with demo data (as npm run seed writes it), gone when it stops.
  --products N   demo products (default ${SEED_DEFAULTS.products})
  --customers N  demo customers (default ${SEED_DEFAULTS.customers})
  --seed N       seed of the demo data generator (default ${SEED_DEFAULTS.seed})
  LOG_LEVEL      the service's log lines on stdout from this level (default warn)`;

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

async function main(args: string[]): Promise<void> {
  let demo: DemoOptions | undefined;
  try {
    demo = parseDemoArguments(args);
  } catch (error) {
    process.stderr.write(`sandbox: ${errorMessage(error)}\n${USAGE}\n`);
    process.exit(2);
  }
  if (demo === undefined) {
    console.log(USAGE);
    return;
  }
  const level = LEVELS.find((name) => name === process.env.LOG_LEVEL) ?? ('warn' satisfies LogLevel);
  const logger = createLogger({ level, format: 'json' });
  const stopping = handleStopRequests({
    graceMs: loadConfig({}).shutdownGraceMs,
    logger,
    parentForwardsSignals: process.env.npm_lifecycle_event !== undefined,
  });

  console.log(
    `storekeeper sandbox: starting a shop in memory with ${demo.products} products and ${demo.customers} ` +
      `customers (seed ${demo.seed})...`,
  );
  let shop;
  try {
    shop = await startShop({ seed: demo, log: { level, destination: process.stdout } });
  } catch (error) {
    stopping.uninstall();
    process.stderr.write(`sandbox: failed to start: ${errorMessage(error)}\n`);
    process.exit(1);
  }
  const started = shop;
  stopping.ready(async () => {
    await started.stop();
    console.log('storekeeper sandbox: stopped; its data is gone');
  });
  console.log(
    [
      `  URL:  ${shop.url}`,
      `  Docs: ${shop.url}/docs`,
      `  Key:  ${shop.apiKey} (every scope)`,
      `  Try:  curl -H 'Authorization: Bearer ${shop.apiKey}' '${shop.url}/v1/products?limit=3'`,
      'Ctrl-C stops it.',
    ].join('\n'),
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  void main(process.argv.slice(2));
}
