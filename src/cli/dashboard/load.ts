// The load `npm run ops:dashboard` drives while it scrapes: a shop's day in a minute, open-loop
// (requests start on a schedule, not when earlier ones end, up to a bound in flight) at a rate
// that rises, holds, bursts and settles, so that the panels have a shape. The mix is what the
// shop's other services send: reads by id (the cache's hits), lists (the expensive requests),
// order placements, some of them for more than a shelf holds (409 insufficient-stock) and some
// with an Idempotency-Key sent twice (a replay), the orders' transitions (a few not allowed from
// their status: 409 invalid-transition), restocks, and the odd request for an id that does not
// exist (404), an e-mail already taken (409 duplicate) or a limit above the maximum (400). The
// choices come from a seeded generator, so two runs send the same requests at the same times.

import { Random } from '../seeded-random.ts';

export interface Target {
  url: string;
  apiKey: string;
}

export interface LoadReport {
  /** Requests answered, by kind and status. */
  answered: Record<string, Record<string, number>>;
  /** Requests that got no answer (a connection error or the client's timeout). */
  failed: number;
  /** Requests due while too many were in flight: not sent, so the load stays bounded. */
  skipped: number;
}

/** Requests per second along the run, as [fraction of the run, rate] points joined by straight lines. */
const PROFILE: readonly (readonly [number, number])[] = [
  [0, 8],
  [0.15, 40],
  [0.4, 40],
  [0.47, 80],
  [0.67, 80],
  [0.74, 30],
  [1, 30],
];
const MAX_IN_FLIGHT = 48;
const TICK_MS = 20;
const REQUEST_TIMEOUT_MS = 15_000;
/** When a placement is sent again with its Idempotency-Key: after its answer, as a client that missed it would. */
const RETRY_AFTER_MS = 3000;

function rateAt(fraction: number): number {
  let [x0, y0] = [0, 0];
  for (const [x1, y1] of PROFILE) {
    if (fraction <= x1) return x1 === x0 ? y1 : y0 + ((y1 - y0) * (fraction - x0)) / (x1 - x0);
    [x0, y0] = [x1, y1];
  }
  return y0;
}

interface StockItem {
  sku: string;
  warehouse: string;
  available: number;
}

interface Catalog {
  productIds: string[];
  categories: string[];
  customerIds: string[];
  /** A customer as a client writes one, its e-mail already taken. */
  takenCustomer: Record<string, unknown>;
  /** Per warehouse, the items with a few units at least; and the shelves the seed left empty. */
  inStock: Map<string, StockItem[]>;
  empty: StockItem[];
}

interface Order {
  id: string;
  status: 'placed' | 'paid' | 'shipped' | 'delivered' | 'cancelled';
}

interface Request {
  kind: string;
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** What the answer changes in what the load knows (the orders it placed and their status). */
  then?: (status: number, body: unknown) => void;
}

async function call(
  target: Target,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${target.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${target.apiKey}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, body: parsed };
}

/** Every item of a list, following its `next` links. */
async function listAll<T>(target: Target, path: string): Promise<T[]> {
  const items: T[] = [];
  let next: string | null | undefined = path;
  while (typeof next === 'string') {
    const { status, body } = await call(target, 'GET', next);
    if (status !== 200) throw new Error(`GET ${next} answered ${status}`);
    const page = body as { items: T[]; next?: string | null };
    items.push(...page.items);
    next = page.next;
  }
  return items;
}

/** What the shop holds, read through the API before the load starts. */
export async function readCatalog(target: Target): Promise<Catalog> {
  const products = await listAll<{ id: string; category: string; status: string }>(
    target,
    '/v1/products?limit=200&fields=category,status',
  );
  const customers = await listAll<Record<string, unknown> & { id: string }>(target, '/v1/customers?limit=200');
  const stock = await listAll<StockItem>(target, '/v1/stock?limit=200&fields=sku,warehouse,available');
  const first = customers[0];
  if (products.length === 0 || first === undefined || stock.length === 0)
    throw new Error('the shop has no products, customers or stock: start it with the demo data');
  const { id: _, version: _v, createdAt: _c, updatedAt: _u, stats: _s, ...takenCustomer } = first;
  const inStock = new Map<string, StockItem[]>();
  for (const item of stock)
    if (item.available >= 20) inStock.set(item.warehouse, [...(inStock.get(item.warehouse) ?? []), item]);
  return {
    productIds: products.map((product) => product.id),
    categories: [...new Set(products.map((product) => product.category))].sort(),
    customerIds: customers.map((customer) => customer.id),
    takenCustomer,
    inStock,
    empty: stock.filter((item) => item.available === 0),
  };
}

/** The requests of the mix, each drawn with its weight. */
function planner(catalog: Catalog, random: Random) {
  const orders: Order[] = [];
  /** Placements to send again, and when (ms into the run). */
  const replays: { at: number; request: Request }[] = [];
  let now = 0;
  const hex = (digits: number) => Array.from({ length: digits }, () => random.int(0, 15).toString(16)).join('');
  const warehouses = [...catalog.inStock.keys()].sort();
  const anyInStock = () => random.pick(catalog.inStock.get(random.pick(warehouses)) ?? []);

  const placement = (): Request => {
    const warehouse = random.pick(warehouses);
    let lines = random
      .some(catalog.inStock.get(warehouse) ?? [], 1, 3)
      .map((item) => ({ sku: item.sku, quantity: random.int(1, 3) }));
    // One in six asks for a shelf the seed left empty: 409 insufficient-stock.
    const short = random.chance(1 / 6) && catalog.empty.length > 0 ? random.pick(catalog.empty) : undefined;
    if (short !== undefined) lines = [{ sku: short.sku, quantity: 1 }];
    const body = { customerId: random.pick(catalog.customerIds), warehouse: short?.warehouse ?? warehouse, lines };
    const request: Request = {
      kind: 'place order',
      method: 'POST',
      path: '/v1/orders',
      body,
      then: (status, answer) => {
        if (status === 201) orders.push({ id: (answer as { id: string }).id, status: 'placed' });
      },
    };
    if (random.chance(0.5)) {
      request.headers = { 'idempotency-key': `dashboard-${hex(16)}` };
      // A client that did not see the answer sends it again: a replay, not a second order.
      if (random.chance(0.2))
        replays.push({
          at: now + RETRY_AFTER_MS,
          request: { ...request, kind: 'place order (retry)', then: undefined },
        });
    }
    return request;
  };

  const transition = (): Request | undefined => {
    const open = orders.filter((order) => order.status !== 'delivered' && order.status !== 'cancelled');
    if (open.length === 0) return undefined;
    const order = random.pick(open);
    const next: Record<string, string> = {
      placed: random.chance(0.75) ? 'pay' : 'cancel',
      paid: 'ship',
      shipped: 'deliver',
    };
    // Now and then a step the order's status does not allow: 409 invalid-transition.
    const action = random.chance(0.12) ? 'deliver' : (next[order.status] ?? 'pay');
    const after: Record<string, Order['status']> = {
      pay: 'paid',
      ship: 'shipped',
      deliver: 'delivered',
      cancel: 'cancelled',
    };
    return {
      kind: 'order transition',
      method: 'POST',
      path: `/v1/orders/${order.id}/${action}`,
      then: (status) => {
        if (status === 200) order.status = after[action] ?? order.status;
      },
    };
  };

  const MIX: readonly (readonly [() => Request | undefined, number])[] = [
    [() => ({ kind: 'read product', method: 'GET', path: `/v1/products/${random.pick(catalog.productIds)}` }), 30],
    [() => ({ kind: 'read customer', method: 'GET', path: `/v1/customers/${random.pick(catalog.customerIds)}` }), 8],
    [
      () => ({
        kind: 'list products',
        method: 'GET',
        path: `/v1/products?category=${random.pick(catalog.categories)}&limit=20${random.chance(0.5) ? '&sort=-price.amount' : ''}`,
      }),
      12,
    ],
    [() => ({ kind: 'list stock', method: 'GET', path: `/v1/stock?sku=${anyInStock().sku}` }), 5],
    [
      () => ({
        kind: 'list orders',
        method: 'GET',
        path: `/v1/orders?customerId=${random.pick(catalog.customerIds)}&limit=10`,
      }),
      5,
    ],
    [placement, 20],
    [transition, 9],
    [
      () => {
        const item = anyInStock();
        return {
          kind: 'restock',
          method: 'POST',
          path: '/v1/stock/restock',
          body: { sku: item.sku, warehouse: item.warehouse, quantity: random.int(10, 50) },
        };
      },
      3,
    ],
    [
      () => ({
        kind: 'missing',
        method: 'GET',
        path: `/v1/${random.pick(['products', 'customers', 'orders'])}/${hex(24)}`,
      }),
      4,
    ],
    [() => ({ kind: 'duplicate customer', method: 'POST', path: '/v1/customers', body: catalog.takenCustomer }), 2],
    [() => ({ kind: 'bad list', method: 'GET', path: '/v1/products?limit=1000' }), 1],
  ];

  return (elapsed: number): Request => {
    now = elapsed;
    const [replay] = replays;
    if (replay !== undefined && replay.at <= now) {
      replays.shift();
      return replay.request;
    }
    for (;;) {
      const request = random.weighted(MIX)();
      if (request !== undefined) return request;
    }
  };
}

/** Drives the mix for `seconds` from now; resolves once every request sent has its answer. */
export async function driveLoad(target: Target, catalog: Catalog, seconds: number): Promise<LoadReport> {
  const random = new Random('ops-dashboard');
  const next = planner(catalog, random);
  const report: LoadReport = { answered: {}, failed: 0, skipped: 0 };
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const durationMs = seconds * 1000;
  let due = 0;
  let launched = 0;
  let before = 0;

  const send = (request: Request) => {
    const done = call(target, request.method, request.path, request.body, request.headers).then(
      ({ status, body }) => {
        const byStatus = (report.answered[request.kind] ??= {});
        byStatus[status] = (byStatus[status] ?? 0) + 1;
        request.then?.(status, body);
      },
      () => {
        report.failed++;
      },
    );
    const tracked = done.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  for (let elapsed = 0; elapsed < durationMs; elapsed = performance.now() - started) {
    due += (rateAt(elapsed / durationMs) * (elapsed - before)) / 1000;
    before = elapsed;
    while (launched + 1 <= due) {
      launched++;
      if (inFlight.size >= MAX_IN_FLIGHT) report.skipped++;
      else send(next(elapsed));
    }
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  await Promise.all(inFlight);
  return report;
}
