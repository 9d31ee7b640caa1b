// Reads back what MongoDB holds after a scenario (through the driver, majority read concern),
// matches it to what clients were told, and turns both into the scenario's figures: the line it
// prints and what its assertions judge.
//
// Matching: a product by the SKU generated for its logical write; an order by the audit entry its
// placement wrote in the same transaction, whose requestId is the X-Request-Id of the attempt
// that committed it (<write id>.<attempt number>). That attempt's own answer then says whether
// the service told a client "not written" about a write it had made.

import mongoose from 'mongoose';
import type { LogLine } from '../helpers/app.ts';
import { ANSWER_BOUND_MS, READINESS_BOUND_MS } from './bounds.ts';
import { judge, saidNotWritten, type Attempt, type FaultClient, type LogicalWrite, type Probe } from './client.ts';
import type { Shop } from './load.ts';

const OPEN_STATUSES = new Set(['placed', 'paid']);

interface StoredOrder {
  id: string;
  status: string;
  lines: { sku: string; quantity: number }[];
}

interface StockItem {
  sku: string;
  available: number;
  reserved: number;
  shipped: number;
}

export interface Stored {
  /** Products by SKU (only those the load generated). */
  productsBySku: Map<string, string[]>;
  productIds: Set<string>;
  orders: Map<string, StoredOrder>;
  /** Document id -> X-Request-Id of the request whose transaction created it, from the audit trail. */
  creators: Map<string, string>;
  stock: Map<string, StockItem>;
}

export async function readBack(uri: string, dbName: string, warehouse: string): Promise<Stored> {
  const client = await new mongoose.mongo.MongoClient(uri, {
    readConcernLevel: 'majority',
    serverSelectionTimeoutMS: 30_000,
  }).connect();
  try {
    const db = client.db(dbName);
    const [products, orders, audit, stock] = await Promise.all([
      db
        .collection('products')
        .find({ sku: { $not: /^SEED-/ } }, { projection: { sku: 1 } })
        .toArray(),
      db
        .collection('orders')
        .find({}, { projection: { status: 1, lines: 1 } })
        .toArray(),
      db
        .collection('audit_events')
        .find(
          { action: { $in: ['create', 'place'] }, collection: { $in: ['products', 'orders'] } },
          { projection: { documentId: 1, requestId: 1 } },
        )
        .toArray(),
      db
        .collection('stock')
        .find({ warehouse }, { projection: { sku: 1, available: 1, reserved: 1, shipped: 1 } })
        .toArray(),
    ]);
    const productsBySku = new Map<string, string[]>();
    for (const product of products) {
      const ids = productsBySku.get(product.sku) ?? [];
      ids.push(product._id.toHexString());
      productsBySku.set(product.sku, ids);
    }
    return {
      productsBySku,
      productIds: new Set(products.map((product) => product._id.toHexString())),
      orders: new Map(
        orders.map((order) => [
          order._id.toHexString(),
          { id: order._id.toHexString(), status: order.status, lines: order.lines },
        ]),
      ),
      creators: new Map(audit.map((entry) => [entry.documentId as string, entry.requestId as string])),
      stock: new Map(stock.map((item) => [item.sku as string, item as unknown as StockItem])),
    };
  } finally {
    await client.close();
  }
}

export interface Slowest {
  ms: number;
  what: string;
}

export interface Figures {
  scenario: string;
  requests: number;
  writes: number;
  acknowledged: number;
  /** Each list names the logical writes (or attempts) behind its count, for the report. */
  lost: string[];
  saidNotWrittenButStored: string[];
  blocked: string[];
  undecided: string[];
  serverErrors: string[];
  duplicates: string[];
  refused: string[];
  unattributedOrders: string[];
  ledger: string[];
  slowest: Record<string, Slowest>;
  overBound: string[];
  readinessOverBound: string[];
  errorLogs: LogLine[];
  serviceExit: number | null | undefined;
  /** How many answers of each kind, e.g. "503 service-unavailable": 12. */
  answers: Record<string, number>;
  timeline?: string;
  /** The longest the load clients' own event loop stalled: what the answer times may be off by. */
  clientLagMs?: number;
}

export interface TallyInput {
  scenario: string;
  client: FaultClient;
  probes: Probe[];
  stored: Stored;
  shop: Shop;
  errorLogs: LogLine[];
  serviceExit: number | null | undefined;
}

export function tally({ scenario, client, probes, stored, shop, errorLogs, serviceExit }: TallyInput): Figures {
  const { writes } = client;
  const attempts = writes.flatMap((write) => write.attempts.map((attempt) => ({ write, attempt })));
  const ordersOf = ordersByWrite(writes, stored);
  const f: Figures = {
    scenario,
    requests: attempts.length,
    writes: writes.length,
    acknowledged: 0,
    lost: [],
    saidNotWrittenButStored: [],
    blocked: [],
    undecided: [],
    serverErrors: [],
    duplicates: [],
    refused: [],
    unattributedOrders: [],
    ledger: [],
    slowest: {},
    overBound: [],
    readinessOverBound: [],
    errorLogs,
    serviceExit,
    answers: {},
  };

  for (const write of writes) {
    const last = write.attempts.at(-1)!;
    const verdict = judge(last);
    const ids =
      write.kind === 'product' ? (stored.productsBySku.get(write.sku!) ?? []) : [...(ordersOf.get(write.id) ?? [])];
    if (verdict.outcome === 'acknowledged') {
      f.acknowledged++;
      const found =
        write.kind === 'product'
          ? stored.productIds.has(write.createdId ?? '')
          : stored.orders.has(write.createdId ?? '');
      if (!found) f.lost.push(`${write.id} (${write.kind} ${write.createdId ?? 'without an id'})`);
    } else if (verdict.outcome === 'refused') {
      f.refused.push(`${write.id} ${answerName(last)}`);
    } else if (verdict.outcome === 'in-progress') {
      f.blocked.push(`${write.id} (${write.attempts.filter((a) => a.phase === 'recovery').length} re-sends)`);
    } else if (!verdict.final) {
      f.undecided.push(`${write.id} ${answerName(last)}`);
    }
    if (ids.length > 1) f.duplicates.push(`${write.id} (${write.kind}: ${ids.join(', ')})`);
    const lie = ids.length > 0 ? notWrittenAnswerAbout(write, ids, stored) : undefined;
    if (lie !== undefined) f.saidNotWrittenButStored.push(`${write.id} ${lie}`);
  }

  for (const { write, attempt } of attempts) {
    const name = answerName(attempt);
    f.answers[name] = (f.answers[name] ?? 0) + 1;
    if (attempt.status !== undefined && attempt.status >= 500 && attempt.status !== 503)
      f.serverErrors.push(`${attempt.requestId} ${name}`);
    const route = `POST ${write.path}`;
    noteSlowest(f, route, attempt.elapsedMs, `${attempt.requestId} ${name}`);
    if (attempt.elapsedMs > ANSWER_BOUND_MS)
      f.overBound.push(`${attempt.requestId} ${Math.round(attempt.elapsedMs)} ms ${name}`);
  }
  for (const probe of probes) {
    const name = probe.status === undefined ? 'no answer' : String(probe.status);
    noteSlowest(f, 'GET /health/ready', probe.elapsedMs, name);
    if (probe.elapsedMs > READINESS_BOUND_MS) f.readinessOverBound.push(`${Math.round(probe.elapsedMs)} ms ${name}`);
  }

  const claimed = new Set([...ordersOf.values()].flatMap((ids) => [...ids]));
  for (const id of stored.orders.keys()) if (!claimed.has(id)) f.unattributedOrders.push(id);
  f.ledger = checkLedger(writes, stored, shop);
  return f;
}

/** Orders per logical write: those its attempts' audit entries name, and the id it was answered with. */
function ordersByWrite(writes: LogicalWrite[], stored: Stored): Map<string, Set<string>> {
  const byRequest = new Map<string, string>();
  for (const [documentId, requestId] of stored.creators)
    if (stored.orders.has(documentId)) byRequest.set(requestId, documentId);
  const result = new Map<string, Set<string>>();
  for (const write of writes) {
    if (write.kind !== 'order') continue;
    const ids = new Set<string>();
    for (const attempt of write.attempts) {
      const id = byRequest.get(attempt.requestId);
      if (id !== undefined) ids.add(id);
    }
    if (write.createdId !== undefined && stored.orders.has(write.createdId)) ids.add(write.createdId);
    result.set(write.id, ids);
  }
  return result;
}

/**
 * A write is stored, yet the client was told it was not: the attempt that committed it was
 * answered "not written", or the last answer for its key (what a client that stops there
 * believes) says so.
 */
function notWrittenAnswerAbout(write: LogicalWrite, ids: string[], stored: Stored): string | undefined {
  for (const id of ids) {
    const requestId = stored.creators.get(id);
    const committing = write.attempts.find((attempt) => attempt.requestId === requestId);
    if (committing !== undefined && saidNotWritten(committing))
      return `attempt ${committing.requestId} committed and was answered ${answerName(committing)}`;
  }
  const last = write.attempts.at(-1)!;
  return saidNotWritten(last) ? `stored, and its last answer was ${answerName(last)}` : undefined;
}

/**
 * Every unit is accounted for: what each item had, minus what the orders took (every stored order,
 * and any acknowledged one that is missing), is what it has; the open orders hold what is reserved.
 */
function checkLedger(writes: LogicalWrite[], stored: Stored, shop: Shop): string[] {
  const orders: StoredOrder[] = [...stored.orders.values()];
  for (const write of writes) {
    const acknowledged =
      write.kind === 'order' &&
      write.createdId !== undefined &&
      judge(write.attempts.at(-1)!).outcome === 'acknowledged';
    if (acknowledged && !stored.orders.has(write.createdId!)) {
      orders.push({ id: write.createdId!, status: 'placed', lines: write.body.lines as StoredOrder['lines'] });
    }
  }
  const problems: string[] = [];
  for (const [sku, initial] of shop.initialStock) {
    const lines = orders.flatMap((order) =>
      order.lines
        .filter((line) => line.sku === sku)
        .map((line) => ({ ...line, open: OPEN_STATUSES.has(order.status) })),
    );
    const taken = lines.reduce((sum, line) => sum + line.quantity, 0);
    const held = lines.reduce((sum, line) => sum + (line.open ? line.quantity : 0), 0);
    const item = stored.stock.get(sku);
    if (item === undefined) {
      problems.push(`${sku}: stock item missing`);
      continue;
    }
    if (item.available !== initial - taken)
      problems.push(`${sku}: available ${item.available}, expected ${initial} - ${taken} = ${initial - taken}`);
    if (item.reserved !== held)
      problems.push(`${sku}: reserved ${item.reserved}, expected ${held} held by open orders`);
    if (item.shipped !== 0) problems.push(`${sku}: shipped ${item.shipped}, expected 0`);
  }
  return problems;
}

function noteSlowest(f: Figures, route: string, ms: number, what: string): void {
  if ((f.slowest[route]?.ms ?? -1) < ms) f.slowest[route] = { ms: Math.round(ms), what };
}

export function answerName(attempt: Attempt): string {
  if (attempt.status === undefined) return `no answer (${attempt.error ?? 'unknown'})`;
  const type = attempt.problemType?.replace('urn:storekeeper:problem:', '');
  return [String(attempt.status), type, attempt.replayed ? 'replayed' : undefined].filter(Boolean).join(' ');
}

const EXAMPLES = 3;

/** The figures line, then what lies behind each non-zero finding. */
export function report(f: Figures): string {
  const slowest = Object.entries(f.slowest)
    .map(([route, s]) => `${route} ${s.ms} ms`)
    .join(', ');
  const lines = [
    `[faults] ${f.scenario}: requests=${f.requests} writes=${f.writes} acknowledged=${f.acknowledged} lost=${f.lost.length} ` +
      `said-not-written-but-stored=${f.saidNotWrittenButStored.length} blocked-after-recovery=${f.blocked.length + f.undecided.length} ` +
      `500s=${f.serverErrors.length} duplicates=${f.duplicates.length} refused=${f.refused.length} ` +
      `slowest=${Math.max(0, ...Object.values(f.slowest).map((s) => s.ms))} ms over-bound=${f.overBound.length} ` +
      `readiness-over-bound=${f.readinessOverBound.length} error-logs=${f.errorLogs.length} ledger=${f.ledger.length === 0 ? 'exact' : `${f.ledger.length} off`}`,
    `  slowest per route: ${slowest}; client event-loop lag at most ${f.clientLagMs ?? '?'} ms`,
    `  timeline: ${f.timeline ?? '?'}`,
    `  answers: ${Object.entries(f.answers)
      .sort(([, a], [, b]) => b - a)
      .map(([name, count]) => `${name} x${count}`)
      .join(', ')}`,
  ];
  const detail = (label: string, items: string[]) => {
    if (items.length > 0)
      lines.push(
        `  ${label} (${items.length}): ${items.slice(0, EXAMPLES).join('; ')}${items.length > EXAMPLES ? '; ...' : ''}`,
      );
  };
  detail('lost', f.lost);
  detail('said not written but stored', f.saidNotWrittenButStored);
  detail('blocked (409 in progress after recovery)', f.blocked);
  detail('no definitive answer after recovery', f.undecided);
  detail('500s', f.serverErrors);
  detail('duplicates', f.duplicates);
  detail('valid requests refused', f.refused);
  detail('orders matched to no write', f.unattributedOrders);
  detail('stock ledger', f.ledger);
  detail(`answers over ${ANSWER_BOUND_MS} ms`, f.overBound);
  detail(`readiness answers over ${READINESS_BOUND_MS} ms`, f.readinessOverBound);
  detail('log lines at level >= 50', summarizeLogs(f.errorLogs));
  if (f.serviceExit !== undefined) lines.push(`  the service exited on its own with ${f.serviceExit}`);
  return lines.join('\n');
}

/** Log lines grouped by message and error, most frequent first. */
function summarizeLogs(logs: LogLine[]): string[] {
  const counts = new Map<string, number>();
  for (const line of logs) {
    const err = line.err as { type?: string; message?: string } | undefined;
    const name = `${line.msg ?? ''}${err ? ` [${err.type ?? 'Error'}: ${(err.message ?? '').slice(0, 120)}]` : ''}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts.entries()].sort(([, a], [, b]) => b - a).map(([name, count]) => `${count}x ${name}`);
}
