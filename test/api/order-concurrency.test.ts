import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transactionOutcomes, transactionRetries } from '../../src/data/transactions.ts';
import { buildAppOn, buildTestApp, waitForDatabase, type TestApp } from '../helpers/app.ts';
import { shop, type Shop } from '../helpers/shop.ts';

const RETRIED = 'transaction retried after a transient error';

// What is tested here is which placements win, not how fast: 200 requests queue for one stock
// item, and on a busy machine the last of them may wait longer than the default deadline, and
// longer than the default wait for a pooled connection (2 s, after which the answer is 503).
const UNHURRIED = { REQUEST_DEADLINE_MS: '120000', MONGODB_WAIT_QUEUE_TIMEOUT_MS: '120000' };

/** Another instance of the service on a test database (built by the same factory). */
async function anotherInstance(t: TestApp): Promise<TestApp> {
  const other = await buildAppOn(t.dbName, t.key, UNHURRIED);
  await waitForDatabase(other.app);
  return other;
}

describe('orders under concurrency', () => {
  let t: TestApp;
  let s: Shop;

  beforeAll(async () => {
    t = await buildTestApp('order_concurrency', UNHURRIED);
    await waitForDatabase(t.app);
    s = shop(t.app);
  });
  afterAll(() => t.app.close());

  describe.each([
    { instances: 1, sku: 'RUSH-1' },
    { instances: 2, sku: 'RUSH-2' },
  ])(
    '200 concurrent placements of one unit each, with 50 units in stock, over $instances instance(s)',
    ({ instances, sku }) => {
      const STOCKED = 50;
      const ATTEMPTS = 200;
      let statuses: number[];
      let bodies: Record<string, any>[];
      let samples: { available: number; reserved: number; shipped: number }[];
      let retriesBefore: number;
      let gaveUpBefore: number;
      let retryLinesBefore: number;
      let others: TestApp[];

      const retryLines = () =>
        [t, ...others].flatMap((app) => app.logs.lines).filter((line) => line.msg === RETRIED).length;

      beforeAll(async () => {
        // Further instances of the service on the same database, as behind a load balancer: each
        // has its own connection pool and its own turns, so theirs meet in MongoDB.
        others = [];
        for (let i = 1; i < instances; i++) others.push(await anotherInstance(t));
        const apps = [t, ...others].map((instance) => shop(instance.app));

        await s.product(sku, { amount: 1999 });
        await s.stock(sku, 'AMS-1', STOCKED);
        const customers: string[] = [];
        for (let i = 0; i < 10; i++) customers.push((await s.customer()).id);
        retriesBefore = transactionRetries.transient;
        gaveUpBefore = transactionOutcomes.notWritten;
        retryLinesBefore = retryLines();

        // Reads the committed stock document over and over while the placements run.
        samples = [];
        const sampling = new AbortController();
        const stock = t.app.db.connection.db!.collection('stock');
        const sampler = (async () => {
          while (!sampling.signal.aborted) {
            const item = await stock.findOne({ sku, warehouse: 'AMS-1' });
            samples.push({ available: item!.available, reserved: item!.reserved, shipped: item!.shipped });
            await new Promise((resolve) => setImmediate(resolve));
          }
        })();

        const started = Date.now();
        const responses = await Promise.all(
          Array.from({ length: ATTEMPTS }, (_, i) =>
            apps[i % apps.length]!.place(customers[i % customers.length]!, 'AMS-1', [{ sku, quantity: 1 }]),
          ),
        );
        const elapsedMs = Date.now() - started;
        sampling.abort();
        await sampler;
        statuses = responses.map((res) => res.statusCode);
        bodies = responses.map((res) => res.json());
        // The run's figures, for whoever reads the test output.
        console.log(
          `200 placements over ${instances} instance(s): ${statuses.filter((x) => x === 201).length} x 201, ` +
            `${statuses.filter((x) => x === 409).length} x 409, ${transactionRetries.transient - retriesBefore} transaction retries ` +
            `(${transactionOutcomes.notWritten - gaveUpBefore} given up), ` +
            `${samples.length} stock samples, ${elapsedMs} ms`,
        );
      });
      afterAll(async () => {
        for (const other of others) await other.app.close();
      });

      it('exactly 50 succeed with 201 and every other one gets a 409 insufficient-stock, none a 5xx', () => {
        // The problem documents themselves, so that a failure says which refusal it was.
        expect(bodies.filter((body) => body.status >= 500)).toEqual([]);
        expect(statuses.filter((status) => status >= 500)).toEqual([]);
        expect(statuses.filter((status) => status === 201)).toHaveLength(STOCKED);
        expect(statuses.filter((status) => status === 409)).toHaveLength(ATTEMPTS - STOCKED);
        for (const body of bodies.filter((b) => b.status === 409)) {
          expect(body.type).toBe('urn:storekeeper:problem:insufficient-stock');
          expect(body.shortages).toEqual([{ sku, warehouse: 'AMS-1', requested: 1, available: 0 }]);
        }
      });

      it('the stock ends with nothing available and 50 reserved, and no unit was created or lost', async () => {
        const item = await s.storedStock(sku, 'AMS-1');
        expect(item).toMatchObject({ available: 0, reserved: STOCKED, shipped: 0 });
        expect(item!.available + item!.reserved + item!.shipped).toBe(STOCKED);
        // Every reservation bumped the version once, and nothing else did.
        expect(item!.version).toBe(1 + STOCKED);
      });

      it('exactly 50 orders are stored, one per 201, each for one unit', async () => {
        const orders = await t.app.db.connection.db!.collection('orders').find({ 'lines.sku': sku }).toArray();
        expect(orders).toHaveLength(STOCKED);
        const answered = bodies
          .filter((b) => b.status === 'placed')
          .map((b) => b.id)
          .sort();
        expect(orders.map((o) => o._id.toHexString()).sort()).toEqual(answered);
        expect(orders.every((o) => o.lines.length === 1 && o.lines[0].quantity === 1)).toBe(true);
      });

      it("the customers' stats count exactly the orders that succeeded", async () => {
        const orders = await t.app.db.connection.db!.collection('orders').find({ 'lines.sku': sku }).toArray();
        const ids = [...new Set(orders.map((o) => o.customerId.toHexString()))];
        for (const id of ids) {
          const theirs = orders.filter((o) => o.customerId.toHexString() === id).length;
          const { stats } = (await s.storedCustomer(id))!;
          expect(stats.orderCount).toBe(theirs);
          expect(stats.spent).toEqual([{ currency: 'EUR', amount: theirs * 1999 }]);
        }
      });

      it('the stock document, sampled throughout, never went negative and never held more or fewer units than stocked', () => {
        expect(samples.length).toBeGreaterThan(1);
        for (const sample of samples) {
          expect(sample.available).toBeGreaterThanOrEqual(0);
          expect(sample.reserved).toBeGreaterThanOrEqual(0);
          expect(sample.available + sample.reserved + sample.shipped).toBe(STOCKED);
        }
      });

      // Within one instance placements of one item take turns; across instances they collide.
      if (instances > 1) {
        it("the instances' placements met in MongoDB, and the transaction helper retried and said so", () => {
          expect(transactionRetries.transient).toBeGreaterThan(retriesBefore);
          expect(retryLines()).toBeGreaterThan(retryLinesBefore);
        });
      }
    },
  );

  it('the validator makes a negative stock count impossible, even for a write that skips the service', async () => {
    await s.product('NEGATIVE-1');
    await s.stock('NEGATIVE-1', 'AMS-1', 3);
    const stock = t.app.db.connection.db!.collection('stock');
    const error = await stock
      .updateOne({ sku: 'NEGATIVE-1', warehouse: 'AMS-1' }, { $inc: { available: -4 } })
      .catch((e: unknown) => e);
    expect((error as { code?: number }).code).toBe(121); // DocumentValidationFailure
    const reserved = await stock
      .updateOne({ sku: 'NEGATIVE-1', warehouse: 'AMS-1' }, { $inc: { reserved: -1 } })
      .catch((e: unknown) => e);
    expect((reserved as { code?: number }).code).toBe(121);
    expect(await s.storedStock('NEGATIVE-1', 'AMS-1')).toMatchObject({ available: 3, reserved: 0, version: 1 });
  });

  describe('concurrent actions on one paid order, sent to two instances', () => {
    let other: TestApp;
    let instances: Shop[];
    beforeAll(async () => {
      other = await anotherInstance(t);
      instances = [s, shop(other.app)];
    });
    afterAll(() => other.app.close());

    const paidOrder = async (sku: string) => {
      await s.product(sku);
      await s.stock(sku, 'AMS-1', 10);
      const customer = await s.customer();
      const placed = await s.place(customer.id, 'AMS-1', [{ sku, quantity: 4 }]);
      expect(placed.statusCode, placed.body).toBe(201);
      const paid = await s.act(placed.json().id, 'pay');
      expect(paid.statusCode, paid.body).toBe(200);
      return placed.json().id as string;
    };

    it('5 cancels and 5 ships at once: exactly one wins, the other 9 get 409, and the stock matches the winner', async () => {
      const id = await paidOrder('RACE-1');
      const actions = ['cancel', 'ship', 'cancel', 'ship', 'cancel', 'ship', 'cancel', 'ship', 'cancel', 'ship'];
      const responses = await Promise.all(
        actions.map((action, i) => instances[Math.floor(i / 2) % 2]!.act(id, action)),
      );
      const statuses = responses.map((res) => res.statusCode);
      expect(statuses.filter((status) => status === 200)).toHaveLength(1);
      expect(statuses.filter((status) => status === 409)).toHaveLength(9);
      const winner = actions[statuses.indexOf(200)]!;
      const status = winner === 'cancel' ? 'cancelled' : 'shipped';
      for (const res of responses.filter((r) => r.statusCode === 409)) {
        expect(res.json()).toMatchObject({ type: 'urn:storekeeper:problem:invalid-transition', currentStatus: status });
      }
      const order = await s.storedOrder(id);
      expect(order!.status).toBe(status);
      expect(order!.history.map((h: { status: string }) => h.status)).toEqual(['placed', 'paid', status]);
      expect(order!.version).toBe(3);
      const item = await s.storedStock('RACE-1', 'AMS-1');
      expect(item).toMatchObject(
        winner === 'cancel' ? { available: 10, reserved: 0, shipped: 0 } : { available: 6, reserved: 0, shipped: 4 },
      );
      expect(item!.version).toBe(3); // placement, then the winner: once each
    });

    it('10 cancels at once: one cancels and releases the units once, the other 9 get 409', async () => {
      const id = await paidOrder('RACE-2');
      const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => instances[i % 2]!.act(id, 'cancel')));
      expect(responses.filter((res) => res.statusCode === 200)).toHaveLength(1);
      expect(responses.filter((res) => res.statusCode === 409)).toHaveLength(9);
      expect(await s.storedStock('RACE-2', 'AMS-1')).toMatchObject({
        available: 10,
        reserved: 0,
        shipped: 0,
        version: 3,
      });
      expect((await s.storedOrder(id))!.history).toHaveLength(3);
    });

    it('10 pays at once (no stock involved, so no turns): one pays, the other 9 get 409', async () => {
      const sku = 'RACE-3';
      await s.product(sku);
      await s.stock(sku, 'AMS-1', 10);
      const placed = await s.place((await s.customer()).id, 'AMS-1', [{ sku, quantity: 1 }]);
      const id = placed.json().id as string;
      const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => instances[i % 2]!.act(id, 'pay')));
      expect(responses.filter((res) => res.statusCode === 200)).toHaveLength(1);
      expect(responses.filter((res) => res.statusCode === 409)).toHaveLength(9);
      expect((await s.storedOrder(id))!).toMatchObject({ status: 'paid', version: 2 });
    });
  });
});
