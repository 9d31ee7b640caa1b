// What command monitoring costs a command, measured in one process. Two clients of this process
// send the list's find (100 products of a category, by price, read as the service reads them) to
// the same mongod: one opened with monitorCommands and followed by the service's own DriverMonitor
// (its command metrics and slow-operation check), one without. Their batches alternate, each timed
// by this process's CPU (process.cpuUsage), so what sets two server processes apart (their heaps,
// their compiled code, the host's steal on each) never enters the difference: two server
// processes of one identical build, measured side by side, differed by up to 1.22 ×, far more
// than the cost to be measured. The difference per find, times the commands the service sends per
// list request (from its /metrics), over its CPU per list request, is the share monitoring takes.

import mongoose from 'mongoose';
import { DriverMonitor } from '../../src/data/monitoring.ts';
import { RAW, decodeAll } from '../../src/data/raw-reads.ts';
import type { RunningServer } from './processes.ts';
import { sampled } from './cache-stats.ts';

const { MongoClient } = mongoose.mongo;

/** The service's default: every command is checked against it, few are over it. */
const SLOW_OPERATION_MS = 100;
/** Finds in flight at once from each client, as a busy service has. */
const CONCURRENCY = 8;

export interface MonitoringCost {
  finds: number;
  /** CPU of this process per find, in microseconds, with command monitoring on and off. */
  onUs: number;
  offUs: number;
  /** onUs - offUs: what monitoring adds to a find. */
  extraUs: number;
}

export interface CostOptions {
  uri: string;
  database: string;
  categories: readonly string[];
  /** Alternating batches per client. */
  batches: number;
  findsPerBatch: number;
}

export async function measureMonitoringCost(options: CostOptions): Promise<MonitoringCost> {
  const monitored = new MongoClient(options.uri, { monitorCommands: true, maxPoolSize: CONCURRENCY });
  const unmonitored = new MongoClient(options.uri, { monitorCommands: false, maxPoolSize: CONCURRENCY });
  const monitor = new DriverMonitor({ slowOperationMs: SLOW_OPERATION_MS, log: { warn: () => undefined } });
  monitor.watch(monitored, 'main', { commands: true, topology: true });
  await Promise.all([monitored.connect(), unmonitored.connect()]);
  try {
    const variants = [
      { client: monitored, cpuUs: 0 },
      { client: unmonitored, cpuUs: 0 },
    ];
    let sent = 0;
    const batch = async (client: InstanceType<typeof MongoClient>) => {
      const products = client.db(options.database).collection('products');
      for (let i = 0; i < options.findsPerBatch; i += CONCURRENCY) {
        await Promise.all(
          Array.from({ length: Math.min(CONCURRENCY, options.findsPerBatch - i) }, () => {
            const category = options.categories[sent++ % options.categories.length];
            return products
              .find(
                { category },
                { sort: { 'price.amount': -1, _id: -1 }, limit: 101, maxTimeMS: 5000, comment: 'bench', ...RAW },
              )
              .toArray()
              .then((found) => decodeAll(found));
          }),
        );
      }
    };
    // A batch of each first, unmeasured: connections opened, code compiled.
    for (const variant of variants) await batch(variant.client);
    for (let round = 0; round < options.batches; round++) {
      // Which goes first alternates too.
      for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
        const before = process.cpuUsage();
        await batch(variant.client);
        const used = process.cpuUsage(before);
        variant.cpuUs += used.user + used.system;
      }
    }
    const finds = options.batches * options.findsPerBatch;
    const onUs = variants[0]!.cpuUs / finds;
    const offUs = variants[1]!.cpuUs / finds;
    return { finds, onUs, offUs, extraUs: onUs - offUs };
  } finally {
    await Promise.all([monitored.close(), unmonitored.close()]);
  }
}

/** MongoDB commands the server's main client has sent, from its /metrics. */
export async function commandsSent(server: RunningServer, apiKey: string): Promise<number | undefined> {
  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${apiKey}` } });
  return sampled(await response.text(), 'storekeeper_mongodb_command_duration_seconds_count');
}
