// One fault scenario from start to verdict: the service on a fresh database of the cluster, a
// seeded shop, load, the fault and its repair, the re-sends once MongoDB is back, the read-back,
// the printed figures, and the assertions they are judged by.

import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { expect } from 'vitest';
import {
  AFTER_RECOVERY_MS,
  ANSWER_BOUND_MS,
  BLOCKED_AFTER_MS,
  MIN_LOAD_MS,
  READINESS_BOUND_MS,
  RECOVERY_TIMEOUT_MS,
  WARMUP_MS,
} from './bounds.ts';
import { FaultClient, sleep } from './client.ts';
import type { FaultCluster } from './cluster.ts';
import { readBack, report, tally, type Figures } from './checks.ts';
import { Load, WAREHOUSE, resend, seedShop, unsettled } from './load.ts';
import { startService } from './service.ts';

/** Breaks MongoDB under load and repairs it; resolves once the repair is done. */
export type Fault = (cluster: FaultCluster) => Promise<void>;

/** `tag`: a few upper-case letters and digits naming the scenario in SKUs, keys and request ids. */
export async function runScenario(cluster: FaultCluster, tag: string, title: string, fault: Fault): Promise<Figures> {
  const service = await startService(cluster.uri, tag.toLowerCase());
  try {
    const shop = await seedShop(service.baseUrl, service.apiKey);
    const client = new FaultClient(service.baseUrl, service.apiKey, `${tag}-${randomBytes(3).toString('hex')}`);
    const load = new Load(client, shop, tag);
    // The answer times are the client's measure: a stalled client would pass its stall off as the service's.
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const timeline = new Timeline();
    load.start();
    try {
      await sleep(WARMUP_MS);
      timeline.mark('fault');
      await fault(cluster);
      timeline.mark('repaired');
      await load.readyAfter(Date.now(), RECOVERY_TIMEOUT_MS);
      timeline.mark('ready');
      await sleep(Math.max(AFTER_RECOVERY_MS, timeline.start + MIN_LOAD_MS - Date.now()));
    } finally {
      timeline.mark('load stopping');
      await load.stop();
      lag.disable();
    }
    timeline.mark('load stopped');
    await resend(client, unsettled(client), BLOCKED_AFTER_MS);
    timeline.mark('re-sent');
    const stored = await readBack(cluster.uri, service.dbName, WAREHOUSE);
    const figures = tally({
      scenario: `${tag} ${title}`,
      client,
      probes: load.probes,
      stored,
      shop,
      errorLogs: service.errorLines(),
      serviceExit: service.exitedEarly(),
    });
    figures.timeline = timeline.toString();
    figures.clientLagMs = Math.round(lag.max / 1e6);
    console.log(report(figures));
    return figures;
  } finally {
    await service.stop();
  }
}

/** When each phase began, in seconds since the load started. */
class Timeline {
  readonly start = Date.now();
  private readonly marks: string[] = [];

  mark(what: string): void {
    this.marks.push(`${what} +${((Date.now() - this.start) / 1000).toFixed(1)} s`);
  }

  toString(): string {
    return this.marks.join(', ');
  }
}

const examples = (items: string[]) =>
  items.length === 0 ? '' : `: ${items.slice(0, 3).join('; ')}${items.length > 3 ? '; ...' : ''}`;

/** What clients were told must be true. Soft, so one run reports every finding of a scenario. */
export function expectTruthfulAnswers(f: Figures): void {
  expect(f.acknowledged, 'no write was acknowledged at all: the scenario proves nothing').toBeGreaterThan(0);
  expect.soft(f.lost.length, `acknowledged writes missing from MongoDB${examples(f.lost)}`).toBe(0);
  expect
    .soft(
      f.saidNotWrittenButStored.length,
      `writes stored although answered "not written"${examples(f.saidNotWrittenButStored)}`,
    )
    .toBe(0);
  const blocked = [...f.blocked, ...f.undecided];
  expect
    .soft(
      blocked.length,
      `keys with no definitive answer within ${BLOCKED_AFTER_MS} ms once MongoDB was back${examples(blocked)}`,
    )
    .toBe(0);
  expect.soft(f.serverErrors.length, `500 answers${examples(f.serverErrors)}`).toBe(0);
  expect
    .soft(
      f.errorLogs.length,
      `service log lines at level >= 50${examples(f.errorLogs.map((line) => String(line.msg)))}`,
    )
    .toBe(0);
  expect.soft(f.duplicates.length, `logical writes stored more than once${examples(f.duplicates)}`).toBe(0);
  expect.soft(f.refused.length, `valid requests refused with a 4xx${examples(f.refused)}`).toBe(0);
  expect
    .soft(f.unattributedOrders.length, `orders no logical write accounts for${examples(f.unattributedOrders)}`)
    .toBe(0);
  expect.soft(f.ledger.length, `stock ledger off${examples(f.ledger)}`).toBe(0);
  expect.soft(f.overBound.length, `answers slower than ${ANSWER_BOUND_MS} ms${examples(f.overBound)}`).toBe(0);
  expect
    .soft(
      f.readinessOverBound.length,
      `readiness answers slower than ${READINESS_BOUND_MS} ms${examples(f.readinessOverBound)}`,
    )
    .toBe(0);
  expect.soft(f.serviceExit, 'the service process exited on its own').toBeUndefined();
}
