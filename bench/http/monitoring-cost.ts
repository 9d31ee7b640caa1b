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
import { variables } from '../../src/config.ts';
import { median } from '../common.ts';
import { DriverMonitor } from '../../src/data/monitoring.ts';
import { RAW, decodeAll } from '../../src/data/raw-reads.ts';
import type { RunningServer } from './processes.ts';
import { sampled, scrapeMetrics } from './cache-stats.ts';

const { MongoClient } = mongoose.mongo;

/** The service's default threshold: every command is checked against it, few are over it. */
const SLOW_OPERATION_MS = Number(variables.SLOW_OPERATION_MS.default);
/** Finds in flight at once from each client, as a busy service has. */
const CONCURRENCY = 8;

export interface MonitoringCost {
  /** Finds sent by each client, measured. */
  finds: number;
  /** CPU of this process per find, in microseconds, with command monitoring on and off: medians of the batches. */
  onUs: number;
  offUs: number;
  /** What monitoring adds to a find: the median of the batch pairs' differences. */
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
    const find = (client: InstanceType<typeof MongoClient>, category: string | undefined) =>
      client
        .db(options.database)
        .collection('products')
        .find(
          { category },
          { sort: { 'price.amount': -1, _id: -1 }, limit: 101, maxTimeMS: 5000, comment: 'bench', ...RAW },
        )
        .toArray()
        .then((found) => decodeAll(found));
    /** This process's CPU, in µs per find, for a batch starting at the `from`th category. */
    const batch = async (client: InstanceType<typeof MongoClient>, from: number): Promise<number> => {
      const before = process.cpuUsage();
      for (let i = 0; i < options.findsPerBatch; i += CONCURRENCY) {
        const count = Math.min(CONCURRENCY, options.findsPerBatch - i);
        await Promise.all(
          Array.from({ length: count }, (_, k) =>
            find(client, options.categories[(from + i + k) % options.categories.length]),
          ),
        );
      }
      const used = process.cpuUsage(before);
      return (used.user + used.system) / options.findsPerBatch;
    };
    // A batch of each first, unmeasured: connections opened, code compiled.
    await batch(monitored, 0);
    await batch(unmonitored, 0);
    const on: number[] = [];
    const off: number[] = [];
    const extra: number[] = [];
    for (let round = 0; round < options.batches; round++) {
      // Both read the same categories (their pages differ in size); which goes first alternates.
      const from = round * options.findsPerBatch;
      const [first, second] = round % 2 === 0 ? [monitored, unmonitored] : [unmonitored, monitored];
      const a = await batch(first, from);
      const b = await batch(second, from);
      const [withIt, without] = first === monitored ? [a, b] : [b, a];
      on.push(withIt);
      off.push(without);
      extra.push(withIt - without);
    }
    // Medians: a batch the machine slowed (the host, mongod's own work) weighs as one of many.
    return {
      finds: options.batches * options.findsPerBatch,
      onUs: median(on),
      offUs: median(off),
      extraUs: median(extra),
    };
  } finally {
    await Promise.all([monitored.close(), unmonitored.close()]);
  }
}

/** MongoDB commands the server's main client has sent, from its /metrics. */
export async function commandsSent(server: RunningServer, apiKey: string): Promise<number | undefined> {
  return sampled(await scrapeMetrics(server, apiKey), 'storekeeper_mongodb_command_duration_seconds_count');
}
