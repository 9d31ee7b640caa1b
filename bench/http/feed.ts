// The feed scenario (the service only: the floor has no feed). N server-sent-event clients on
// /v1/products/changes of the one service instance, opened gradually, while a writer merge-patches
// products through the service at a steady rate. Each client parses the stream itself and records,
// per change, the receipt time minus the change's operationTime (one machine, one clock), and
// the version of each document it saw; after the writes it must have seen every version the
// writer made, once and in order. A client the service closes reconnects with Last-Event-ID, as
// EventSource does, so a close costs no event either.
//
// The clients share two cores with the service and mongod, so they stay cheap: a line is read
// where it arrived (only one split across chunks is copied, at most LINE_BYTES of it), only the
// head of a data line is read (the change's id, version and operationTime, before the document)
// and without JSON.parse, and lags go into one shared histogram of milliseconds.

import { Agent, get, type ClientRequest } from 'node:http';
import { variables } from '../../src/config.ts';
import { cpuMs, machineBusyMs, rssMb, sampleRss } from './proc-stats.ts';
import type { RunningServer } from './processes.ts';

export interface FeedSettings {
  clients: number;
  writesPerSecond: number;
  apiKey: string;
  /** The documents the writer patches, round-robin; nothing else writes them during the scenario. */
  productIds: readonly string[];
  log(line: string): void;
}

export interface FeedRound {
  clients: number;
  connected: number;
  /** Seconds from the first connection to the last client's first frame. */
  connectSeconds: number;
  /** Answers other than 200 to the clients' requests (first or reconnect), by status; `error` for a failed connection. */
  refused: Record<string, number>;
  writes: number;
  writeErrors: number;
  /** Seconds from the first write to the last event received. */
  seconds: number;
  /** Change events received, summed over clients. */
  events: number;
  eventsPerSecond: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Versions the writer made that a client never received, summed over clients; and how many clients missed any. */
  missing: number;
  clientsMissing: number;
  /** Versions a client received again or after a later one, summed over clients; and how many clients did. */
  repeated: number;
  clientsRepeating: number;
  /** Versions received that the writer was not answered for (a write that failed at the client yet committed). */
  unexpected: number;
  /** Data lines whose id, version or operationTime could not be read. */
  malformed: number;
  /** `event: close` frames the clients got, by reason, and the reconnects that followed. */
  closed: Record<string, number>;
  reconnects: number;
  cpuMsPerEvent: number;
  /** The client side's own CPU (this process) per event, for scale. */
  clientCpuMsPerEvent: number;
  /**
   * Cores kept busy on average from the first write to the end of the drain: by the service, by
   * the clients (this process, the writer included), and by the whole machine (the rest is mongod
   * and whatever else shares it).
   */
  cores: { service: number; clients: number; machine: number };
  rssConnectedMb: number;
  peakRssMb: number;
  /** storekeeper_feed_streams a second after every client left (0 unless streams leak); undefined when not exported. */
  streamsLeft: number | undefined;
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const ZERO = 0x30;
/** Bytes of a line a client keeps: a position, or a data line's head before the document, fits well within. */
const LINE_BYTES = 1024;
const FIELD_ID = Buffer.from('id');
const FIELD_DATA = Buffer.from('data');
const FIELD_EVENT = Buffer.from('event');
const FIELD_RETRY = Buffer.from('retry');
const CLOSE = Buffer.from('close');
const KEY_ID = Buffer.from('"id":"');
const KEY_VERSION = Buffer.from('"version":');
const KEY_TIME = Buffer.from('"operationTime":"');
const KEY_REASON = Buffer.from('"reason":"');
const OBJECT_ID_CHARS = 24;
const ISO_CHARS = 24;
/** Lags above this many milliseconds share the histogram's last bucket. */
const MAX_LAG_MS = 120_000;
/** Connections opened per step, and the pause between steps. */
export const OPEN_BATCH = 100;
export const OPEN_EVERY_MS = 100;
const CONNECT_TIMEOUT_MS = 60_000;
/** The drain ends when every client has every write, or when no event arrived for this long. */
const DRAIN_IDLE_MS = 5_000;
const DRAIN_MAX_MS = 30_000;

/**
 * The service's stream caps for this scenario: the bench holds every client on its one key, and
 * the instance must take them all (its own cap is raised only past its default).
 */
export function feedServiceEnv(clients: number): Record<string, string> {
  const instanceCap = Math.max(Number(variables.FEED_MAX_STREAMS.default), clients);
  return { FEED_MAX_STREAMS_PER_KEY: String(clients), FEED_MAX_STREAMS: String(instanceCap) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What all clients of a round record into. */
interface Recorder {
  readonly lagMs: Uint32Array;
  readonly documents: ReadonlyMap<string, number>;
  readonly refused: Record<string, number>;
  readonly closed: Record<string, number>;
  lastReceipt: number;
  events: number;
}

/** Whether line[from, to) is `name` (a few bytes: compared here rather than through a native call). */
function isField(line: Buffer, from: number, to: number, name: Buffer): boolean {
  if (to - from !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (line[from + i] !== name[i]) return false;
  return true;
}

/** Where `key` ends in line[from, to), or -1. */
function after(line: Buffer, key: Buffer, from: number, to: number): number {
  const at = line.indexOf(key, from);
  return at === -1 || at + key.length > to ? -1 : at + key.length;
}

/** The decimal digits at line[at, at + count) (count 0: as many as there are before `to`), or -1. */
function digits(line: Buffer, at: number, count: number, to: number): number {
  let value = 0;
  let i = at;
  for (; i < to && (count === 0 || i < at + count); i++) {
    const digit = line[i]! - ZERO;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return i === at || (count !== 0 && i !== at + count) ? -1 : value;
}

/** Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.sssZ` at line[at], or -1. */
function isoTime(line: Buffer, at: number, to: number): number {
  if (at + ISO_CHARS > to || line[at + ISO_CHARS - 1] !== 0x5a) return -1;
  const year = digits(line, at, 4, to);
  const month = digits(line, at + 5, 2, to);
  const day = digits(line, at + 8, 2, to);
  const hours = digits(line, at + 11, 2, to);
  const minutes = digits(line, at + 14, 2, to);
  const seconds = digits(line, at + 17, 2, to);
  const ms = digits(line, at + 20, 3, to);
  if (year < 0 || month < 0 || day < 0 || hours < 0 || minutes < 0 || seconds < 0 || ms < 0) return -1;
  return Date.UTC(year, month - 1, day, hours, minutes, seconds, ms);
}

/**
 * One EventSource-like client: a streaming parser of text/event-stream (lines end with LF or
 * CRLF; chunks may split anywhere), the versions it saw per written document, and reconnection
 * with Last-Event-ID after the service closes its stream.
 */
class FeedClient {
  connected = false;
  events = 0;
  repeated = 0;
  malformed = 0;
  reconnects = 0;
  /** Distinct versions received of written documents, all told. */
  matched = 0;
  /** Distinct versions received per written document, and the last one. */
  readonly received: Uint32Array;
  readonly lastVersion: Uint32Array;
  private request: ClientRequest | undefined;
  private stopped = false;
  private retryMs = 2000;
  private readonly line = Buffer.allocUnsafe(LINE_BYTES);
  private length = 0;
  private truncated = false;
  private readonly lastId = Buffer.allocUnsafe(LINE_BYTES);
  private lastIdLength = 0;
  private now = 0;
  // The event being read.
  private hasData = false;
  private isClose = false;
  private document = -1;
  private version = -1;
  private operationTime = -1;
  private reason = '';

  constructor(
    private readonly url: string,
    private readonly agent: Agent,
    private readonly apiKey: string,
    private readonly recorder: Recorder,
  ) {
    this.received = new Uint32Array(recorder.documents.size);
    this.lastVersion = new Uint32Array(recorder.documents.size);
  }

  open(): void {
    this.length = 0;
    this.truncated = false;
    this.resetEvent();
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}`, accept: 'text/event-stream' };
    if (this.connected) headers['last-event-id'] = this.lastId.toString('latin1', 0, this.lastIdLength);
    const request = get(this.url, { agent: this.agent, headers });
    this.request = request;
    request.on('response', (response) => {
      if (response.statusCode !== 200) {
        this.refuse(String(response.statusCode));
        response.resume();
        return;
      }
      response.on('data', (chunk: Buffer) => this.feed(chunk));
      // A reset connection ends the response too: the close below reconnects.
      response.on('error', () => undefined);
      // The service ended the stream (after `event: close`, or without it): reconnect as EventSource does.
      response.on('close', () => this.reconnect());
    });
    request.on('error', () => this.refuse('error'));
  }

  stop(): void {
    this.stopped = true;
    this.request?.destroy();
  }

  private refuse(status: string): void {
    if (this.stopped) return;
    this.recorder.refused[status] = (this.recorder.refused[status] ?? 0) + 1;
    this.stopped = true;
  }

  private reconnect(): void {
    if (this.stopped) return;
    this.reconnects++;
    setTimeout(() => {
      if (!this.stopped) this.open();
    }, this.retryMs);
  }

  /** Lines wholly inside the chunk are read where they are; only a line split across chunks is copied. */
  private feed(chunk: Buffer): void {
    this.now = Date.now();
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.keep(chunk, start, chunk.length);
        return;
      }
      if (this.length === 0) this.onLine(chunk, start, lf);
      else {
        this.keep(chunk, start, lf);
        this.onLine(this.line, 0, this.length);
        this.length = 0;
        this.truncated = false;
      }
      start = lf + 1;
    }
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    const room = LINE_BYTES - this.length;
    if (to - from > room) this.truncated = true;
    if (room > 0) this.length += chunk.copy(this.line, this.length, from, Math.min(to, from + room));
  }

  private onLine(line: Buffer, start: number, end: number): void {
    if (end > start && line[end - 1] === CR) end--;
    if (end === start) {
      this.dispatch();
      return;
    }
    if (line[start] === COLON) return;
    const colon = line.indexOf(COLON, start);
    if (colon === -1 || colon >= end) return;
    const value = colon + 1 < end && line[colon + 1] === SPACE ? colon + 2 : colon + 1;
    if (isField(line, start, colon, FIELD_DATA)) {
      this.hasData = true;
      this.readData(line, value, end);
    } else if (isField(line, start, colon, FIELD_ID)) {
      // Per the EventSource rules the last event id changes as the field is read, data or not.
      if (this.truncated) this.malformed++;
      this.lastIdLength = line.copy(this.lastId, 0, value, end);
    } else if (isField(line, start, colon, FIELD_EVENT)) {
      this.isClose = isField(line, value, end, CLOSE);
    } else if (isField(line, start, colon, FIELD_RETRY)) {
      const retry = digits(line, value, 0, end);
      if (retry >= 0) this.retryMs = retry;
    }
  }

  /** The head of a data line: a change's id, version and operationTime, or a close's reason. */
  private readData(line: Buffer, from: number, to: number): void {
    const time = after(line, KEY_TIME, from, to);
    if (time === -1) {
      const reason = after(line, KEY_REASON, from, to);
      if (reason !== -1) this.reason = line.toString('utf8', reason, line.indexOf(0x22, reason));
      return;
    }
    this.operationTime = isoTime(line, time, to);
    const id = after(line, KEY_ID, from, to);
    if (id !== -1 && id + OBJECT_ID_CHARS <= to)
      this.document = this.recorder.documents.get(line.toString('latin1', id, id + OBJECT_ID_CHARS)) ?? -1;
    const version = after(line, KEY_VERSION, from, to);
    this.version = version === -1 ? -1 : digits(line, version, 0, to);
    if (this.operationTime < 0 || id === -1 || this.version < 0) this.malformed++;
  }

  private dispatch(): void {
    // The first frame (retry, the start position, `: connected`) says the subscription is open.
    this.connected = true;
    if (this.hasData) {
      if (this.isClose) {
        const closed = this.recorder.closed;
        closed[this.reason] = (closed[this.reason] ?? 0) + 1;
      } else this.record();
    }
    this.resetEvent();
  }

  private record(): void {
    const recorder = this.recorder;
    this.events++;
    recorder.events++;
    recorder.lastReceipt = this.now;
    if (this.operationTime >= 0) recorder.lagMs[Math.min(MAX_LAG_MS, Math.max(0, this.now - this.operationTime))]!++;
    const document = this.document;
    if (document < 0 || this.version < 0) return;
    if (this.version <= this.lastVersion[document]!) this.repeated++;
    else {
      this.lastVersion[document] = this.version;
      this.received[document]!++;
      this.matched++;
    }
  }

  private resetEvent(): void {
    this.hasData = false;
    this.isClose = false;
    this.document = -1;
    this.version = -1;
    this.operationTime = -1;
    this.reason = '';
  }
}

function percentile(histogram: Uint32Array, total: number, fraction: number): number {
  if (total === 0) return Number.NaN;
  const rank = Math.ceil(total * fraction);
  let seen = 0;
  for (let ms = 0; ms < histogram.length; ms++) {
    seen += histogram[ms]!;
    if (seen >= rank) return ms;
  }
  return MAX_LAG_MS;
}

/** The service's open streams as its metrics say, or undefined when it does not export them. */
async function openStreams(server: RunningServer, apiKey: string): Promise<number | undefined> {
  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${apiKey}` } });
  const match = /^storekeeper_feed_streams (\S+)$/m.exec(await response.text());
  return match === null ? undefined : Number(match[1]);
}

/** One merge patch through the service; the version it made (from the ETag), or undefined when it failed. */
async function patch(server: RunningServer, apiKey: string, id: string, amount: number): Promise<number | undefined> {
  try {
    const response = await fetch(`${server.url}/v1/products/${id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ price: { amount } }),
    });
    await response.arrayBuffer();
    const etag = response.headers.get('etag');
    return response.ok && etag !== null ? Number(etag.replaceAll('"', '')) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One round: open the clients (OPEN_BATCH every OPEN_EVERY_MS) and wait for every first frame,
 * write for `seconds` at the steady rate, wait until the clients have every write (or nothing
 * arrives any more), then compare what each client saw with what was written.
 */
export async function runFeedRound(
  server: RunningServer,
  settings: FeedSettings,
  seconds: number,
  label: string,
): Promise<FeedRound> {
  const { clients: count, writesPerSecond, apiKey } = settings;
  const productIds = [...new Set(settings.productIds)];
  const recorder: Recorder = {
    lagMs: new Uint32Array(MAX_LAG_MS + 1),
    documents: new Map(productIds.map((id, i) => [id, i])),
    refused: {},
    closed: {},
    lastReceipt: 0,
    events: 0,
  };
  const rss = sampleRss(server.pid);
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const url = `${server.url}/v1/products/changes`;
  const clients: FeedClient[] = [];
  const opening = performance.now();
  for (let i = 0; i < count; i += OPEN_BATCH) {
    for (let j = i; j < Math.min(count, i + OPEN_BATCH); j++) {
      const client = new FeedClient(url, agent, apiKey, recorder);
      clients.push(client);
      client.open();
    }
    await sleep(OPEN_EVERY_MS);
  }
  const refusedCount = () => Object.values(recorder.refused).reduce((sum, n) => sum + n, 0);
  while (
    clients.filter((client) => client.connected).length + refusedCount() < count &&
    performance.now() - opening < CONNECT_TIMEOUT_MS
  )
    await sleep(50);
  const connectSeconds = (performance.now() - opening) / 1000;
  const connected = clients.filter((client) => client.connected);
  const rssConnectedMb = rssMb(server.pid);
  settings.log(
    `feed ${label}: ${connected.length} of ${count} clients connected in ${connectSeconds.toFixed(1)} s; service RSS ${Math.round(rssConnectedMb)} MB`,
  );

  // The writer: write n starts at n / rate seconds, whatever the answers before it take.
  const written = new Uint32Array(productIds.length);
  let writeErrors = 0;
  const cpuBefore = cpuMs(server.pid);
  const clientCpuBefore = process.cpuUsage();
  const machineBefore = machineBusyMs();
  const eventsBefore = recorder.events;
  const writing = performance.now();
  const writingAt = Date.now();
  const writes = Math.round(seconds * writesPerSecond);
  const pending: Promise<void>[] = [];
  for (let n = 0; n < writes; n++) {
    const wait = writing + (n * 1000) / writesPerSecond - performance.now();
    if (wait > 0) await sleep(wait);
    const document = n % productIds.length;
    pending.push(
      patch(server, apiKey, productIds[document]!, 199 + (n % 50_000)).then((version) => {
        if (version === undefined) writeErrors++;
        else written[document]!++;
      }),
    );
  }
  await Promise.all(pending);
  const expected = written.reduce((sum, n) => sum + n, 0);

  const draining = performance.now();
  let lastEvents = recorder.events;
  let lastProgress = draining;
  while (performance.now() - draining < DRAIN_MAX_MS && performance.now() - lastProgress < DRAIN_IDLE_MS) {
    if (connected.every((client) => client.matched >= expected)) break;
    await sleep(100);
    if (recorder.events !== lastEvents) {
      lastEvents = recorder.events;
      lastProgress = performance.now();
    }
  }
  const cpu = cpuMs(server.pid) - cpuBefore;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const machine = machineBusyMs() - machineBefore;
  const wallMs = performance.now() - writing;
  const clientCpuMs = (clientCpu.user + clientCpu.system) / 1000;
  const events = recorder.events - eventsBefore;
  const elapsed = Math.max(1, (events > 0 ? recorder.lastReceipt : Date.now()) - writingAt) / 1000;

  for (const client of clients) client.stop();
  agent.destroy();
  await sleep(1000);
  const streamsLeft = await openStreams(server, apiKey).catch(() => undefined);
  const peakRssMb = rss.stop();

  let missing = 0;
  let clientsMissing = 0;
  let repeated = 0;
  let clientsRepeating = 0;
  let unexpected = 0;
  for (const client of connected) {
    let own = 0;
    for (let document = 0; document < written.length; document++) {
      own += Math.max(0, written[document]! - client.received[document]!);
      unexpected += Math.max(0, client.received[document]! - written[document]!);
    }
    missing += own;
    if (own > 0) clientsMissing++;
    repeated += client.repeated;
    if (client.repeated > 0) clientsRepeating++;
  }
  const lagCount = recorder.lagMs.reduce((sum, n) => sum + n, 0);
  let lagMaxMs = 0;
  recorder.lagMs.forEach((n, ms) => {
    if (n > 0) lagMaxMs = ms;
  });
  return {
    clients: count,
    connected: connected.length,
    connectSeconds,
    refused: recorder.refused,
    writes: expected,
    writeErrors,
    seconds: elapsed,
    events,
    eventsPerSecond: events / elapsed,
    lagP50Ms: percentile(recorder.lagMs, lagCount, 0.5),
    lagP99Ms: percentile(recorder.lagMs, lagCount, 0.99),
    lagMaxMs,
    missing,
    clientsMissing,
    repeated,
    clientsRepeating,
    unexpected,
    malformed: clients.reduce((sum, client) => sum + client.malformed, 0),
    closed: recorder.closed,
    reconnects: clients.reduce((sum, client) => sum + client.reconnects, 0),
    cpuMsPerEvent: cpu / Math.max(events, 1),
    clientCpuMsPerEvent: clientCpuMs / Math.max(events, 1),
    cores: { service: cpu / wallMs, clients: clientCpuMs / wallMs, machine: machine / wallMs },
    rssConnectedMb,
    peakRssMb,
    streamsLeft,
  };
}
