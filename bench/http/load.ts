// One measured run of load against one server: autocannon drives it from this process (never the
// server's), while the server's CPU time and resident memory are read from /proc around it.

import autocannon, { type Request } from 'autocannon';
import { cpuMs, sampleRss } from './proc-stats.ts';
import type { RunningServer } from './processes.ts';

export interface Load {
  connections: number;
  /** Seconds of load; or `amount` requests, whichever the scenario sets. */
  duration?: number;
  amount?: number;
  requests: Request[];
  headers: Record<string, string>;
  /** Ceiling of one request's wait, in seconds. */
  timeout?: number;
  /** Requests per second across all connections; as fast as the server answers when unset. */
  rate?: number;
}

export interface Measurement {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Connection errors, timeouts and answers other than 2xx. */
  errors: number;
  status: Record<string, number>;
  cpuMsPerRequest: number;
  /** Largest VmRSS sampled during the run. */
  peakRssMb: number;
}

/** autocannon's result, and the seconds from the start to the last answer, timed here. */
export async function drive(
  server: RunningServer,
  load: Load,
): Promise<autocannon.Result & { answeredWithinSeconds: number }> {
  const started = performance.now();
  let lastAnswer = started;
  // Without a callback autocannon returns its event emitter, made thenable.
  const instance = autocannon({
    url: server.url,
    connections: load.connections,
    ...(load.amount !== undefined ? { amount: load.amount } : { duration: load.duration ?? 5 }),
    headers: load.headers,
    requests: load.requests,
    timeout: load.timeout ?? 30,
    ...(load.rate !== undefined && { overallRate: load.rate }),
  }) as unknown as autocannon.Instance & Promise<autocannon.Result>;
  const events: autocannon.Instance = instance;
  events.on('response', () => {
    lastAnswer = performance.now();
  });
  const result = await instance;
  return Object.assign(result, { answeredWithinSeconds: (lastAnswer - started) / 1000 });
}

export async function measure(server: RunningServer, load: Load): Promise<Measurement> {
  const rss = sampleRss(server.pid);
  const cpuBefore = cpuMs(server.pid);
  const result = await drive(server, load);
  const cpu = cpuMs(server.pid) - cpuBefore;
  const peakRssMb = rss.stop();
  const status: Record<string, number> = {};
  let answered = 0;
  for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {}) as [string, { count: number }][]) {
    status[code] = count;
    answered += count;
  }
  const non2xx =
    answered -
    Object.entries(status)
      .filter(([code]) => code.startsWith('2'))
      .reduce((sum, [, count]) => sum + count, 0);
  const requests = Math.max(answered, 1);
  // A fixed amount of requests ends with autocannon's once-a-second tick, which rounds its
  // duration up to whole seconds: a run of that kind is timed to its last answer instead.
  const seconds = load.amount !== undefined ? result.answeredWithinSeconds : result.duration;
  return {
    requests: answered,
    seconds,
    requestsPerSecond: answered / seconds,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    errors: result.errors + non2xx,
    status,
    cpuMsPerRequest: cpu / requests,
    peakRssMb,
  };
}
