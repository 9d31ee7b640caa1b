// What the service's document cache did during a round, read from the service's own /metrics
// before and after it (outside the measured load): the proof that hot reads were hits and cold
// reads misses. A service without a cache (CACHE_MAX_MB=0) has none of these metrics.

import type { RunningServer } from './processes.ts';

/** The cache's counters at one moment (the metrics' values, summed over their labels). */
export interface CacheCounters {
  hits: number;
  misses: number;
  /** Entries that left for room (cause="size"). */
  sizeEvictions: number;
  /** Times the cache emptied itself, every reason. */
  resets: number;
  bytes: number;
}

/** One round: the counters' differences, and what the cache held after it. */
export interface CacheRound {
  hits: number;
  misses: number;
  sizeEvictions: number;
  resets: number;
  bytesAfter: number;
}

/** The measured rounds of a scenario together (warm-ups left out). */
export interface CacheSummary extends CacheRound {
  /** hits / (hits + misses). */
  hitRatio: number;
  rounds: CacheRound[];
}

/** The sum of a metric's samples, or undefined when the text has none. */
export function sampled(text: string, name: string, labels?: string): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!rest.startsWith(' ') && !rest.startsWith('{')) continue;
    if (labels !== undefined && !rest.startsWith(`{${labels}}`)) continue;
    total = (total ?? 0) + Number(rest.slice(rest.lastIndexOf(' ') + 1));
  }
  return total;
}

/** The server's GET /metrics text, read with the run's key. */
export async function scrapeMetrics(server: RunningServer, apiKey: string): Promise<string> {
  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${apiKey}` } });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${server.name}: GET /metrics answered ${response.status}: ${text}`);
  return text;
}

/** The cache's counters from GET /metrics; undefined when the server has no document cache. */
export async function cacheCounters(server: RunningServer, apiKey: string): Promise<CacheCounters | undefined> {
  const text = await scrapeMetrics(server, apiKey);
  const hits = sampled(text, 'storekeeper_cache_hits_total');
  if (hits === undefined) return undefined;
  return {
    hits,
    misses: sampled(text, 'storekeeper_cache_misses_total') ?? 0,
    sizeEvictions: sampled(text, 'storekeeper_cache_evictions_total', 'cause="size"') ?? 0,
    resets: sampled(text, 'storekeeper_cache_resets_total') ?? 0,
    bytes: sampled(text, 'storekeeper_cache_bytes') ?? 0,
  };
}

export const cacheRound = (before: CacheCounters, after: CacheCounters): CacheRound => ({
  hits: after.hits - before.hits,
  misses: after.misses - before.misses,
  sizeEvictions: after.sizeEvictions - before.sizeEvictions,
  resets: after.resets - before.resets,
  bytesAfter: after.bytes,
});

export function summarizeCache(rounds: CacheRound[]): CacheSummary {
  const sum = (pick: (round: CacheRound) => number) => rounds.reduce((total, round) => total + pick(round), 0);
  const hits = sum((round) => round.hits);
  const misses = sum((round) => round.misses);
  return {
    hits,
    misses,
    hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses),
    sizeEvictions: sum((round) => round.sizeEvictions),
    resets: sum((round) => round.resets),
    bytesAfter: rounds.at(-1)?.bytesAfter ?? 0,
    rounds,
  };
}

/** The summary in one line, for the log and under the table. */
export const describeCache = (cache: CacheRound & { hitRatio?: number }) =>
  `${cache.hits} hits, ${cache.misses} misses` +
  (cache.hitRatio !== undefined ? ` (${(100 * cache.hitRatio).toFixed(1)} % hits)` : '') +
  `, ${cache.sizeEvictions} evicted for size, ${cache.resets} resets, ${(cache.bytesAfter / 1_048_576).toFixed(1)} MB held after`;
