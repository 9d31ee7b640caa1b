// The load a scenario runs through its fault: writers creating products and loops placing
// orders, every logical write with an Idempotency-Key of its own and retried by the contract,
// and a readiness probe every second. Also seeds the shop the orders need, and re-sends what
// had no definitive answer once MongoDB is back.

import { INITIAL_STOCK, ORDER_LOOPS, PRODUCT_WRITERS, READINESS_POLL_MS } from './bounds.ts';
import {
  KEY_BUDGET_MS,
  judge,
  probeReadiness,
  sleep,
  type FaultClient,
  type LogicalWrite,
  type Probe,
} from './client.ts';

export const WAREHOUSE = 'FLT-1';

export interface Shop {
  skus: string[];
  customerIds: string[];
  /** available per SKU when the load starts. */
  initialStock: Map<string, number>;
}

/** Products, customers and stock, created through the API before anything fails. */
export async function seedShop(baseUrl: string, apiKey: string): Promise<Shop> {
  const create = async (path: string, body: Record<string, unknown>) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`seeding ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as { id: string };
  };
  const skus = ['SEED-A', 'SEED-B', 'SEED-C', 'SEED-D'];
  const initialStock = new Map<string, number>();
  for (const [i, sku] of skus.entries()) {
    await create('/v1/products', {
      sku,
      name: `Seeded ${sku}`,
      price: { amount: 100 * (i + 1), currency: 'EUR' },
      category: 'faults',
      status: 'active',
    });
    await create('/v1/stock', { sku, warehouse: WAREHOUSE, available: INITIAL_STOCK });
    initialStock.set(sku, INITIAL_STOCK);
  }
  const customerIds: string[] = [];
  for (let i = 0; i < ORDER_LOOPS; i++) {
    customerIds.push(
      (await create('/v1/customers', { email: `buyer-${i}@faults.example.com`, name: `Buyer ${i}` })).id,
    );
  }
  return { skus, customerIds, initialStock };
}

export class Load {
  readonly probes: Probe[] = [];
  private stopped = false;
  private readonly cutOff = () => this.stopped;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly client: FaultClient,
    private readonly shop: Shop,
    /** Upper-case letters and digits: it starts every generated SKU. */
    private readonly tag: string,
  ) {}

  start(): void {
    for (let w = 0; w < PRODUCT_WRITERS; w++) this.loops.push(this.productLoop(w));
    for (let o = 0; o < ORDER_LOOPS; o++) this.loops.push(this.orderLoop(o));
    this.loops.push(this.readinessLoop());
  }

  /** Resolves at the first 200 from /health/ready for a probe sent at or after `since`. */
  async readyAfter(since: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.probes.some((probe) => probe.startedAt >= since && probe.status === 200)) {
      if (Date.now() > deadline)
        throw new Error(`/health/ready did not answer 200 within ${timeoutMs} ms of the repair`);
      await sleep(100);
    }
  }

  /**
   * No new writes, and those still retrying stop after the attempt in flight: what they are owed
   * is asked again once the load is over (resend).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async productLoop(w: number): Promise<void> {
    for (let n = 1; !this.stopped; n++) {
      const sku = `${this.tag}-W${w}-${n}`;
      const body = {
        sku,
        name: `Fault ${sku}`,
        price: { amount: 1000 + (n % 100), currency: 'EUR' },
        category: 'faults',
        status: 'active',
      };
      const write = this.client.newWrite('product', `${this.tag}.w${w}.${n}`, '/v1/products', body, sku);
      await this.client.send(write, { phase: 'load', budgetMs: KEY_BUDGET_MS, stop: this.cutOff });
    }
  }

  private async orderLoop(o: number): Promise<void> {
    const { skus, customerIds } = this.shop;
    for (let n = 1; !this.stopped; n++) {
      const first = skus[(o + n) % skus.length]!;
      const second = skus[(o + n + 1) % skus.length]!;
      // One line or two, of varying quantities: the ledger check then covers multi-item reservations.
      const lines =
        n % 2 === 0
          ? [{ sku: first, quantity: 1 + (n % 3) }]
          : [
              { sku: first, quantity: 1 },
              { sku: second, quantity: 2 },
            ];
      const body = { customerId: customerIds[o % customerIds.length]!, warehouse: WAREHOUSE, lines };
      const write = this.client.newWrite('order', `${this.tag}.o${o}.${n}`, '/v1/orders', body);
      await this.client.send(write, { phase: 'load', budgetMs: KEY_BUDGET_MS, stop: this.cutOff });
    }
  }

  private async readinessLoop(): Promise<void> {
    while (!this.stopped) {
      const probe = await probeReadiness(this.client.baseUrl);
      this.probes.push(probe);
      await sleep(Math.max(0, READINESS_POLL_MS - probe.elapsedMs));
    }
  }
}

/** The writes whose last answer was not a 2xx: what the service owes an answer once it is back. */
export function unsettled(client: FaultClient): LogicalWrite[] {
  return client.writes.filter((write) => {
    const last = write.attempts.at(-1);
    return last === undefined || judge(last).outcome !== 'acknowledged';
  });
}

/**
 * Sends the last request of every unsettled write again (same key, same body), retrying by the
 * contract for at most `budgetMs` each, all at once: a blocked key costs its budget, not a queue.
 */
export async function resend(client: FaultClient, writes: LogicalWrite[], budgetMs: number): Promise<void> {
  await Promise.all(writes.map((write) => client.send(write, { phase: 'recovery', budgetMs })));
}
